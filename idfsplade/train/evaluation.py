"""Periodic evaluation during training on a *sample* of a BEIR split.

Encoding all of SciFact takes ~3.5 min on 2 CPU cores, far too long to repeat every few hundred
steps; a sample of queries with their judged documents plus BM25 distractors (hard, so the numbers
move with the model) is encoded in seconds. The full split is evaluated after training by
:mod:`idfsplade.train.experiment`.

Library check: sentence-transformers' ``SparseInformationRetrievalEvaluator`` does the rest
(query route for queries, document route for the corpus; nDCG@10, MRR@10, active dimensions and
FLOPS) and plugs into the trainer's ``eval_strategy``; it is used as it is.
"""

from __future__ import annotations

import numpy as np
from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

from idfsplade.data import BeirDataset, document_text
from idfsplade.search import BM25Retriever


def sampled_beir_evaluator(dataset: BeirDataset, split: str = "test", n_queries: int = 50,
                           distractors: int = 20, seed: int = 42) -> SparseInformationRetrievalEvaluator:
    """An IR evaluator over ``n_queries`` sampled queries of ``split``: judged docs + BM25 top distractors."""
    corpus = {d.id: document_text(d) for d in dataset.iter_corpus()}
    queries, qrels = dataset.split_queries(split, doc_ids=set(corpus))
    qids = sorted(queries)
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(qids), size=min(n_queries, len(qids)), replace=False).tolist())
    sample = {qids[i]: queries[qids[i]] for i in picked}
    relevant = {q: {d for d, rel in qrels[q].items() if rel > 0} for q in sample}
    run = BM25Retriever(list(corpus), list(corpus.values()), stemmer=None).search_many(sample, k=distractors)
    keep = set().union(*relevant.values(), *(set(hits) for hits in run.values()))
    return SparseInformationRetrievalEvaluator(
        queries=sample, corpus={d: corpus[d] for d in sorted(keep)}, relevant_docs=relevant,
        name=f"{dataset.name}-{split}-sample", batch_size=16, write_csv=False,
        accuracy_at_k=[1], precision_recall_at_k=[10], map_at_k=[100])

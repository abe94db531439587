"""Independent reference computations for the end-to-end tests: none of them goes through idfsplade's
data loading, IDF, encoder, index, retrievers or metrics, so a pipeline number that equals one of
these was not merely copied from the pipeline's own earlier output.

- BM25: bm25s called directly (k1=1.2, b=0.75, English stop words), scored by ir-measures.
- Inference-free SPLADE: raw ``AutoModelForMaskedLM`` logits, ``log1p(relu(·))`` then max over
  non-pad positions (the paper's order of operations, not the pipeline's pool-first shortcut), IDF
  counted with a Python set per document, a float64 numpy dot product, scored by ir-measures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import ir_measures
import numpy as np


def read_beir(folder: Path, split: str = "test"):
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    queries = {str(q["_id"]): q["text"] for q in map(json.loads, (folder / "queries.jsonl").read_text(
        encoding="utf-8").splitlines()) if q}
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, grade = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(grade)
    ids = [str(d["_id"]) for d in docs]
    texts = [f"{d['title']} {d['text']}" if d.get("title") else d["text"] for d in docs]
    return ids, texts, {q: queries[q] for q in qrels}, qrels


def ndcg10(qrels, run) -> float:
    """Mean nDCG@10 over the judged queries (a query missing from the run counts 0)."""
    per_query = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.nDCG @ 10], qrels, run)}
    return sum(per_query.get(q, 0.0) for q in qrels) / len(qrels)


def bm25_ndcg10(folder: Path, stemmer: str | None = None) -> float:
    import bm25s

    ids, texts, queries, qrels = read_beir(folder)
    stem = None
    if stemmer:
        import Stemmer

        stem = Stemmer.Stemmer(stemmer)
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index(bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False), show_progress=False)
    qids = list(queries)
    found, scores = model.retrieve(bm25s.tokenize([queries[q] for q in qids], stopwords="en", stemmer=stem,
                                                  show_progress=False), k=len(ids), show_progress=False)
    run = {q: {ids[d]: float(s) for d, s in zip(row_d, row_s) if s > 0} for q, row_d, row_s in zip(qids, found, scores)}
    return ndcg10(qrels, run)


def inference_free_ndcg10(folder: Path, model_path: str, max_length: int = 512) -> float:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    ids, texts, queries, qrels = read_beir(folder)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForMaskedLM.from_pretrained(model_path).eval()
    specials = set(tokenizer.all_special_ids)
    vocab = len(tokenizer)
    # IDF over whole documents, each token once per document
    df = np.zeros(vocab)
    for text in texts:
        for token in set(tokenizer(text, add_special_tokens=False)["input_ids"]):
            df[token] += 1
    n = len(texts)
    idf = np.array([math.log(1 + (n - df[j] + 0.5) / (df[j] + 0.5)) for j in range(vocab)])
    idf[list(specials)] = 0.0
    # documents, one at a time (no padding at all)
    doc_vectors = np.zeros((n, vocab))
    with torch.no_grad():
        for row, text in enumerate(texts):
            batch = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            logits = model(**batch).logits[0].double()
            doc_vectors[row] = torch.log1p(torch.relu(logits)).max(dim=0).values.numpy()
    doc_vectors[:, list(specials)] = 0.0
    run = {}
    for qid, text in queries.items():
        query = np.zeros(vocab)
        for token in set(tokenizer(text, add_special_tokens=False)["input_ids"]):
            query[token] = idf[token]
        scores = doc_vectors @ query
        run[qid] = {ids[d]: float(scores[d]) for d in np.flatnonzero(scores > 0)}
    return ndcg10(qrels, run)

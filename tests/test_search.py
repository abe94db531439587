"""Retrievers on real data: BM25 (bm25s) on SciFact lands where BEIR and bm25s put it, and the
inference-free retriever returns exactly the index's dot-product ranking."""

from __future__ import annotations

import numpy as np
import pytest

from idfsplade.data import BeirDataset, document_text
from idfsplade.evaluate import evaluate_run
from idfsplade.index import InvertedIndex
from idfsplade.model import DocumentEncoder, model_query_encoder
from idfsplade.search import BM25Retriever, InferenceFreeRetriever


@pytest.fixture(scope="module")
def scifact(scifact_path):
    ds = BeirDataset(scifact_path)
    docs = list(ds.iter_corpus())
    queries, qrels = ds.split_queries("test", doc_ids={d.id for d in docs})
    return docs, queries, qrels


@pytest.mark.parametrize("stemmer, expected", [("english", 0.6791), (None, 0.6625)])
def test_bm25_scifact_ndcg(scifact, stemmer, expected):
    docs, queries, qrels = scifact
    retriever = BM25Retriever([d.id for d in docs], [document_text(d) for d in docs], stemmer=stemmer)
    ndcg = evaluate_run(qrels, retriever.search_many(queries, k=100))["nDCG@10"]
    assert 0.65 <= ndcg <= 0.68  # BEIR reports 0.665
    assert ndcg == pytest.approx(expected, abs=2e-3)


def test_inference_free_retriever_ranks_by_exact_dot_product(tiny_encoder, adi_path):
    ds = BeirDataset(adi_path)
    docs = list(ds.iter_corpus())
    matrix = DocumentEncoder(tiny_encoder).encode([document_text(d) for d in docs])
    retriever = InferenceFreeRetriever(model_query_encoder(tiny_encoder),
                                       InvertedIndex.from_csr(matrix, [d.id for d in docs]))
    text = "computerized information retrieval systems"
    query = retriever.query_encoder.encode(text)
    dense = matrix.toarray()[:, query.ids] @ query.weights
    hits = retriever.search(text, k=5)
    order = np.lexsort((np.arange(len(dense)), -dense))[:5]
    assert hits.ids == [docs[i].id for i in order]
    np.testing.assert_allclose(hits.scores, dense[order], rtol=1e-5)

"""OpenSearch client side: mapping, bulk and query bodies checked on values (no cluster needed), response
parsing on a recording fake client, and a live round trip against ``OPENSEARCH_URL`` when it is set."""

from __future__ import annotations

import os
import sys
import uuid

import numpy as np
import pytest
import scipy.sparse as sp

from idfsplade.errors import IdfspladeError, InputError
from idfsplade.index import InvertedIndex
from idfsplade.index.opensearch import (DOT_ESCAPE, FeatureNames, OpenSearchSparseIndex, bulk_actions, index_body,
                                        neural_sparse_body)
from idfsplade.model import DocumentEncoder, model_query_encoder

FIELD = "sparse_embedding"
OPENSEARCH_URL = os.environ.get("OPENSEARCH_URL")


class RecordingClient:
    """Stands in for ``opensearchpy.OpenSearch``: records bodies, answers with canned responses."""

    def __init__(self, search_response=None, msearch_response=None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.search_response = search_response
        self.msearch_response = msearch_response

    def search(self, index, body):
        self.calls.append(("search", {"index": index, "body": body}))
        return self.search_response

    def msearch(self, body):
        self.calls.append(("msearch", {"body": body}))
        return self.msearch_response


def _index(tokenizer, client=None, **kwargs) -> OpenSearchSparseIndex:
    return OpenSearchSparseIndex(client, "docs", tokenizer.get_vocab(), field=FIELD, **kwargs)


def _ids(tokenizer, tokens):
    return np.array([tokenizer.get_vocab()[t] for t in tokens])


def test_index_body_is_one_rank_features_field():
    assert index_body(FIELD) == {"mappings": {"properties": {FIELD: {"type": "rank_features"}}}}


def test_bulk_actions_drop_zero_weights_and_keep_doc_ids(tokenizer):
    vocab = tokenizer.get_vocab()
    rows = sp.csr_matrix((np.array([1.5, 0.0, 0.25, 2.0], dtype=np.float32),
                          np.array([vocab["cat"], vocab["dog"], vocab["."], vocab["dog"]]),
                          np.array([0, 3, 4, 4])), shape=(3, len(tokenizer)))
    actions = list(bulk_actions("docs", FIELD, FeatureNames(vocab), rows, ["d1", "d2", "d3"]))
    assert actions == [
        {"_index": "docs", "_id": "d1", "_source": {FIELD: {"cat": 1.5, ".": 0.25}}},  # explicit 0 for 'dog' dropped
        {"_index": "docs", "_id": "d2", "_source": {FIELD: {"dog": 2.0}}},
        {"_index": "docs", "_id": "d3", "_source": {FIELD: {}}},
    ]
    with pytest.raises(InputError, match="3 document vectors but 2 ids"):
        list(bulk_actions("docs", FIELD, FeatureNames(vocab), rows, ["d1", "d2"]))
    with pytest.raises(InputError, match="dimensions"):
        list(bulk_actions("docs", FIELD, FeatureNames(vocab), sp.csr_matrix((1, 10)), ["d1"]))


def test_escaped_dots_are_injective_and_dot_free(tokenizer):
    names = FeatureNames(tokenizer.get_vocab(), escape_dots=True)
    ids = _ids(tokenizer, [".", "##.", "...", "cat"])
    assert list(names.features(ids, np.ones(4))) == [DOT_ESCAPE, "##" + DOT_ESCAPE, DOT_ESCAPE * 3, "cat"]
    assert not any("." in n for n in names.names if n is not None)
    assert len(set(names.names)) == len(tokenizer)
    with pytest.raises(InputError, match="cannot be escaped"):
        FeatureNames({"a": 0, DOT_ESCAPE: 1}, escape_dots=True)


def test_neural_sparse_body_carries_idf_of_query_tokens(tiny_encoder, tokenizer, adi_idf):
    query = model_query_encoder(tiny_encoder).encode("What's the weather in NY now?")
    body = _index(tokenizer).query_body(query.ids, query.weights, k=7)
    tokens = body["query"]["neural_sparse"][FIELD]["query_tokens"]
    assert set(tokens) == {"what", "'", "s", "the", "weather", "in", "ny", "now", "?"}
    vocab = tokenizer.get_vocab()
    for token, weight in tokens.items():
        assert weight == pytest.approx(float(adi_idf.weights[vocab[token]]), rel=1e-6)
        assert weight > 0
    assert body["size"] == 7 and body["_source"] is False
    assert body == neural_sparse_body(FIELD, tokens, 7)


def test_rank_feature_body_is_boosted_linear_clauses(tiny_encoder, tokenizer, adi_idf):
    query = model_query_encoder(tiny_encoder).encode("U.S. news")
    vocab = tokenizer.get_vocab()
    idf = {t: pytest.approx(float(adi_idf.weights[vocab[t]]), rel=1e-6) for t in ["u", ".", "s", "news"]}

    raw = _index(tokenizer, query_type="rank_feature").query_body(query.ids, query.weights)
    clauses = {c["rank_feature"]["field"]: c["rank_feature"] for c in raw["query"]["bool"]["should"]}
    # '.' cannot be addressed as "<field>.<feature>" (split at the last dot), so raw mode leaves it out.
    assert set(clauses) == {f"{FIELD}.u", f"{FIELD}.s", f"{FIELD}.news"}
    for token in ["u", "s", "news"]:
        assert clauses[f"{FIELD}.{token}"] == {"field": f"{FIELD}.{token}", "linear": {}, "boost": idf[token]}

    escaped = _index(tokenizer, query_type="rank_feature", escape_dots=True).query_body(query.ids, query.weights)
    fields = {c["rank_feature"]["field"]: c["rank_feature"]["boost"] for c in escaped["query"]["bool"]["should"]}
    assert fields == {f"{FIELD}.u": idf["u"], f"{FIELD}.{DOT_ESCAPE}": idf["."], f"{FIELD}.s": idf["s"],
                      f"{FIELD}.news": idf["news"]}


def test_search_parses_hits_and_skips_empty_queries(tokenizer):
    client = RecordingClient(search_response={"hits": {"hits": [{"_id": "7", "_score": 3.5},
                                                                {"_id": "2", "_score": 1.25}]}})
    index = _index(tokenizer, client)
    hits = index.search(_ids(tokenizer, ["cat"]), np.array([2.0], dtype=np.float32), k=2)
    assert hits.ids == ["7", "2"]
    np.testing.assert_array_equal(hits.scores, np.array([3.5, 1.25], dtype=np.float32))
    assert client.calls == [("search", {"index": "docs", "body": neural_sparse_body(FIELD, {"cat": 2.0}, 2)})]

    empty = index.search(_ids(tokenizer, ["cat"]), np.array([0.0], dtype=np.float32))
    assert empty.ids == [] and len(client.calls) == 1  # nothing can match: no request (an empty bool matches all)


def test_search_batch_is_one_msearch_aligned_with_queries(tokenizer):
    responses = [{"hits": {"hits": [{"_id": "a", "_score": 2.0}]}}, {"hits": {"hits": []}}]
    client = RecordingClient(msearch_response={"responses": responses})
    index = _index(tokenizer, client)
    cat, dog = _ids(tokenizer, ["cat"]), _ids(tokenizer, ["dog"])
    results = index.search_batch([(cat, np.array([1.0])), (dog, np.array([0.0])), (dog, np.array([0.5]))], k=3)
    assert [r.ids for r in results] == [["a"], [], []]
    (name, call), = client.calls
    assert name == "msearch"
    assert call["body"] == [{"index": "docs"}, neural_sparse_body(FIELD, {"cat": 1.0}, 3),
                            {"index": "docs"}, neural_sparse_body(FIELD, {"dog": 0.5}, 3)]

    failing = _index(tokenizer, RecordingClient(msearch_response={"responses": [{"error": {"type": "boom"}}]}))
    with pytest.raises(IdfspladeError, match="boom"):
        failing.search_batch([(cat, np.array([1.0]))])


def test_unknown_query_type_is_an_input_error(tokenizer):
    with pytest.raises(InputError, match="query_type"):
        _index(tokenizer, query_type="knn")


def test_connect_without_opensearch_py_says_what_to_install(monkeypatch, tokenizer):
    monkeypatch.setitem(sys.modules, "opensearchpy", None)  # import fails as if not installed
    with pytest.raises(InputError, match=r"idfsplade\[opensearch\]"):
        OpenSearchSparseIndex.connect("http://localhost:9200", "docs", tokenizer.get_vocab())


@pytest.mark.skipif(not OPENSEARCH_URL, reason="live OpenSearch round trip: set OPENSEARCH_URL "
                                                "(e.g. http://localhost:9200) to run it")
@pytest.mark.parametrize("query_type,escape_dots", [("neural_sparse", False), ("rank_feature", True)])
def test_live_round_trip_matches_exact_index(tiny_encoder, tokenizer, adi_path, query_type, escape_dots):
    from idfsplade.data import BeirDataset, document_text

    dataset = BeirDataset(adi_path)
    docs = list(dataset.iter_corpus())
    matrix = DocumentEncoder(tiny_encoder).encode([document_text(d) for d in docs])
    doc_ids = [d.id for d in docs]
    exact = InvertedIndex.from_csr(matrix, doc_ids)
    index = OpenSearchSparseIndex.connect(OPENSEARCH_URL, f"idfsplade-test-{uuid.uuid4().hex[:8]}",
                                          tokenizer.get_vocab(), query_type=query_type, escape_dots=escape_dots)
    index.create()
    try:
        assert index.add(matrix, doc_ids) == len(docs)
        assert len(index) == len(docs)
        encoder = model_query_encoder(tiny_encoder)
        queries = [encoder.encode(text) for text in list(dataset.queries().values())[:10]]
        remote = index.search_batch([(q.ids, q.weights) for q in queries], k=10)
        for query, hits in zip(queries, remote):
            expected = exact.search(query.ids, query.weights, k=10)
            assert hits.ids[0] == expected.ids[0]
            # rank_features keeps 9 significant bits: scores agree to ~0.4%.
            exact_scores = dict(zip(expected.ids, expected.scores))
            for doc, score in zip(hits.ids, hits.scores):
                if doc in exact_scores:
                    assert score == pytest.approx(exact_scores[doc], rel=1e-2)
    finally:
        index.client.indices.delete(index=index.index)

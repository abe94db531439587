"""Hybrid search: OpenSearch's min-max + weighted arithmetic mean and RRF against hand-computed values,
the HybridRetriever on stub and real (ADI) retrievers, and BM25's save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits
from idfsplade.search.hybrid import (
    MIN_MAX,
    RRF,
    HybridRetriever,
    HybridSpec,
    fuse,
    fuse_runs,
    min_max_normalize,
)

LEXICAL = {"a": 10.0, "b": 6.0, "c": 2.0}
SPARSE = {"b": 3.0, "d": 1.0}


def test_min_max_floor_and_constant_lists():
    assert min_max_normalize(LEXICAL) == {"a": 1.0, "b": 0.5, "c": 0.001}  # the minimum becomes 0.001, not 0
    assert min_max_normalize({"x": 2.0, "y": 2.0}) == {"x": 1.0, "y": 1.0}  # max == min: every doc 1.0
    assert min_max_normalize({"z": -3.0}) == {"z": 1.0}
    assert min_max_normalize({}) == {}


def test_weighted_min_max_counts_missing_documents_as_zero():
    fused = fuse([LEXICAL, SPARSE], weights=[0.3, 0.7], method=MIN_MAX)
    # a: 0.3·1 + 0.7·0 (not returned by the sparse list); b: 0.3·0.5 + 0.7·1; c: 0.3·0.001; d: 0.7·0.001
    assert list(fused) == ["b", "a", "d", "c"]
    assert fused == pytest.approx({"b": 0.85, "a": 0.3, "d": 0.0007, "c": 0.0003}, abs=1e-12)


def test_equal_weights_divide_by_the_weight_sum_and_ties_go_by_doc_id():
    fused = fuse([LEXICAL, SPARSE], method=MIN_MAX)  # no weights: 1 each, then / 2
    assert list(fused) == ["b", "a", "c", "d"]  # c and d tie at 0.0005: doc id decides
    assert fused == pytest.approx({"b": 0.75, "a": 0.5, "c": 0.0005, "d": 0.0005}, abs=1e-12)
    assert fuse([LEXICAL, SPARSE], method=MIN_MAX, k=2) == pytest.approx({"b": 0.75, "a": 0.5})


def test_constant_and_empty_lists():
    assert fuse([{"y": 2.0, "x": 2.0}, {}], weights=[0.4, 0.6], method=MIN_MAX) == pytest.approx(
        {"x": 0.4, "y": 0.4})
    assert fuse([{}, {}], method=MIN_MAX) == {}
    assert fuse([{}, {}], method=RRF) == {}
    assert fuse([{}, SPARSE], weights=[0.5, 0.5], method=MIN_MAX) == pytest.approx({"b": 0.5, "d": 0.0005})


def test_rrf_by_rank_with_k_60():
    fused = fuse([LEXICAL, SPARSE], method=RRF)
    assert list(fused) == ["b", "a", "d", "c"]
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 62}, abs=1e-15)
    weighted = fuse([LEXICAL, SPARSE], weights=[0.3, 0.7], method=RRF, rank_constant=1)
    assert weighted == pytest.approx({"a": 0.3 / 2, "b": 0.3 / 3 + 0.7 / 2, "c": 0.3 / 4, "d": 0.7 / 3}, abs=1e-15)
    # equal scores inside one list keep that list's order for their ranks
    assert fuse([{"q": 1.0, "p": 1.0}], method=RRF) == pytest.approx({"q": 1 / 61, "p": 1 / 62})


def test_fuse_runs_handles_queries_missing_from_one_run():
    run = fuse_runs([{"q1": LEXICAL, "q2": {"x": 1.0}}, {"q1": SPARSE}], weights=[0.3, 0.7], method=MIN_MAX)
    assert list(run) == ["q1", "q2"]
    assert run["q1"]["b"] == pytest.approx(0.85)
    assert run["q2"] == pytest.approx({"x": 0.3})


@pytest.mark.parametrize("kwargs, field", [({"method": "sum"}, "method"), ({"weights": [0.5]}, "weights"),
                                           ({"weights": [1.5, 0.2]}, "weights"), ({"rank_constant": 0}, "rank_constant")])
def test_bad_fusion_settings_are_input_errors(kwargs, field):
    with pytest.raises(InputError, match=field):
        fuse([LEXICAL, SPARSE], **kwargs)


class Stub:
    """A retriever returning a fixed list; records the depth it was asked for."""

    def __init__(self, name: str, scores: dict[str, float]) -> None:
        self.name, self.scores, self.asked = name, scores, []

    def search(self, text: str, k: int = 10) -> SearchHits:
        self.asked.append(k)
        top = list(self.scores.items())[:k]
        return SearchHits([d for d, _ in top], np.array([s for _, s in top], dtype=np.float32))

    def search_many(self, queries, k=100, progress=None):
        self.asked.append(k)
        return {q: dict(list(self.scores.items())[:k]) for q in queries}


def test_hybrid_retriever_fuses_deep_candidate_lists():
    lexical, sparse = Stub("bm25", LEXICAL), Stub("splade", SPARSE)
    hybrid = HybridRetriever(lexical, sparse, weight=0.7, method=MIN_MAX, depth=100)
    assert hybrid.name == "hybrid bm25+splade"
    hits = hybrid.search("anything", k=2)
    assert lexical.asked == [100] and sparse.asked == [100]  # max(k, depth) candidates from each part
    assert hits.ids == ["b", "a"]
    np.testing.assert_allclose(hits.scores, [0.85, 0.3], rtol=1e-6)
    run = hybrid.search_many({"q1": "anything", "q2": "else"}, k=3)
    assert lexical.asked[-1] == 100 and run["q1"] == pytest.approx({"b": 0.85, "a": 0.3, "d": 0.0007})
    rrf = HybridRetriever(lexical, sparse, weight=None, method=RRF, depth=1)
    assert rrf.search("x", k=3).ids == ["b", "a", "d"] and lexical.asked[-1] == 3


def test_hybrid_spec_validates():
    assert HybridSpec().stemmer == "english"
    assert HybridSpec(lexical="bm25", weight=0.25, method=RRF).label == "rrf w=0.25"
    with pytest.raises(InputError, match="lexical"):
        HybridSpec(lexical="dense")
    with pytest.raises(InputError, match="weight"):
        HybridSpec(weight=2.0)


@pytest.fixture(scope="module")
def adi_parts(adi_path, tiny_encoder):
    from idfsplade.data import BeirDataset, document_text
    from idfsplade.index import InvertedIndex
    from idfsplade.model import DocumentEncoder, model_query_encoder
    from idfsplade.search import BM25Retriever, InferenceFreeRetriever

    docs = list(BeirDataset(adi_path).iter_corpus())
    texts = [document_text(d) for d in docs]
    matrix = DocumentEncoder(tiny_encoder).encode(texts)
    sparse = InferenceFreeRetriever(model_query_encoder(tiny_encoder),
                                    InvertedIndex.from_csr(matrix, [d.id for d in docs]), name="splade-tiny")
    return BM25Retriever([d.id for d in docs], texts, stemmer="english"), sparse, docs


def test_hybrid_on_adi_equals_min_max_of_the_parts(adi_parts):
    lexical, sparse, _ = adi_parts
    text = "computerized information retrieval systems"
    hybrid = HybridRetriever(lexical, sparse, weight=0.6, method=MIN_MAX, depth=50)
    hits = hybrid.search(text, k=10)
    # the expected values, recomputed here with numpy from each part's own top 50
    parts = []
    for retriever in (lexical, sparse):
        h = retriever.search(text, 50)
        s = h.scores.astype(np.float64)
        norm = (s - s.min()) / (s.max() - s.min())
        parts.append(dict(zip(h.ids, np.where(norm == 0, 0.001, norm))))
    expected = {d: 0.4 * parts[0].get(d, 0.0) + 0.6 * parts[1].get(d, 0.0) for d in set(parts[0]) | set(parts[1])}
    top = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert hits.ids == [d for d, _ in top]
    np.testing.assert_allclose(hits.scores, [s for _, s in top], rtol=1e-6)
    assert hits.scores[0] <= 1.0 and len(set(hits.ids)) == 10
    assert hybrid.search_many({"q": text}, k=10)["q"] == pytest.approx(dict(top), rel=1e-6)


def test_bm25_save_load_round_trip(adi_parts, tmp_path):
    from idfsplade.search import BM25Retriever

    lexical, _, _ = adi_parts
    lexical.save(tmp_path / "bm25")
    loaded = BM25Retriever.load(tmp_path / "bm25")
    assert loaded.name == "bm25-stem-english" and loaded.stemmer_name == "english"
    queries = {"1": "computerized information retrieval systems", "2": "indexing of documents by computers"}
    assert loaded.search_many(queries, k=20) == lexical.search_many(queries, k=20)
    (tmp_path / "bm25" / "meta.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="meta.json.*format"):
        BM25Retriever.load(tmp_path / "bm25")


def test_a_hybrid_hit_list_tokenizes_the_query_once(adi_parts, monkeypatch):
    """HitBuilder encodes the query for the explanations and hands the encoding to the sparse part."""
    from idfsplade.search.hits import HitBuilder

    lexical, sparse, _ = adi_parts
    text = "computerized information retrieval systems"
    hybrid = HybridRetriever(lexical, sparse, weight=0.6, method=MIN_MAX, depth=50)
    expected = hybrid.search(text, k=5)
    calls = []
    encode = type(sparse.query_encoder).encode
    monkeypatch.setattr(sparse.query_encoder, "encode", lambda t: calls.append(t) or encode(sparse.query_encoder, t))
    hits, _ = HitBuilder(sparse, None, hybrid=hybrid).search(text, k=5, explain=True)
    assert calls == [text]
    assert [h.id for h in hits] == expected.ids
    np.testing.assert_allclose([h.score for h in hits], expected.scores, rtol=1e-6)
    assert all(h.explanation for h in hits if h.sparse_score is not None)

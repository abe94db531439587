"""The exact inverted index against a dense brute-force dot product, on random data (fixed seeds).

The corpus is Zipf-skewed like SPLADE vectors, so frequent terms have long postings lists. Search has
two paths, one vectorised pass over all postings (small queries) and MaxScore (large ones); the
``search_path`` fixture runs the tests on each, and one test checks that MaxScore does prune.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

from idfsplade.errors import InputError
from idfsplade.index import InvertedIndex, exact

N_DOCS, VOCAB = 3000, 400


def _zipf(vocab: int) -> np.ndarray:
    p = 1.0 / np.arange(1, vocab + 1)
    return p / p.sum()


@pytest.fixture(params=["vectorised", "maxscore"])
def search_path(request, monkeypatch) -> str:
    """Force one search path: every query is 'small' (vectorised) or none is (MaxScore)."""
    monkeypatch.setattr(exact, "_EXHAUSTIVE_POSTINGS", 10**12 if request.param == "vectorised" else 0)
    return request.param


@pytest.fixture(scope="module")
def docs() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(N_DOCS), 30)
    cols = rng.choice(VOCAB, len(rows), p=_zipf(VOCAB))
    data = rng.uniform(0.1, 3.0, len(rows)).astype(np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(N_DOCS, VOCAB), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


@pytest.fixture(scope="module")
def dense(docs) -> np.ndarray:
    return docs.toarray().astype(np.float64)


@pytest.fixture(scope="module")
def index(docs) -> InvertedIndex:
    return InvertedIndex.from_csr(docs, [f"d{i}" for i in range(N_DOCS)])


@pytest.fixture(scope="module")
def queries(docs) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ten-term queries drawn like the documents' terms, weighted by IDF (as inference-free ones are)."""
    rng = np.random.default_rng(1)
    df = np.bincount(docs.indices, minlength=VOCAB)
    idf = np.log1p((N_DOCS - df + 0.5) / (df + 0.5)).astype(np.float32)
    out = []
    for _ in range(60):
        ids = np.sort(rng.choice(VOCAB, 10, replace=False, p=_zipf(VOCAB))).astype(np.int32)
        out.append((ids, idf[ids]))
    return out


def _brute_top(scores: np.ndarray, k: int) -> list[str]:
    """Best first, ties by row, score > 0 only."""
    rows = np.flatnonzero(scores > 0)
    order = np.lexsort((rows, -scores[rows]))[:k]
    return [f"d{r}" for r in rows[order]]


def _query_vector(ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    q = np.zeros(VOCAB)
    np.add.at(q, ids, weights.astype(np.float64))
    return q


def test_scores_equal_dense_dot_product(index, dense, queries):
    for ids, w in queries:
        np.testing.assert_allclose(index.scores(ids, w), dense @ _query_vector(ids, w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 10, 100])
def test_top_k_equals_brute_force(index, dense, queries, k, search_path):
    for ids, w in queries:
        hits = index.search(ids, w, k)
        scores = index.scores(ids, w)
        assert hits.ids == _brute_top(scores, k)
        np.testing.assert_array_equal(hits.scores, np.sort(scores[scores > 0])[::-1][:k])
        exact_scores = dense @ _query_vector(ids, w)
        np.testing.assert_allclose(hits.scores, np.sort(exact_scores)[::-1][:len(hits.ids)], rtol=1e-5)


def test_maxscore_prunes_and_stays_exact(index, queries, monkeypatch):
    monkeypatch.setattr(exact, "_EXHAUSTIVE_POSTINGS", 0)
    calls = []
    original = InvertedIndex._finish_pruned

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(InvertedIndex, "_finish_pruned", spy)
    for ids, w in queries:
        assert index.search(ids, w, 10).ids == _brute_top(index.scores(ids, w), 10)
    assert len(calls) > len(queries) // 2


def test_a_document_without_the_rare_terms_can_still_win(search_path):
    """MaxScore must not stop while the frequent terms' bounds can still add up past the k-th score:
    doc 0 has none of the rare term but the largest weight of all eight frequent terms."""
    n = 3000
    matrix = sp.lil_matrix((n, 9), dtype=np.float32)
    matrix[:, 1:] = 0.01
    matrix[0, 1:] = 1.0
    matrix[1:11, 0] = 0.5
    matrix[1, 0] = 1.0
    index = InvertedIndex.from_csr(matrix.tocsr(), [f"d{i}" for i in range(n)])
    ids = np.arange(9)
    weights = np.array([10.0] + [1.0] * 8, dtype=np.float32)
    hits = index.search(ids, weights, k=3)
    assert hits.ids == ["d1", "d0", "d2"]
    np.testing.assert_allclose(hits.scores, [10.08, 8.0, 5.08], rtol=1e-6)


def test_ties_are_broken_by_document_row(search_path):
    # Every document scores 1.0 for term 0; docs 5 and 7 score 2.0.
    data = sp.lil_matrix((10, 3), dtype=np.float32)
    data[:, 0] = 1.0
    data[[5, 7], 1] = 1.0
    index = InvertedIndex.from_csr(data.tocsr(), [f"d{i}" for i in range(10)])
    hits = index.search(np.array([0, 1]), np.array([1.0, 1.0], dtype=np.float32), k=4)
    assert hits.ids == ["d5", "d7", "d0", "d1"]
    np.testing.assert_array_equal(hits.scores, [2.0, 2.0, 1.0, 1.0])


def test_search_batch_equals_single(index, queries, search_path):
    batch = index.search_batch(queries, k=10)
    for (ids, w), hits in zip(queries, batch):
        single = index.search(ids, w, 10)
        assert hits.ids == single.ids
        np.testing.assert_array_equal(hits.scores, single.scores)


def test_empty_query_and_unknown_terms(index, queries):
    assert index.search(np.array([], dtype=np.int32), np.array([], dtype=np.float32)).ids == []
    assert index.search(np.array([-1, VOCAB, VOCAB + 5]), np.array([1.0, 2.0, 3.0], dtype=np.float32)).ids == []
    ids, w = queries[0]
    mixed = index.search(np.concatenate(([-3], ids, [VOCAB + 1])), np.concatenate(([5.0], w, [5.0])), 10)
    assert mixed.ids == index.search(ids, w, 10).ids
    assert index.search(ids, w, 0).ids == []


def test_duplicate_term_ids_add_up(index):
    twice = index.search(np.array([3, 3]), np.array([0.5, 0.25], dtype=np.float32), 10)
    once = index.search(np.array([3]), np.array([0.75], dtype=np.float32), 10)
    assert twice.ids == once.ids
    np.testing.assert_allclose(twice.scores, once.scores, rtol=1e-6)


def test_k_larger_than_matches_returns_only_positive_scores():
    docs = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    index = InvertedIndex.from_csr(docs, ["a", "b", "c", "d"])
    hits = index.search(np.array([0]), np.array([2.0], dtype=np.float32), k=50)
    assert hits.ids == ["c", "a"]
    np.testing.assert_array_equal(hits.scores, np.array([6.0, 2.0], dtype=np.float32))


def test_negative_weights_are_scored_exactly(docs, search_path):
    """Bounds need non-negative weights; with negative ones the index scores every posting."""
    signed = docs.copy()
    signed.data = signed.data * np.where(np.arange(signed.nnz) % 3 == 0, -1, 1).astype(np.float32)
    index = InvertedIndex.from_csr(signed, [f"d{i}" for i in range(N_DOCS)])
    ids = np.arange(0, 40, 4)
    w = np.linspace(0.5, 2.0, len(ids)).astype(np.float32)
    exact_scores = signed.toarray().astype(np.float64) @ _query_vector(ids, w)
    hits = index.search(ids, w, 20)
    assert hits.ids == _brute_top(index.scores(ids, w), 20)
    np.testing.assert_allclose(hits.scores, np.sort(exact_scores)[::-1][:20], rtol=1e-5)
    assert (hits.scores > 0).all()


def test_save_load_round_trip_memory_mapped(index, queries, tmp_path, search_path):
    index.save(tmp_path / "ix")
    loaded = InvertedIndex.load(tmp_path / "ix")
    assert isinstance(loaded.postings_docs.base, np.memmap)
    assert (len(loaded), loaded.nnz, loaded.doc_ids) == (len(index), index.nnz, index.doc_ids)
    for ids, w in queries:
        a, b = index.search(ids, w, 10), loaded.search(ids, w, 10)
        assert a.ids == b.ids
        np.testing.assert_array_equal(a.scores, b.scores)


def test_failed_save_leaves_no_partial_folder(index, tmp_path, monkeypatch):
    index.save(tmp_path / "ix")
    before = sorted(p.name for p in tmp_path.iterdir())

    def failing_save(path, array):
        if path.name == "postings_docs.npy":  # the second of the three arrays
            raise OSError("disk full")
        np.save(path, array)

    monkeypatch.setattr(exact, "atomic_save_npy", failing_save)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "ix")
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["ix"]
    assert InvertedIndex.load(tmp_path / "ix").nnz == index.nnz  # the old index is untouched


def test_load_rejects_a_folder_that_is_not_an_index(tmp_path):
    with pytest.raises(InputError, match="no meta.json"):
        InvertedIndex.load(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(InputError, match="field 'format'"):
        InvertedIndex.load(tmp_path)


def test_concurrent_searches_match_sequential(index, queries):
    expected = [index.search(ids, w, 10).ids for ids, w in queries]
    barrier = threading.Barrier(4)

    def run(_: int) -> list[list[str]]:
        barrier.wait()
        return [index.search(ids, w, 10).ids for ids, w in queries]

    with ThreadPoolExecutor(4) as pool:
        assert all(result == expected for result in pool.map(run, range(4)))


def test_a_failed_search_leaves_later_searches_exact(index, queries, monkeypatch):
    monkeypatch.setattr(exact, "_EXHAUSTIVE_POSTINGS", 0)
    ids, w = queries[0]
    expected = index.search(ids, w, 10)

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    with monkeypatch.context() as m:
        m.setattr(InvertedIndex, "_finish_pruned", boom)
        with pytest.raises(RuntimeError):
            for q_ids, q_w in queries:
                index.search(q_ids, q_w, 10)
    again = index.search(ids, w, 10)
    assert again.ids == expected.ids
    np.testing.assert_array_equal(again.scores, expected.scores)


@pytest.mark.parametrize("k", [1, 7, 50])
def test_top_k_equals_numpy_brute_force_with_many_ties(search_path, k):
    """An independent reference: float64 numpy scores and a lexsort (score desc, row asc), on weights
    that are multiples of 1/4 so every sum is exact in float32 and ties are real and frequent."""
    rng = np.random.default_rng(7)
    n_docs, vocab = 400, 40
    dense = (rng.integers(0, 5, size=(n_docs, vocab)) * (rng.random((n_docs, vocab)) < 0.15)) / 4.0
    index = InvertedIndex.from_csr(sp.csr_matrix(dense.astype(np.float32)), [f"d{i}" for i in range(n_docs)])
    for _ in range(40):
        ids = np.sort(rng.choice(vocab, rng.integers(1, 8), replace=False)).astype(np.int32)
        weights = (rng.integers(1, 9, len(ids)) / 2.0).astype(np.float32)
        scores = dense[:, ids] @ weights.astype(np.float64)
        rows = np.flatnonzero(scores > 0)
        order = rows[np.lexsort((rows, -scores[rows]))][:k]
        hits = index.search(ids, weights, k)
        assert hits.ids == [f"d{r}" for r in order]
        np.testing.assert_array_equal(hits.scores.astype(np.float64), scores[order])

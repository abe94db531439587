"""Search backends against the exact embedded index: small random data (fast) and real SciFact (slow).

"Same top-k" is checked tie-aware: the exact scores of the documents a backend returns must equal the
exact top-k scores, and the scores it reports must be those exact scores, best first. Two documents
with equal scores may come back in either order (or either one at rank k) without failing, while a
missed or wrongly ranked document does fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import SCIFACT_SUBSET_DOCS

from idfsplade.errors import InputError
from idfsplade.index import InvertedIndex, SearchHits, SparseIndex
from idfsplade.index.registry import available_backends, build_backend

K = 10


def _random_collection(seed: int = 0, n_docs: int = 400, vocab: int = 300):
    rng = np.random.default_rng(seed)
    docs = sp.random(n_docs, vocab, density=0.05, format="csr", dtype=np.float32, random_state=rng,
                     data_rvs=lambda n: rng.uniform(0.05, 3.0, n).astype(np.float32))
    docs.data[docs.indptr[7]:docs.indptr[8]] = 0  # one empty document: never returned, still counted
    docs.eliminate_zeros()
    doc_ids = [f"doc-{i}" for i in range(n_docs)]
    queries = []
    for _ in range(300):  # batches this large come back out of order from Seismic
        ids = np.sort(rng.choice(vocab, size=rng.integers(1, 9), replace=False)).astype(np.int32)
        queries.append((ids, rng.uniform(0.5, 8.0, len(ids)).astype(np.float32)))
    return docs, doc_ids, queries


@pytest.fixture(scope="module")
def collection():
    docs, doc_ids, queries = _random_collection()
    return docs, doc_ids, queries, InvertedIndex.from_csr(docs, doc_ids)


def assert_same_top_k(exact: InvertedIndex, hits: SearchHits, term_ids, weights, k: int = K,
                      atol: float = 1e-4, score_rtol: float = 0.0) -> None:
    """``hits`` is an exact top-k (up to ties) and its scores are the true dot products (to
    ``score_rtol`` for a backend that stores rounded weights)."""
    true = exact.scores(term_ids, weights)
    rows = {d: i for i, d in enumerate(exact.doc_ids)}
    expected = exact.search(term_ids, weights, k).scores
    got = true[[rows[d] for d in hits.ids]]
    assert len(hits.ids) == len(set(hits.ids)) == len(expected)
    np.testing.assert_allclose(np.sort(got)[::-1], expected, rtol=score_rtol, atol=atol)
    np.testing.assert_allclose(hits.scores, got, rtol=score_rtol, atol=atol)
    assert np.all(np.diff(hits.scores) <= 0)


def recall_at_k(exact: InvertedIndex, hits: SearchHits, term_ids, weights, k: int = K) -> float:
    expected = exact.search(term_ids, weights, k).ids
    return len(set(expected) & set(hits.ids)) / len(expected) if expected else 1.0


# --- registry -----------------------------------------------------------------------------------


def test_available_backends_lists_exact_first_and_only_known_names():
    names = available_backends()
    assert names[0] == "exact"
    assert set(names) <= {"exact", "seismic", "milvus", "lucene"}


def test_exact_backend_is_the_inverted_index_and_saves_to_path(collection, tmp_path):
    docs, doc_ids, queries, exact = collection
    built = build_backend("exact", docs, doc_ids, path=tmp_path / "exact")
    assert isinstance(built, InvertedIndex) and isinstance(built, SparseIndex)
    reloaded = InvertedIndex.load(tmp_path / "exact")
    for ids, w in queries:
        assert reloaded.search(ids, w, K).ids == exact.search(ids, w, K).ids


@pytest.mark.parametrize(("args", "message"), [
    (("nope",), "unknown backend 'nope'"),
    (("exact", "x"), "documents must be a 2-D scipy sparse matrix"),
])
def test_build_backend_rejects_bad_names_and_inputs(collection, args, message):
    docs, doc_ids, _, _ = collection
    name, *rest = args
    with pytest.raises(InputError, match=message):
        build_backend(name, rest[0] if rest else docs, doc_ids)


def test_build_backend_rejects_malformed_documents(collection):
    docs, doc_ids, _, _ = collection
    with pytest.raises(InputError, match="400 document vectors but 399 document ids"):
        build_backend("exact", docs, doc_ids[:-1])
    with pytest.raises(InputError, match="duplicate document id 'doc-0'"):
        build_backend("exact", docs, ["doc-0"] + doc_ids[:-1])
    bad = docs.copy()
    bad.data[bad.indptr[3]] = np.nan
    with pytest.raises(InputError, match="document 'doc-3' has a non-finite weight"):
        build_backend("exact", bad, doc_ids)


def test_build_backend_rejects_unknown_options(collection):
    docs, doc_ids, _, _ = collection
    with pytest.raises(InputError, match="backend 'exact' has no option 'heap_factor'"):
        build_backend("exact", docs, doc_ids, heap_factor=0.5)


def test_build_backend_does_not_modify_a_read_only_matrix(collection):
    docs, doc_ids, queries, exact = collection
    reverse = np.concatenate([np.arange(lo, hi)[::-1] for lo, hi in zip(docs.indptr[:-1], docs.indptr[1:])])
    frozen = sp.csr_matrix((docs.data[reverse], docs.indices[reverse], docs.indptr.copy()), shape=docs.shape)
    assert not frozen.has_sorted_indices
    for array in (frozen.data, frozen.indices, frozen.indptr):
        array.flags.writeable = False
    built = build_backend("exact", frozen, doc_ids)
    ids, w = queries[0]
    assert built.search(ids, w, K).ids == exact.search(ids, w, K).ids


@pytest.mark.parametrize(("backend", "module", "extra"), [
    ("seismic", "seismic", "idfsplade[seismic]"),
    ("milvus", "pymilvus", "idfsplade[milvus]"),
    ("lucene", "pyserini", "idfsplade[lucene]"),
])
def test_missing_extra_names_the_extra_to_install(collection, monkeypatch, backend, module, extra):
    docs, doc_ids, _, _ = collection
    monkeypatch.setitem(__import__("sys").modules, module, None)  # makes `import module` fail
    assert backend not in available_backends()
    with pytest.raises(InputError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        build_backend(backend, docs, doc_ids)


# --- seismic --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seismic_index(collection):
    pytest.importorskip("seismic")
    docs, doc_ids, _, _ = collection
    # Summaries that keep all of each block's mass never hide a block: on this data the results are
    # then exact (with the default 0.4, recall@10 here is 0.987: a pruning trade-off, tested on SciFact).
    return build_backend("seismic", docs, doc_ids, summary_energy=1.0, num_threads=1)


def test_seismic_with_full_summaries_finds_the_exact_top_k(collection, seismic_index):
    _, _, queries, exact = collection
    assert len(seismic_index) == 400
    for (ids, w), hits in zip(queries, seismic_index.search_batch(queries, K)):
        assert_same_top_k(exact, hits, ids, w, score_rtol=2e-3)  # float16 values: ~3 significant digits


def test_seismic_batch_equals_single_and_handles_empty_queries(collection, seismic_index):
    _, _, queries, _ = collection
    batch = seismic_index.search_batch(queries + [(np.array([], np.int32), np.array([], np.float32))], K)
    assert batch[-1].ids == []
    for (ids, w), hits in zip(queries, batch):
        assert hits.ids == seismic_index.search(ids, w, K).ids
    assert seismic_index.search(np.array([299, 5000]), np.array([1.0, 1.0]), K).ids == \
        seismic_index.search(np.array([299]), np.array([1.0]), K).ids  # out-of-vocabulary ids ignored


def test_seismic_saves_and_loads_with_its_knobs(collection, tmp_path):
    pytest.importorskip("seismic")
    from idfsplade.index.seismic import SeismicBackend

    docs, doc_ids, queries, _ = collection
    built = build_backend("seismic", docs, doc_ids, path=tmp_path / "s", query_cut=5, heap_factor=0.8,
                          num_threads=1)
    loaded = SeismicBackend.load(tmp_path / "s")
    assert (loaded.query_cut, loaded.heap_factor, len(loaded)) == (5, 0.8, 400)
    for ids, w in queries:
        assert loaded.search(ids, w, K).ids == built.search(ids, w, K).ids
    with pytest.raises(InputError, match="not a seismic index folder"):
        SeismicBackend.load(tmp_path)


# --- milvus ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def milvus_index(collection, tmp_path_factory):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    docs, doc_ids, _, _ = collection
    index = build_backend("milvus", docs, doc_ids, path=tmp_path_factory.mktemp("milvus") / "index",
                          batch_size=150)
    yield index
    index.close()


def test_milvus_returns_the_exact_top_k(collection, milvus_index):
    _, _, queries, exact = collection
    assert len(milvus_index) == 400
    for (ids, w), hits in zip(queries, milvus_index.search_batch(queries, K)):
        assert_same_top_k(exact, hits, ids, w)
    ids, w = queries[3]
    assert milvus_index.search(ids, w, K).ids == milvus_index.search_batch([(ids, w)], K)[0].ids
    assert milvus_index.search(np.array([], np.int32), np.array([], np.float32), K).ids == []


def test_milvus_rejects_path_with_uri_and_a_missing_database(collection, milvus_index):
    from idfsplade.index.milvus import MilvusBackend

    docs, doc_ids, _, _ = collection
    with pytest.raises(InputError, match="either a path .* or a uri"):
        build_backend("milvus", docs, doc_ids, path="x", uri="http://localhost:19530")
    with pytest.raises(InputError, match="no milvus-lite database here"):
        MilvusBackend.open("/nonexistent/milvus.db")


def test_milvus_without_a_path_uses_a_temporary_folder_removed_on_close(collection):
    docs, doc_ids, queries, _ = collection
    index = build_backend("milvus", docs[:50], doc_ids[:50])
    folder = Path(index._workdir.name)
    assert (folder / "index" / "milvus.db").exists() and len(index) == 50
    small = InvertedIndex.from_csr(docs[:50], doc_ids[:50])
    for ids, w in queries[:5]:
        assert_same_top_k(small, index.search(ids, w, K), ids, w)
    index.close()
    assert not folder.exists()


# --- lucene ---------------------------------------------------------------------------------------


def _lucene_or_skip():
    """Skip without pyserini or Java 21. (Not ``importorskip("jnius")``: importing jnius starts a JVM,
    which must be started by the backend on the Java 21 runtime it picks.)"""
    from idfsplade.index.lucene import require

    try:
        require()
    except InputError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def lucene_index(collection, tmp_path_factory):
    _lucene_or_skip()
    docs, doc_ids, _, _ = collection
    index = build_backend("lucene", docs, doc_ids, path=tmp_path_factory.mktemp("lucene") / "index")
    yield index
    index.close()


def _dequantized(docs: sp.csr_matrix, scale: float) -> sp.csr_matrix:
    from idfsplade.index.lucene import quantize

    out = sp.csr_matrix((quantize(docs.data, scale) / scale, docs.indices.copy(), docs.indptr.copy()),
                        shape=docs.shape)  # copies: the matrix may be memory-mapped read-only
    out.eliminate_zeros()
    return out


def test_lucene_is_exact_on_the_quantized_vectors(collection, lucene_index):
    from idfsplade.index.lucene import quantize

    docs, doc_ids, queries, exact = collection
    assert len(lucene_index) == 400 and lucene_index.scale == 100
    quantized = InvertedIndex.from_csr(_dequantized(docs, 100), doc_ids)
    for (ids, w), hits in zip(queries, lucene_index.search_batch(queries, K)):
        assert_same_top_k(quantized, hits, ids, quantize(w, 100) / 100, atol=1e-5)
        assert recall_at_k(exact, hits, ids, w) >= 0.9


def test_lucene_single_search_matches_batch(collection, lucene_index):
    from idfsplade.index.lucene import LuceneBackend

    _, _, queries, _ = collection
    batch = lucene_index.search_batch(queries, K)
    for (ids, w), hits in zip(queries, batch):
        assert lucene_index.search(ids, w, K).ids == hits.ids
    assert lucene_index.search(np.array([3]), np.array([0.001]), K).ids == []  # rounds to a zero impact
    with pytest.raises(InputError, match="not a lucene index folder"):
        LuceneBackend.open("/nonexistent")


# --- real SciFact (slow) --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scifact_queries(scifact_sparse, scifact_subset):
    """The 300 SciFact test queries as ``(term_ids, weights)``, encoded with no model call."""
    from idfsplade.data import BeirDataset

    retriever, _ = scifact_sparse
    queries, _ = BeirDataset(scifact_subset).split_queries("test")
    assert len(queries) == 300 and len(retriever.index) == SCIFACT_SUBSET_DOCS
    encoded = retriever.query_encoder.encode_batch(list(queries.values()))
    return [(q.ids, q.weights) for q in encoded]


@pytest.mark.slow
def test_seismic_recall_at_10_on_scifact(scifact_sparse, scifact_queries):
    pytest.importorskip("seismic")
    retriever, docs = scifact_sparse
    exact = retriever.index
    index = build_backend("seismic", docs, exact.doc_ids, num_threads=1)
    hits = index.search_batch(scifact_queries, K)
    recall = float(np.mean([recall_at_k(exact, h, ids, w) for (ids, w), h in zip(scifact_queries, hits)]))
    print(f"seismic recall@10 vs exact on SciFact: {recall:.4f}")
    assert recall >= 0.99


def _search_and_close(backend, docs, doc_ids, queries, path):
    """Build an external backend, answer every query, and release it even if the search fails."""
    index = build_backend(backend, docs, doc_ids, path=path)
    try:
        return index.search_batch(queries, K)
    finally:
        index.close()


@pytest.mark.slow
def test_milvus_top_10_is_exact_on_scifact(scifact_sparse, scifact_queries, tmp_path):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    retriever, docs = scifact_sparse
    exact = retriever.index
    hits = _search_and_close("milvus", docs, exact.doc_ids, scifact_queries, tmp_path / "milvus")
    for (ids, w), h in zip(scifact_queries, hits):
        assert_same_top_k(exact, h, ids, w)
    same = sum(h.ids == exact.search(ids, w, K).ids for (ids, w), h in zip(scifact_queries, hits))
    print(f"milvus: {same}/{len(hits)} top-10 lists identical to the exact index, all equal up to ties")


@pytest.mark.slow
def test_lucene_top_10_on_scifact(scifact_sparse, scifact_queries, tmp_path):
    _lucene_or_skip()
    from idfsplade.index.lucene import quantize

    retriever, docs = scifact_sparse
    exact = retriever.index
    hits = _search_and_close("lucene", docs, exact.doc_ids, scifact_queries, tmp_path / "lucene")
    quantized = InvertedIndex.from_csr(_dequantized(docs, 100), exact.doc_ids)
    for (ids, w), h in zip(scifact_queries, hits):
        assert_same_top_k(quantized, h, ids, quantize(w, 100) / 100, atol=1e-5)
    recall = float(np.mean([recall_at_k(exact, h, ids, w) for (ids, w), h in zip(scifact_queries, hits)]))
    same = sum(h.ids == exact.search(ids, w, K).ids for (ids, w), h in zip(scifact_queries, hits))
    print(f"lucene (scale 100): top-10 overlap with the exact index {recall:.4f}, {same}/{len(hits)} lists identical")
    assert recall >= 0.99


def test_milvus_lite_start_is_retried(monkeypatch):
    """A milvus-lite server that fails to start (it does, now and then) is started again; the last
    failure is raised when every attempt fails."""
    from idfsplade.index import milvus

    class Fake:
        class MilvusException(Exception):
            pass

        def __init__(self, failures: int) -> None:
            self.failures, self.calls = failures, 0

        def MilvusClient(self, db, timeout=None):  # noqa: N802 - pymilvus' name
            self.calls += 1
            if self.calls <= self.failures:
                raise Fake.MilvusException("Fail connecting to server")
            return ("client", db, timeout)

    monkeypatch.setattr("time.sleep", lambda s: None)
    flaky = Fake(failures=2)
    assert milvus._embedded_client(flaky, "x.db") == ("client", "x.db", milvus.EMBEDDED_START_S)
    assert flaky.calls == 3
    dead = Fake(failures=5)
    with pytest.raises(Fake.MilvusException):
        milvus._embedded_client(dead, "x.db")
    assert dead.calls == milvus.EMBEDDED_START_ATTEMPTS

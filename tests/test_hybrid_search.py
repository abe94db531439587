"""Hybrid search from an index folder (`search --hybrid`, `serve --hybrid`): the folder's BM25 side-index
fused with the learned sparse run must give exactly `evaluate --hybrid`'s run, which fuses a BM25 built
from the corpus; each hit carries both parts' scores, and the sparse contributions sum to the sparse one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cli_helpers import run_cli

QUERY = "computer-based information retrieval for the library"


@pytest.fixture(scope="module")
def evaluated(adi_path, tmp_path_factory):
    """`evaluate --hybrid` on ADI: the model's work folder (index with a BM25 side-index, runs)."""
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, evaluate_dataset
    from idfsplade.search.hybrid import HybridSpec

    work = tmp_path_factory.mktemp("adi-hybrid")
    evaluate_dataset(BeirDataset(adi_path), "test", work, [SparseModelSpec(model="splade-tiny")], bm25=False, hybrid=HybridSpec())
    return work / "splade-tiny-corpus"


def _read_trec(path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        run.setdefault(qid, {})[doc] = float(score)
    return run


def test_index_folder_holds_a_stemmed_bm25_side_index(evaluated):
    meta = json.loads((evaluated / "index" / "meta.json").read_text())
    assert meta["info"]["bm25"] == {"folder": "bm25", "stemmer": "english", "k1": 1.2, "b": 0.75}
    bm25_meta = json.loads((evaluated / "index" / "bm25" / "meta.json").read_text())
    assert bm25_meta["n_docs"] == 82 and bm25_meta["stemmer"] == "english"


def test_search_queries_hybrid_is_evaluates_hybrid_run(evaluated, adi_path, tmp_path, monkeypatch, capsys):
    run_file = tmp_path / "hybrid.trec"
    code, _, err = run_cli(monkeypatch, capsys, "search", str(evaluated / "index"), "--queries",
                           str(adi_path / "queries.jsonl"), "--hybrid", "--k", "100", "--run", str(run_file))
    assert code == 0, err
    searched = _read_trec(run_file)
    (reference_file,) = evaluated.rglob("hybrid-bm25-stem-min_max-w=0.5.trec")
    reference = _read_trec(reference_file)
    test_queries = set(reference)
    assert test_queries and test_queries <= set(searched)
    for qid in test_queries:
        assert list(searched[qid]) == list(reference[qid]), qid
        np.testing.assert_allclose(list(searched[qid].values()), list(reference[qid].values()), atol=1e-6)


def _parts(evaluated, adi_path, k=100):
    """Both parts of a hybrid query rebuilt here: BM25 from the corpus, the sparse side from the index."""
    from idfsplade.data import document_text, iter_corpus
    from idfsplade.search import BM25Retriever
    from idfsplade.search.index_folder import open_index_retriever

    docs = list(iter_corpus(adi_path / "corpus.jsonl"))
    lexical = BM25Retriever([d.id for d in docs], [document_text(d) for d in docs], stemmer="english")
    sparse, _ = open_index_retriever(evaluated / "index")
    as_dict = lambda hits: {d: float(s) for d, s in zip(hits.ids, hits.scores)}  # noqa: E731
    return as_dict(lexical.search(QUERY, k)), as_dict(sparse.search(QUERY, k))


def test_search_hybrid_explain_shows_both_parts(evaluated, adi_path, monkeypatch, capsys):
    from idfsplade.search.hybrid import fuse

    lexical, sparse = _parts(evaluated, adi_path)
    expected = fuse([lexical, sparse], [0.5, 0.5], "min_max", k=5)
    code, out, err = run_cli(monkeypatch, capsys, "search", str(evaluated / "index"), "-q", QUERY, "--hybrid",
                             "--explain", "--k", "5")
    assert code == 0, err
    lines = out.strip().splitlines()
    hits = [line.split("\t") for line in lines if not line.startswith("\t")]
    assert [h[1] for h in hits] == list(expected)
    np.testing.assert_allclose([float(h[2]) for h in hits], list(expected.values()), atol=1e-4)
    parts = [line for line in lines if line.startswith("\t= fused(")]
    assert len(parts) == 5
    top = hits[0][1]
    assert parts[0] == f"\t= fused(bm25 {lexical[top]:.4f}, sparse {sparse[top]:.4f})"
    contributions = [line for line in lines if line.startswith("\t= ") and not line.startswith("\t= fused(")]
    assert float(contributions[0].rsplit("= ", 1)[1]) == pytest.approx(sparse[top], abs=1e-3)


def test_search_hybrid_with_a_fusion_method_registered_by_the_user(evaluated, adi_path, max_fusion, monkeypatch,
                                                                   capsys):
    """`search --hybrid --hybrid-method NAME` with a method registered in this test (docs/serving.md)."""
    code, out, err = run_cli(monkeypatch, capsys, "search", str(evaluated / "index"), "-q", QUERY, "--hybrid",
                             "--hybrid-method", max_fusion, "--hybrid-weight", "0.9", "--k", "5")
    assert code == 0, err
    lexical, sparse = _parts(evaluated, adi_path)
    expected = {d: max(0.1 * lexical.get(d, 0.0), 0.9 * sparse.get(d, 0.0)) for d in {**lexical, **sparse}}
    expected = dict(sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    hits = [line.split("\t") for line in out.strip().splitlines()]
    assert [h[1] for h in hits] == list(expected)
    np.testing.assert_allclose([float(h[2]) for h in hits], list(expected.values()), atol=1e-4)


def test_serve_hybrid_answers_like_the_hybrid_retriever(evaluated, adi_path):
    from idfsplade.search.hybrid import fuse
    from idfsplade.serve import ServeConfig, load_app

    lexical, sparse = _parts(evaluated, adi_path)
    expected = fuse([lexical, sparse], [0.3, 0.7], "min_max", k=10)
    client = TestClient(load_app(ServeConfig(evaluated / "index", hybrid=True, hybrid_weight=0.7)))
    health = client.get("/health").json()
    assert health["hybrid"] == {"lexical": "bm25-stem", "method": "min_max", "weight": 0.7, "depth": 100}
    body = client.post("/search", json={"query": QUERY, "k": 10, "explain": True}).json()
    assert body["ids"] == list(expected)
    np.testing.assert_allclose(body["scores"], list(expected.values()), atol=1e-6)
    for hit in body["hits"]:
        assert hit["lexical_score"] == (pytest.approx(lexical[hit["id"]], abs=1e-4) if hit["id"] in lexical else None)
        assert hit["sparse_score"] == (pytest.approx(sparse[hit["id"]], abs=1e-4) if hit["id"] in sparse else None)
        if hit["sparse_score"] is not None:
            assert sum(c["contribution"] for c in hit["explanation"]) == pytest.approx(hit["sparse_score"], abs=1e-3)
    plain = TestClient(load_app(ServeConfig(evaluated / "index"))).post("/search", json={"query": QUERY}).json()
    assert plain["ids"] == list(sparse)[:10] and plain["hits"][0]["lexical_score"] is None


def test_hybrid_without_a_side_index_is_a_one_line_error(evaluated, tmp_path, monkeypatch, capsys):
    from idfsplade.index import InvertedIndex
    from idfsplade.search.index_folder import open_index_retriever, write_index

    retriever, _ = open_index_retriever(evaluated / "index")
    bare = tmp_path / "bare"
    write_index(InvertedIndex.load(evaluated / "index", mmap=False), bare, query=retriever.query_encoder)
    code, _, err = run_cli(monkeypatch, capsys, "search", str(bare), "-q", QUERY, "--hybrid")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: {bare}: the index holds no BM25 side-index")
    code, _, err = run_cli(monkeypatch, capsys, "search", str(bare), "-q", QUERY, "--hybrid-weight", "0.3")
    assert code == 2 and "--hybrid-weight and --hybrid-method need --hybrid" in err

"""Hybrid rows of ``evaluate_dataset`` / ``idfsplade evaluate --hybrid`` on ADI, checked against a fusion
of the two runs recomputed here; bad hybrid options as one-line errors."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli



def test_evaluate_hybrid_row_is_the_fusion_of_the_two_runs(adi_path, tmp_path, monkeypatch, capsys):
    from idfsplade.data import BeirDataset, document_text
    from idfsplade.evaluate import evaluate_run
    from idfsplade.pipeline import SparseModelSpec, build_sparse_retriever
    from idfsplade.search import BM25Retriever
    from idfsplade.search.hybrid import fuse_runs

    work = tmp_path / "work"
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(adi_path), "-m", "splade-tiny", "--work", str(work),
                           "--no-bm25",
                           "--hybrid", "--hybrid-weight", "0.6")
    assert code == 0, err
    rows = {r["retriever"]: r for r in json.loads((work / "results.json").read_text())}
    name = "hybrid bm25-stem+splade-tiny idf=corpus (min_max w=0.6)"
    assert list(rows) == ["splade-tiny idf=corpus", name]
    # recompute both parts (the sparse one from the cached vectors) and fuse them here
    ds = BeirDataset(adi_path)
    docs = list(ds.iter_corpus())
    queries, qrels = ds.split_queries("test")
    lexical = BM25Retriever([d.id for d in docs], [document_text(d) for d in docs], stemmer="english")
    sparse, _ = build_sparse_retriever(SparseModelSpec(model="splade-tiny"), ds, work / "check", work / "vectors" / "splade-tiny")
    fused = fuse_runs([lexical.search_many(queries, k=100), sparse.search_many(queries, k=100)], [0.4, 0.6],
                      "min_max", k=100)
    expected = evaluate_run(qrels, fused)
    assert rows[name]["metrics"] == pytest.approx(expected, abs=1e-9)
    assert rows[name]["metrics"]["nDCG@10"] != pytest.approx(rows["splade-tiny idf=corpus"]["metrics"]["nDCG@10"],
                                                             abs=1e-4)
    assert len(list(work.rglob("hybrid-bm25-stem-min_max-w=0.6.trec"))) == 1


@pytest.mark.parametrize("args, message", [
    (["--hybrid-weight", "0.5"], "--hybrid-weight and --hybrid-method need --hybrid"),
    (["--hybrid", "--hybrid-method", "sum"], "fusion method must be one of ['min_max', 'rrf']"),
    (["--hybrid", "--hybrid-weight", "1.5"], "the hybrid weight must be in [0, 1]"),
])
def test_bad_hybrid_options_are_one_line_errors(monkeypatch, capsys, tmp_path, args, message):
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "datasets/adi", "--work", str(tmp_path), *args)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err

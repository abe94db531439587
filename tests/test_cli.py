"""The CLI end to end on ADI, and bad input as a one-line error with exit code 2."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from cli_helpers import run_cli

from idfsplade.cli import main


@pytest.fixture(scope="module")
def adi_eval(adi_path, tmp_path_factory):
    """`idfsplade evaluate datasets/adi -m splade-tiny` once for the module; returns the work folder."""
    work = tmp_path_factory.mktemp("adi-eval")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(sys, "argv", ["idfsplade", "evaluate", str(adi_path), "-m", "splade-tiny", "--work", str(work)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    monkeypatch.undo()
    assert (exit_info.value.code or 0) == 0
    return work


def test_evaluate_adi_against_independent_reference(adi_eval, adi_reference):
    rows = {r["retriever"]: r for r in json.loads((adi_eval / "results.json").read_text())}
    assert set(rows) == {"bm25", "splade-tiny idf=corpus"}
    bm25, sparse = rows["bm25"], rows["splade-tiny idf=corpus"]
    # ADI (82 docs, 35 queries, all judged pairs kept) against tests/reference.py: bm25s called directly
    # and raw-logit SPLADE vectors with a hand-counted IDF, both scored by ir-measures.
    assert bm25["metrics"]["nDCG@10"] == pytest.approx(adi_reference["bm25"], abs=1e-6)
    assert sparse["metrics"]["nDCG@10"] == pytest.approx(adi_reference["splade-tiny"], abs=1e-4)
    assert 100 < sparse["doc_active_dims"] < 250 and 5 < sparse["query_active_dims"] < 30
    assert (adi_eval / "results.md").read_text().startswith("| dataset | retriever | nDCG@10")
    assert len((adi_eval / "runs" / "bm25.trec").read_text().splitlines()) > 35 * 50


def test_encode_index_search_agree_with_evaluate(adi_eval, adi_path, tmp_path, monkeypatch, capsys):
    work = next(p for p in adi_eval.iterdir() if p.is_dir() and (p / "index").exists())
    idf_json = work / "idf.json"
    code, _, err = run_cli(monkeypatch, capsys, "encode", str(adi_path), "-m", "splade-tiny",
                           "--out", str(tmp_path / "docs"), "--idf", str(idf_json))
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "index", str(tmp_path / "docs"), "--out", str(tmp_path / "index"))
    assert code == 0, err
    # No --model/--idf: search takes them from the index's provenance.
    code, out, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "index"), "-q", "What is information science? Give definitions where possible.", "--k", "5")
    assert code == 0, err
    ranked = [line.split("\t") for line in out.strip().splitlines()]
    expected = sorted(((d, s) for (q, d, s) in _trec(work / "runs")
                       if q == "3"), key=lambda x: -x[1])[:5]
    assert [r[1] for r in ranked] == [d for d, _ in expected]
    np.testing.assert_allclose([float(r[2]) for r in ranked], [s for _, s in expected], atol=1e-3)


def _trec(runs_dir):
    (path,) = list(runs_dir.glob("*.trec"))
    for line in path.read_text().splitlines():
        q, _, d, _, s, _ = line.split()
        yield q, d, float(s)


@pytest.mark.parametrize("args, message", [
    (["evaluate", "/no/such/dataset"], "/no/such/dataset: dataset folder not found"),
    (["search", "/no/such/index", "-q", "x"], "/no/such/index: not an index folder"),
    (["search", "/no/such/index"], "give exactly one of --query or --queries"),
    (["index", "/no/such/docs", "--out", "/tmp/x"], "/no/such/docs: not a sparse-matrix folder"),
    (["encode", "datasets/adi", "--out", "/tmp/never", "--top-k", "0"], "field 'top_k': top_k must be >= 1"),
    (["evaluate", "datasets/adi", "--no-bm25", "--idf", "/no/such/idf.json", "--work", "/tmp/never-eval"],
     "/no/such/idf.json: file not found"),
    (["evaluate", "datasets/adi", "-m", "a", "-m", "b", "--name", "only-one"], "1 --name for 2 --model"),
])
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, args, message):
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in err


def test_malformed_corpus_line_is_reported(tmp_path, monkeypatch, capsys):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "text": "ok"}\n{"_id": "2", "txt": "typo"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("1\t1\t1\n")
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(tmp_path), "--work", str(tmp_path / "w"))
    assert code == 2
    assert f"{tmp_path / 'corpus.jsonl'}, line 2, field 'text': missing field" in err


def test_model_labels_keep_trained_runs_apart():
    from idfsplade.pipeline import SparseModelSpec, spec_slug

    assert SparseModelSpec(model="splade-tiny").label == "splade-tiny"
    assert SparseModelSpec(model="runs/train/try-t3/model").label == "try-t3"
    assert SparseModelSpec(model="runs/a/model", name="student").label == "student"
    # two runs' <run>/model folders get different cache folders (they used to share "model-model")
    assert spec_slug(SparseModelSpec(model="runs/a/model")) != spec_slug(SparseModelSpec(model="runs/b/model"))


def test_search_refuses_an_index_without_a_model_like_serve(tmp_path, monkeypatch, capsys):
    """No recorded model: guessing a tokenizer would answer with nonsense, so search stops (as serve does)."""
    import scipy.sparse as sp

    from idfsplade.index import InvertedIndex

    InvertedIndex.from_csr(sp.csr_matrix(np.ones((2, 30522), dtype=np.float32)), ["a", "b"]).save(tmp_path / "bare")
    code, _, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "bare"), "-q", "anything")
    assert code == 2 and "records no model (index.info); pass --model" in err


def test_model_loading_prints_no_library_progress_bars(tmp_path):
    """transformers' tqdm bars ("Loading weights", "Writing model shards") stay out of a command's output."""
    import os
    import subprocess

    corpus = tmp_path / "tiny"
    corpus.mkdir()
    (corpus / "corpus.jsonl").write_text("".join(json.dumps({"_id": str(i), "title": "", "text": text}) + "\n"
                                                 for i, text in enumerate(["sparse retrieval", "dense vectors"])))
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}  # as a user's shell
    code = "import sys; from idfsplade.cli import main; sys.argv[0] = 'idfsplade'; main()"
    result = subprocess.run([sys.executable, "-c", code, "encode", str(corpus), "--out", str(tmp_path / "vectors")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "vectors" / "meta.json").read_text())["shape"][0] == 2
    assert "Loading weights" not in result.stderr and "it/s]" not in result.stderr, result.stderr

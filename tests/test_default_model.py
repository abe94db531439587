"""The default document model `idfsplade-tiny` ships inside the package: its files match their checksums,
it is the default of encode / evaluate / adapt, and it reproduces its committed ADI result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[1]


def test_shipped_files_match_their_checksums_and_size():
    from idfsplade.model import resolve_model

    folder = Path(resolve_model("idfsplade-tiny"))
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    assert len(lines) >= 10
    for line in lines:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 20 * 2**20


def test_it_is_the_default_everywhere(adi_path):
    from idfsplade.model.registry import DEFAULT_DOC_MODEL
    from idfsplade.pipeline import SparseModelSpec
    from idfsplade.train.adapt import adapt_config

    assert DEFAULT_DOC_MODEL == SparseModelSpec().model == "idfsplade-tiny"
    assert adapt_config(adi_path).student.model == "idfsplade-tiny"


def test_evaluate_reproduces_the_committed_adi_score(adi_path, tmp_path, monkeypatch, capsys):
    """`idfsplade evaluate` with no --model gives the ADI nDCG@10 that benchmarks/relevance.py recorded."""
    committed = json.loads((REPO / "benchmarks" / "results" / "relevance.json").read_text())
    expected = next(r for r in committed["rows"] if r["dataset"] == "adi" and r["retriever"] == "default")
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(adi_path), "--no-bm25", "--work", str(tmp_path))
    assert code == 0, err
    (row,) = json.loads((tmp_path / "results.json").read_text())
    assert row["retriever"] == "idfsplade-tiny idf=corpus"
    assert row["metrics"]["nDCG@10"] == pytest.approx(expected["ndcg10"], abs=1e-4)
    assert row["metrics"]["Recall@100"] == pytest.approx(expected["recall100"], abs=1e-3)

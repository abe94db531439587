"""Report helpers of the main job: runs from score matrices, the nDCG-vs-FLOPS plot, the CLI overrides."""

from __future__ import annotations

import numpy as np
import pytest

from idfsplade.errors import InputError
from idfsplade.evaluate import ResultRow
from idfsplade.train.experiment import plot_ndcg_vs_flops, top_k_run


def test_top_k_run_ranks_each_query():
    scores = np.array([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0]])
    run = top_k_run(scores, ["q1", "q2"], ["a", "b", "c"], k=2)
    assert list(run["q1"]) == ["b", "c"] and list(run["q2"]) == ["a", "c"]
    assert run["q2"]["a"] == pytest.approx(3.0)


def test_plot_is_written(tmp_path):
    rows = [ResultRow("scifact", "bm25", {"nDCG@10": 0.67}),
            ResultRow("scifact", "untrained", {"nDCG@10": 0.65}, 10.0, 248.0, 1.2),
            ResultRow("scifact", "student", {"nDCG@10": 0.69}, 10.0, 200.0, 0.9)]
    plot_ndcg_vs_flops(rows, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_overrides_parse_yaml_values():
    from idfsplade.cli.train import _overrides

    assert _overrides(["loss.flops_weight=0.0001", "teachers.members=[{kind: bm25}]"]) == {
        "loss.flops_weight": 1e-4, "teachers.members": [{"kind": "bm25"}]}
    with pytest.raises(InputError, match="--set"):
        _overrides(["loss.flops_weight"])

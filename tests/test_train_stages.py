"""StageTimer: the main job's per-stage durations (report/timings.json)."""

import logging

import pytest

from idfsplade.train import stages
from idfsplade.train.stages import StageTimer


def test_stage_durations_accumulate_and_total(monkeypatch, caplog):
    ticks = iter([0.0, 2.0, 10.0, 13.5, 20.0, 21.25])
    monkeypatch.setattr(stages.time, "perf_counter", lambda: next(ticks))
    timer = StageTimer()
    with caplog.at_level(logging.INFO, logger="idfsplade"):
        with timer.stage("training"):
            pass
        with timer.stage("evaluate"):
            pass
        with pytest.raises(RuntimeError), timer.stage("training"):
            raise RuntimeError("killed")  # a failed stage still counts its time
    assert timer.as_dict() == {"training": 3.2, "evaluate": 3.5, "total": 6.8}
    assert "training done in 2 s" in caplog.text and "evaluate done in 4 s" in caplog.text

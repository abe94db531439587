"""Named, timed stages of a long job: each is logged when it starts and ends, and its duration kept.

The main job has a time budget (≤ 20 minutes on 2 cores for the shipped config); recording where the
time goes is what lets a user see which stage to shrink (steps, negatives, evaluation) when it does not fit.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

logger = logging.getLogger("idfsplade")


class StageTimer:
    """Wall-clock seconds per stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        logger.info("%s …", name)
        start = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + took
            logger.info("%s done in %.0f s", name, took)

    def as_dict(self) -> dict[str, float]:
        """Rounded seconds per stage plus their ``total``."""
        report = {name: round(s, 1) for name, s in self.seconds.items()}
        report["total"] = round(sum(self.seconds.values()), 1)
        return report

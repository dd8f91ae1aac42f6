"""The time left of a comparison, from the runs measured so far and weighted by what each run costs.

A run's *cost* is its epochs times the measured seconds per epoch of its group: the same data set and
arm when one of its runs has finished, else the same data set, else the same arm, else every run so
far. The time left is the elapsed wall time scaled by the cost still to run over the cost done:

``eta = elapsed * sum(cost of the runs left) / sum(seconds of the runs done)``

so that parallel workers (runs done faster than their own seconds add up) and a machine shared with
others (everything slower) are both in the measured ratio. The first runs of a comparison probe every
(data set, arm) once (:class:`~monai_multifair.comparison.runner.compare` hands them out first), so
that every group has its own measurement early; until then a group's cost is borrowed from the closest
measured one, scaled by its epochs.

Example:
    >>> clock = iter([0.0, 30.0]).__next__
    >>> eta = RunTimeEstimator(clock=clock)
    >>> eta.record("cohort", "erm", epochs=2, seconds=10.0)
    >>> eta.remaining([("cohort", "erm", 2), ("cohort", "multifair", 4)])  # 30 s for 10 s of work
    90.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

__all__ = ["RunTimeEstimator"]


class RunTimeEstimator:
    """Seconds per epoch of each (data set, arm) measured so far, and the time left of a list of runs.

    Args:
        clock: a monotonic clock in seconds (default ``time.perf_counter``; tests give a fake one). The
            estimator reads it once when created (the start) and once per :meth:`remaining`.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.started = clock()
        self._seconds: dict[tuple[str, str], float] = {}
        self._epochs: dict[tuple[str, str], int] = {}
        self.done_seconds = 0.0

    def record(self, dataset: str, arm: str, *, epochs: int, seconds: float) -> None:
        """One run finished in this session: ``seconds`` of its worker for ``epochs`` epochs."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"expected `epochs` to be an integer >= 1, got {epochs!r}")
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"expected `seconds` to be a finite number >= 0, got {seconds!r}")
        key = (dataset, arm)
        self._seconds[key] = self._seconds.get(key, 0.0) + float(seconds)
        self._epochs[key] = self._epochs.get(key, 0) + epochs
        self.done_seconds += float(seconds)

    def seconds_per_epoch(self, dataset: str, arm: str) -> float:
        """The measured seconds per epoch of the closest group (NaN before any run finished)."""
        for match in (
            lambda d, a: (d, a) == (dataset, arm),
            lambda d, a: d == dataset,
            lambda d, a: a == arm,
            lambda d, a: True,
        ):
            keys = [k for k in self._seconds if match(*k)]
            if keys:
                return sum(self._seconds[k] for k in keys) / sum(self._epochs[k] for k in keys)
        return math.nan

    def remaining(self, runs: Iterable[tuple[str, str, int]]) -> float | None:
        """Seconds left for ``runs`` (``(data set, arm, epochs)`` each); ``None`` before any run finished
        (or while every finished run took no measurable time)."""
        runs = list(runs)
        if not runs:
            return 0.0
        if self.done_seconds <= 0:
            return None
        cost = sum(self.seconds_per_epoch(d, a) * e for d, a, e in runs)
        return (self.clock() - self.started) * cost / self.done_seconds

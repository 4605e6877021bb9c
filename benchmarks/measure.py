"""Timing with repeats, summarised as median and spread, and throughput from it.

Project choices: every measurement is wall-clock time (``time.perf_counter``) of the
whole job as a user runs it (reading, computing, writing the GeoTIFF), repeated
``repeats`` times with no separate warm-up run; the median is the figure and the
min-max range the spread (with 3 repeats an IQR would be the min-max anyway).
Throughput is output megapixels per second: PAN-grid pixels (width x height, any
number of bands) divided by the seconds.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Timing:
    """Seconds of each repeat of one job."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)

    def throughput(self, pixels: int) -> "Throughput":
        """Megapixels per second: the median run's, and the range over the repeats."""
        mp = pixels / 1e6
        return Throughput(mp / self.median, mp / self.high, mp / self.low)

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "median": self.median, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Throughput:
    median: float  # MP/s of the median run
    low: float  # MP/s of the slowest run
    high: float  # MP/s of the fastest run


def repeat(job: Callable[[], object], repeats: int, budget: float | None = None) -> Timing:
    """Run ``job`` ``repeats`` times and time each run (the job raises on failure).

    With a ``budget`` (seconds), no further run starts once the runs so far took
    longer than it: a very slow job (dm50 on a CPU) is measured once, not skipped.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    timing = Timing()
    for _ in range(repeats):
        if budget is not None and sum(timing.seconds) > budget:
            break
        start = time.perf_counter()
        job()
        timing.seconds.append(time.perf_counter() - start)
    return timing

"""Latency statistics the way benchmark tools report them."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    runs: int
    warmup: int
    threads: int
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    peak_rss_mb: float | None = None
    p50_ci_ms: tuple[float, float] | None = None

    @classmethod
    def from_seconds(cls, samples: list[float], warmup: int, threads: int,
                     peak_rss_mb: float | None = None) -> "LatencyStats":
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(runs=len(ms), warmup=warmup, threads=threads, mean_ms=float(ms.mean()), std_ms=float(ms.std()),
                   min_ms=float(ms.min()), max_ms=float(ms.max()), p50_ms=float(p50), p90_ms=float(p90),
                   p99_ms=float(p99), peak_rss_mb=peak_rss_mb, p50_ci_ms=median_ci(ms))

    def to_dict(self) -> dict:
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        if self.p50_ci_ms is not None:
            out["p50_ci_ms"] = [round(v, 4) for v in self.p50_ci_ms]
        return out


def median_ci(samples_ms: np.ndarray, z: float = 1.96) -> tuple[float, float] | None:
    """Distribution-free ~95 % confidence interval of the median from order statistics (None below 6 runs)."""
    n = len(samples_ms)
    if n < 6:
        return None
    ordered = np.sort(samples_ms)
    half_width = z * np.sqrt(n) / 2
    low = max(int(np.floor(n / 2 - half_width)), 0)
    high = min(int(np.ceil(n / 2 + half_width)), n - 1)
    return float(ordered[low]), float(ordered[high])


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def time_calls(call: Callable[[], object], threads: int, warmup: int, runs: int,
               min_seconds: float) -> LatencyStats:
    """The benchmark loop every runner shares: warm up, then time ``runs`` calls or ``min_seconds``."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < runs or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return LatencyStats.from_seconds(samples, warmup, threads, peak_rss_mb())

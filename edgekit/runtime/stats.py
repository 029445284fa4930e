"""Latency statistics the way benchmark tools report them."""

from __future__ import annotations

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

    @classmethod
    def from_seconds(cls, samples: list[float], warmup: int, threads: int) -> "LatencyStats":
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(runs=len(ms), warmup=warmup, threads=threads, mean_ms=float(ms.mean()), std_ms=float(ms.std()),
                   min_ms=float(ms.min()), max_ms=float(ms.max()), p50_ms=float(p50), p90_ms=float(p90),
                   p99_ms=float(p99))

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

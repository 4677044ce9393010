"""Latency summaries, and the reference's latency protocol (reference-method.md 10.2).

The reference timed one whole-fold pass per fold with plotting and JSON writing inside the timer;
its "230 -> 29 ms std" is a std over five such numbers. `reference_fold_pass` measures that form
beside our per-call timing (qmoe.bench.suite: warm-up, >= 1,000 batch-1 calls, raw samples kept).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from qmoe.contract.benchmarks import REFERENCE_BATCH

Model = Callable[[Tensor], object]


class LatencySummary(NamedTuple):
    n: int
    median_ms: float
    mean_ms: float
    std_ms: float  # sample std (ddof 1)
    iqr_ms: float
    p95_ms: float
    p99_ms: float


def summarize(samples_ms: np.ndarray) -> LatencySummary:
    q25, q50, q75, q95, q99 = np.percentile(samples_ms, [25, 50, 75, 95, 99])
    return LatencySummary(
        len(samples_ms),
        float(q50),
        float(samples_ms.mean()),
        float(samples_ms.std(ddof=1)),
        float(q75 - q25),
        float(q95),
        float(q99),
    )


@torch.inference_mode()
def reference_fold_pass(model: Model, x: Tensor, batch: int = REFERENCE_BATCH) -> float:
    """The reference's protocol (10.2): wall-clock seconds of one pass over the whole test fold in
    batches of 64, predictions converted to Python lists, no warm-up."""
    t0 = time.perf_counter()
    preds: list[int] = []
    for start in range(0, x.shape[0], batch):
        out = model(x[start : start + batch])
        logits = out if isinstance(out, Tensor) else out.logits
        preds += logits.softmax(dim=1).argmax(dim=1).tolist()
    return time.perf_counter() - t0

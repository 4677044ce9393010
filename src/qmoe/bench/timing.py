"""Latency harness: batch-1 inference timed per call, interleaved across models, raw samples kept.

The reference timed one whole-fold pass per fold with plotting and JSON writing inside the timer
(reference-method.md 10.2); its "230 -> 29 ms std" is a std over five such numbers. Here: warm-up
first, then >= 1,000 timed calls per model under torch.inference_mode with a fixed thread count,
`perf_counter_ns` around the model call only, results written into a preallocated array. Models
are measured in round-robin blocks so slow drift of the machine affects all of them alike.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from qmoe.io import InputError, require

Model = Callable[[Tensor], object]


@dataclass(frozen=True)
class BenchmarkConfig:
    """params.yaml `benchmark`."""

    threads: int = 1
    warmup: int = 50
    samples: int = 1000
    block: int = 100  # calls per model per round-robin turn
    batch_sizes: tuple[int, ...] = (1, 8, 64)
    batch_repeats: int = 50
    energy_samples: int = 2000  # batch-1 calls per energy block
    energy_repeats: int = 3  # blocks per model, interleaved across models

    def __post_init__(self) -> None:
        require(1 <= self.threads <= 256, "benchmark.threads", f"{self.threads} not in [1, 256]")
        require(
            0 <= self.warmup <= 1_000_000, "benchmark.warmup", f"{self.warmup} not in [0, 1000000]"
        )
        require(
            100 <= self.samples <= 10_000_000,
            "benchmark.samples",
            f"{self.samples} not in [100, 10000000] (variance tests need many samples)",
        )
        require(
            1 <= self.block <= self.samples,
            "benchmark.block",
            f"{self.block} not in [1, samples={self.samples}]",
        )
        require(
            len(self.batch_sizes) > 0 and all(b >= 1 for b in self.batch_sizes),
            "benchmark.batch_sizes",
            f"{list(self.batch_sizes)}: need one or more sizes >= 1",
        )
        require(self.batch_repeats >= 1, "benchmark.batch_repeats", f"{self.batch_repeats} < 1")
        require(
            100 <= self.energy_samples <= 100_000_000,
            "benchmark.energy_samples",
            f"{self.energy_samples} not in [100, 100000000]",
        )
        require(
            1 <= self.energy_repeats <= 1000,
            "benchmark.energy_repeats",
            f"{self.energy_repeats} not in [1, 1000]",
        )


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """torch intra-op threads fixed to `threads` inside the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


def _rows(x: Tensor, batch: int) -> list[Tensor]:
    """Contiguous input batches prepared before timing (cycling through the test samples)."""
    n = x.shape[0]
    if n == 0:
        raise InputError("no test samples to time: the input tensor has 0 rows")
    return [x[(i + torch.arange(batch)) % n].contiguous() for i in range(0, n, batch)]


@torch.inference_mode()
def _timed(model: Model, rows: Sequence[Tensor], out: np.ndarray, start: int, count: int) -> None:
    """Time `count` calls into out[start:start+count] (ns). Nothing else happens in the timer."""
    clock = time.perf_counter_ns
    n = len(rows)
    for i in range(start, start + count):
        x = rows[i % n]
        t0 = clock()
        model(x)
        out[i] = clock() - t0


@torch.inference_mode()
def warm_up(model: Model, rows: Sequence[Tensor], calls: int) -> None:
    for i in range(calls):
        model(rows[i % len(rows)])


class RoundRobin(NamedTuple):
    samples_ms: dict[str, np.ndarray]  # model key -> (samples,) per-call latency in ms
    order: list[tuple[int, str]]  # (block index, model key) in the order measured


def round_robin_latency(
    models: Mapping[str, Model], inputs: Mapping[str, Tensor], warmup: int, samples: int, block: int
) -> RoundRobin:
    """Batch-1 latency of each model on its own inputs (n, d), interleaved in blocks."""
    rows = {k: _rows(inputs[k], 1) for k in models}
    for key, model in models.items():
        warm_up(model, rows[key], warmup)
    raw = {k: np.zeros(samples, dtype=np.int64) for k in models}
    order = []
    for b, start in enumerate(range(0, samples, block)):
        count = min(block, samples - start)
        for key, model in models.items():
            _timed(model, rows[key], raw[key], start, count)
            order.append((b, key))
    return RoundRobin({k: v / 1e6 for k, v in raw.items()}, order)


def batch_latency(model: Model, x: Tensor, batch: int, warmup: int, repeats: int) -> LatencySummary:
    """Latency of calls on `batch` samples at a time (cycling through x)."""
    rows = _rows(x, batch)
    warm_up(model, rows, warmup)
    raw = np.zeros(repeats, dtype=np.int64)
    _timed(model, rows, raw, 0, repeats)
    return summarize(raw / 1e6)


@torch.inference_mode()
def reference_fold_pass(model: Model, x: Tensor, batch: int = 64) -> float:
    """The reference's protocol (10.2): wall-clock seconds of one pass over the whole test fold in
    batches of 64, predictions converted to Python lists, no warm-up."""
    t0 = time.perf_counter()
    preds: list[int] = []
    for start in range(0, x.shape[0], batch):
        out = model(x[start : start + batch])
        logits = out if isinstance(out, Tensor) else out.logits
        preds += logits.softmax(dim=1).argmax(dim=1).tolist()
    return time.perf_counter() - t0


@torch.inference_mode()
def run_calls(model: Model, x: Tensor, calls: int) -> None:
    """`calls` batch-1 inferences (the block whose energy is measured)."""
    rows = _rows(x, 1)
    for i in range(calls):
        model(rows[i % len(rows)])

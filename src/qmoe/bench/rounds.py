"""Per-round medians of the batch-1 timing blocks (rounds.csv): the benchmark's measurement that
latency ratios pair by round (qmoe.analysis.rounds computes them).

A benchmark times every target (variant x model x runtime) once per round, in ABBA order, so
two targets timed in the same round saw the same state of the machine within about a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

ROUND_COLUMNS = [
    "variant",
    "fold",
    "seed",
    "runtime",
    "form",
    "regime",
    "round",
    "position",
    "n",
    "median_ms",
]


class Block(NamedTuple):
    """One timed block of run.json's `order` (batch 1): which samples of which target."""

    variant: str
    fold: int
    seed: int
    runtime: str
    form: str  # qmoe.contract.benchmarks.Form value
    regime: str  # qmoe.contract.benchmarks.Regime value
    round: int
    position: int  # index of the block in the run's order (0 = first timed)
    first: int  # index of its first call in the target's sample array
    calls: int


def blocks(order: Sequence[Mapping]) -> list[Block]:
    """The batch-1 blocks of a run's `order`, with each block's first sample index (blocks of a
    target fill its sample array in the order they ran)."""
    filled: dict[tuple, int] = {}
    out = []
    for position, o in enumerate(order):
        if int(o["batch_size"]) != 1:
            continue
        target = (
            o["variant"],
            int(o["fold"]),
            int(o["seed"]),
            o["runtime"],
            o.get("form", "whole"),
            o.get("regime", "warm"),
        )
        first = filled.get(target, 0)
        filled[target] = first + int(o["calls"])
        out.append(Block(*target, int(o["turn"]), position, first, int(o["calls"])))
    return out


def round_medians(order: Sequence[Mapping], samples_ms: Mapping[tuple, np.ndarray]) -> pd.DataFrame:
    """rounds.csv: one row per batch-1 block, its median; `samples_ms` maps (variant, fold, seed,
    runtime, form, regime) -> that target's batch-1 samples in ms, in the order measured."""
    rows = []
    for b in blocks(order):
        x = samples_ms[(b.variant, b.fold, b.seed, b.runtime, b.form, b.regime)]
        x = x[b.first : b.first + b.calls]
        rows.append({**b._asdict(), "n": len(x), "median_ms": float(np.median(x))})
    return pd.DataFrame(rows, columns=[*ROUND_COLUMNS, "first"]).drop(columns="first")

"""Timed blocks: the timer loops and the ABBA round-robin that interleaves every target and cache
regime, so slow drift of the machine reaches them alike (qmoe.bench.suite runs it)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from qmoe.bench.regimes import Flush
from qmoe.bench.runners import Call, Target
from qmoe.contract.benchmarks import Regime


class Prepared(NamedTuple):
    target: Target
    calls: dict[int, list[Call]]  # batch size -> prepared calls (the first session)
    # every session's calls (the first included); round t times session t % len: each session
    # lays the weights out at other addresses, and cache-set effects of one layout move a
    # small model's latency by several %, so rotating them averages the layout out
    rotation: tuple[dict[int, list[Call]], ...] = ()

    def turn(self, t: int, batch: int) -> list[Call]:
        return (self.rotation or (self.calls,))[t % max(1, len(self.rotation))][batch]


@torch.inference_mode()
def _timed(fns: Sequence[Call], out: np.ndarray, start: int, count: int) -> None:
    """`count` calls timed into out[start:start + count] (ns); nothing else inside the timer."""
    clock, n = time.perf_counter_ns, len(fns)
    for i in range(start, start + count):
        f = fns[i % n]
        t0 = clock()
        f()
        out[i] = clock() - t0


@torch.inference_mode()
def _timed_after(fns: Sequence[Call], before: Flush, out: np.ndarray, start: int, count: int):
    """As `_timed`, with `before()` (the cache flush) run ahead of every call, outside its timer."""
    clock, n = time.perf_counter_ns, len(fns)
    for i in range(start, start + count):
        f = fns[i % n]
        before()
        t0 = clock()
        f()
        out[i] = clock() - t0


@torch.inference_mode()
def warm(fns: Sequence[Call], count: int) -> None:
    for i in range(count):
        fns[i % len(fns)]()


def round_robin(
    prepared: Sequence[Prepared],
    batch: int,
    per_turn: dict[Target, int],
    turns: int,
    regimes: Sequence[Regime] = (Regime.WARM,),
    flush: Flush | None = None,
) -> tuple[dict[tuple[Target, Regime], np.ndarray], list[dict]]:
    """ABBA round-robin of timed blocks: turn t runs every (target, regime), forwards when t is
    even and backwards when odd; each block is `per_turn[target]` calls; `after_backbone` blocks
    run `flush` before each call."""
    items = [(p, r) for p in prepared for r in regimes]
    raw = {(p.target, r): np.zeros(turns * per_turn[p.target], dtype=np.int64) for p, r in items}
    order = []
    for t in range(turns):
        for p, regime in items if t % 2 == 0 else items[::-1]:
            n, fns, out = per_turn[p.target], p.turn(t, batch), raw[(p.target, regime)]
            if regime is Regime.AFTER_BACKBONE:
                _timed_after(fns, flush, out, t * n, n)
            else:
                _timed(fns, out, t * n, n)
            order.append(
                {
                    "turn": t,
                    "batch_size": batch,
                    "variant": p.target.variant,
                    "fold": p.target.key.fold,
                    "seed": p.target.key.seed,
                    "runtime": p.target.runtime,
                    "form": p.target.form.value,
                    "regime": regime.value,
                    "calls": n,
                }
            )
    return raw, order

"""Measured energy per inference from RAPL package counters, with an idle baseline subtracted.

    counter = find_rapl()                          # None on machines without readable RAPL
    idle = measure(counter, lambda: time.sleep(5.0), calls=0)
    busy = measure(counter, lambda: run(n), calls=n)
    per_call_j = per_inference([busy], [idle])     # (E_busy - P_idle * t_busy) / n

Without a counter (this project's CI VM) there is no measurement: CodeCarbon then multiplies a
power model by time, and qmoe.bench.suite labels that "estimated: power model x time".
RAPL: /sys/class/powercap/intel-rapl:<pkg>/energy_uj (microjoules, wraps at max_energy_range_uj).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple


class RaplCounter(NamedTuple):
    """Package-level energy counters; `read()` is the sum over packages in microjoules."""

    files: tuple[Path, ...]
    ranges: tuple[int, ...]  # max_energy_range_uj of each: where the counter wraps

    def read(self) -> tuple[int, ...]:
        return tuple(int(f.read_text()) for f in self.files)


def find_rapl(root: Path = Path("/sys/class/powercap")) -> RaplCounter | None:
    """The readable package domains (intel-rapl:N, not their sub-zones), or None."""
    files, ranges = [], []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue
        try:
            files.append(zone / "energy_uj")
            int(files[-1].read_text())
            ranges.append(int((zone / "max_energy_range_uj").read_text()))
        except (OSError, ValueError):
            return None  # present but not readable (root-only since 2020 kernels)
    return RaplCounter(tuple(files), tuple(ranges)) if files else None


def delta_uj(before: Sequence[int], after: Sequence[int], ranges: Sequence[int]) -> int:
    """Energy between two reads, summed over packages, one wrap-around allowed per counter."""
    total = 0
    for b, a, r in zip(before, after, ranges, strict=True):
        total += a - b if a >= b else a + r + 1 - b
    return total


class Block(NamedTuple):
    joules: float
    seconds: float
    calls: int


def measure(
    counter: RaplCounter,
    work: Callable[[], object],
    calls: int,
    clock: Callable[[], float] = time.perf_counter,
) -> Block:
    """Energy and duration of one block of `work` (`calls` inferences; 0 for an idle block)."""
    e0, t0 = counter.read(), clock()
    work()
    t1, e1 = clock(), counter.read()
    return Block(delta_uj(e0, e1, counter.ranges) / 1e6, t1 - t0, calls)


def idle_power(idle: Sequence[Block]) -> float:
    """Watts of the idle baseline: its energy over its time."""
    seconds = sum(b.seconds for b in idle)
    if not idle or seconds <= 0:
        raise ValueError("an idle baseline needs at least one block of non-zero length")
    return sum(b.joules for b in idle) / seconds


def per_inference(blocks: Sequence[Block], idle: Sequence[Block]) -> list[float]:
    """Joules per inference of each block: (block energy - idle power x block time) / calls."""
    p_idle = idle_power(idle)
    out = []
    for b in blocks:
        if b.calls <= 0:
            raise ValueError("a measured block must contain at least one call")
        out.append((b.joules - p_idle * b.seconds) / b.calls)
    return out

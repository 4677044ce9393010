"""One benchmark of every variant of a (dataset, protocol), side by side, on one pinned core.

Order of work (all under the machine-wide lock, pinned, `threads` intra-op threads):
1. the reference's own latency (10.2): one cold pass over each torch model's test fold, batch 64;
2. warm-up: every target (variant x chosen model x runtime) `warmup` batch-1 calls (torch: in
   proportion to its samples) and a few at each larger batch;
3. batch 1: `samples` calls per ONNX Runtime target (`torch_samples` per torch target) in timed
   blocks, round-robin across all targets in ABBA order (turn t forwards, turn t+1 backwards), so
   drift of the machine reaches every variant alike; every call's time is kept;
4. batch 8, 64, ...: `batch_repeats` calls per ONNX Runtime target (torch: scaled down like its
   batch-1 samples), ABBA round-robin likewise;
5. energy: with readable RAPL, blocks of `energy_block_s` seconds per variant and idle blocks of
   the same length, interleaved (qmoe.bench.rapl); without it CodeCarbon estimates the batch-1
   phase's power from a model and the result is labelled "estimated: power model x time".
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from qmoe.bench import machine, rapl
from qmoe.bench.runners import Call, Model, Target, applies, calls, check_runtimes, engine
from qmoe.bench.timing import reference_fold_pass
from qmoe.energy import EnergyMeter, kwh_to_joules
from qmoe.io import require

log = logging.getLogger(__name__)

ESTIMATED = "estimated: power model x time"


@dataclass(frozen=True)
class SuiteConfig:
    """params.yaml `benchmark`."""

    runtimes: tuple[str, ...]  # first = the deployment (summary.csv's latency_* columns)
    threads: int
    cpu: int  # index into the allowed CPUs (-1: the last)
    models_per_fold: int
    warmup: int
    samples: int
    torch_samples: int
    block: int
    batch_sizes: tuple[int, ...]
    batch_repeats: int  # ONNX Runtime calls per target and batch size > 1 (torch: fewer)
    energy_block_s: float
    energy_repeats: int
    sessions: int  # ONNX Runtime sessions per artefact, used in turn round by round
    nice: int  # niceness while timing (-20..19; < 0 needs CAP_SYS_NICE: less preemption)
    frontend_clips: int  # clips whose front end (decode, mel, image, backbone) is timed
    frontend_repeats: int  # passes over those clips

    def __post_init__(self) -> None:
        check_runtimes(self.runtimes)
        require(1 <= self.threads <= 256, "benchmark.threads", f"{self.threads} not in [1, 256]")
        require(self.models_per_fold >= 1, "benchmark.models_per_fold", "must be >= 1")
        require(self.warmup >= 0, "benchmark.warmup", "must be >= 0")
        require(100 <= self.samples, "benchmark.samples", f"{self.samples} < 100")
        require(
            1 <= self.block <= self.samples and self.samples % self.block == 0,
            "benchmark.block",
            f"{self.block} must divide samples={self.samples}",
        )
        turns = self.samples // self.block
        require(
            self.torch_samples >= turns and self.torch_samples % turns == 0,
            "benchmark.torch_samples",
            f"{self.torch_samples} must be a multiple of the "
            f"{turns} round-robin turns (samples / block)",
        )
        require(
            len(self.batch_sizes) > 0 and min(self.batch_sizes) >= 1,
            "benchmark.batch_sizes",
            f"{list(self.batch_sizes)}: need sizes >= 1",
        )
        require(self.batch_repeats >= 5, "benchmark.batch_repeats", "must be >= 5")
        require(
            self.energy_block_s >= 5.0,
            "benchmark.energy_block_s",
            f"{self.energy_block_s} < 5 s (RAPL blocks must be long against its update rate)",
        )
        require(self.energy_repeats >= 1, "benchmark.energy_repeats", "must be >= 1")
        require(1 <= self.sessions <= 16, "benchmark.sessions", f"{self.sessions} not in [1, 16]")
        require(-20 <= self.nice <= 19, "benchmark.nice", f"{self.nice} not in [-20, 19]")
        require(self.frontend_clips >= 1, "benchmark.frontend_clips", "must be >= 1")
        require(self.frontend_repeats >= 1, "benchmark.frontend_repeats", "must be >= 1")

    @property
    def turns(self) -> int:
        return self.samples // self.block

    def per_turn(self, target: Target) -> int:
        return self.block if target.runtime == "onnxruntime" else self.torch_samples // self.turns

    def repeats(self, target: Target) -> int:
        """Calls per batch size > 1: `batch_repeats`, scaled like batch 1 for torch (>= 5)."""
        if target.runtime == "onnxruntime":
            return self.batch_repeats
        return max(5, self.batch_repeats * self.torch_samples // self.samples)


class Prepared(NamedTuple):
    target: Target
    calls: dict[int, list[Call]]  # batch size -> prepared calls (the first session)
    # every session's calls (the first included); round t times session t % len: each session
    # lays the weights out at other addresses, and cache-set effects of one layout move a
    # small model's latency by several %, so rotating them averages the layout out
    rotation: tuple[dict[int, list[Call]], ...] = ()

    def turn(self, t: int, batch: int) -> list[Call]:
        return (self.rotation or (self.calls,))[t % max(1, len(self.rotation))][batch]


class EnergyResult(NamedTuple):
    method: str  # starts with "measured" or ESTIMATED
    watts: float | None  # estimate: the power model's mean watts
    per_inference_j: dict[str, list[float]]  # measured: variant -> joules per call, per block
    blocks: list[dict]  # energy.csv rows (every block as measured)


class SuiteResult(NamedTuple):
    samples_ns: dict[tuple[Target, int], np.ndarray]  # (target, batch) -> per-call ns
    order: list[dict]  # timed blocks in the order run
    energy: EnergyResult
    machine: dict  # cpu, lock wait, snapshots before/after
    fold_pass_s: dict[Target, float]  # torch targets: the reference's 10.2 pass


def prepare(models: Sequence[Model], cfg: SuiteConfig) -> list[Prepared]:
    """Targets grouped by runtime (then model): in a round, an ONNX Runtime block follows another
    one, not a torch eager call whose temporaries (the faithful forms re-quantise every weight per
    call) evict the next model's weights. Interleaved, the faithful MoE / fp32 ratio moved 6-12 %
    between two runs of one commit; the corrected one (lighter torch forms) within 4 %."""
    out = []
    for runtime in cfg.runtimes:
        for m in models:
            if applies(m, runtime):
                copies = cfg.sessions if runtime == "onnxruntime" else 1
                rotation = tuple(
                    {b: calls(runner, runtime, m.x, b) for b in sorted({1, *cfg.batch_sizes})}
                    for runner in [engine(m, runtime, cfg.threads) for _ in range(copies)]
                )
                out.append(Prepared(Target(m.variant, m.key, runtime), rotation[0], rotation))
    return out


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
def _warm(fns: Sequence[Call], count: int) -> None:
    for i in range(count):
        fns[i % len(fns)]()


def round_robin(
    prepared: Sequence[Prepared], batch: int, per_turn: dict[Target, int], turns: int
) -> tuple[dict[Target, np.ndarray], list[dict]]:
    """ABBA round-robin of timed blocks: turn t runs every target, forwards when t is even and
    backwards when odd; each block is `per_turn[target]` calls."""
    raw = {p.target: np.zeros(turns * per_turn[p.target], dtype=np.int64) for p in prepared}
    order = []
    for t in range(turns):
        for p in prepared if t % 2 == 0 else prepared[::-1]:
            n = per_turn[p.target]
            _timed(p.turn(t, batch), raw[p.target], t * n, n)
            order.append(
                {
                    "turn": t,
                    "batch_size": batch,
                    "variant": p.target.variant,
                    "fold": p.target.key.fold,
                    "seed": p.target.key.seed,
                    "runtime": p.target.runtime,
                    "calls": n,
                }
            )
    return raw, order


def _latency(prepared: Sequence[Prepared], cfg: SuiteConfig, meter: EnergyMeter | None):
    t0 = time.perf_counter()
    for p in prepared:  # torch: fewer warm-up calls, in proportion to its samples
        share = cfg.per_turn(p.target) / cfg.block
        for each in p.rotation or (p.calls,):
            _warm(each[1], max(2, round(cfg.warmup * share)))
            for b in cfg.batch_sizes:
                _warm(each[b], max(2, round(min(cfg.warmup, 10) * share)))
    t1 = time.perf_counter()
    per_turn = {p.target: cfg.per_turn(p.target) for p in prepared}
    with meter.measure("batch-1 round robin") if meter else contextlib.nullcontext() as reading:
        raw, order = round_robin(prepared, 1, per_turn, cfg.turns)
    samples = {(t, 1): v for t, v in raw.items()}
    t2 = time.perf_counter()
    turns = min(cfg.batch_repeats, 5)
    for b in [b for b in cfg.batch_sizes if b != 1]:
        each = {p.target: math.ceil(cfg.repeats(p.target) / turns) for p in prepared}
        raw, more = round_robin(prepared, b, each, turns)
        samples |= {(t, b): v for t, v in raw.items()}
        order += more
    log.info(
        "%d targets: warm-up %.1f s, batch 1 %.1f s, batch %s %.1f s",
        len(prepared),
        t1 - t0,
        t2 - t1,
        [b for b in cfg.batch_sizes if b != 1],
        time.perf_counter() - t2,
    )
    return samples, order, reading


def _estimate(reading, method: str) -> EnergyResult:
    """CodeCarbon over the batch-1 phase: its power model's mean watts (a model, not a reading)."""
    watts = kwh_to_joules(reading.energy_kwh) / reading.duration_s
    block = {
        "block": "batch-1 round robin",
        "calls": None,
        "energy_j": kwh_to_joules(reading.energy_kwh),
        "duration_s": reading.duration_s,
        "kind": "codecarbon task",
    }
    return EnergyResult(f"{ESTIMATED} ({method})", watts, {}, [block])


def measure_rapl(
    prepared: Sequence[Prepared], samples: dict, cfg: SuiteConfig, counter: rapl.RaplCounter
) -> EnergyResult:
    """Blocks of >= energy_block_s per variant (its first deployment-runtime target), idle
    blocks of the same length between rounds, ABBA across variants."""
    first = {}
    for p in prepared:
        if p.target.runtime == cfg.runtimes[0]:
            first.setdefault(p.target.variant, p)
    idle, busy, rows = [], {v: [] for v in first}, []
    for r in range(cfg.energy_repeats):
        idle.append(rapl.measure(counter, lambda: time.sleep(cfg.energy_block_s), 0))
        rows.append(
            {
                "block": f"idle {r}",
                "calls": 0,
                "energy_j": idle[-1].joules,
                "duration_s": idle[-1].seconds,
                "kind": "idle",
            }
        )
        for v, p in list(first.items()) if r % 2 == 0 else list(first.items())[::-1]:
            median_s = float(np.median(samples[(p.target, 1)])) / 1e9
            n = max(1, math.ceil(cfg.energy_block_s / median_s))
            block = rapl.measure(counter, lambda p=p, n=n: _warm(p.calls[1], n), n)
            busy[v].append(block)
            rows.append(
                {
                    "block": f"{v} {r}",
                    "calls": n,
                    "energy_j": block.joules,
                    "duration_s": block.seconds,
                    "kind": "inference",
                    "variant": v,
                }
            )
    per = {v: rapl.per_inference(blocks, idle) for v, blocks in busy.items()}
    return EnergyResult(
        "measured: RAPL package counters, idle baseline subtracted", None, per, rows
    )


def run(models: Sequence[Model], cfg: SuiteConfig, meter_factory) -> SuiteResult:
    """Everything above, under the lock and pinned; `meter_factory()` -> EnergyMeter (used only
    when no RAPL counter is readable)."""
    with machine.MachineLock() as waited, machine.priority(cfg.nice) as nice:
        before_affinity = os.sched_getaffinity(0)
        cpu = machine.pin_to_core(cfg.cpu)
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            prepared = prepare(models, cfg)
            start = machine.snapshot(cpu)
            fold_pass = {
                Target(m.variant, m.key, "torch"): reference_fold_pass(
                    m.loaded.model, torch.from_numpy(m.x)
                )
                for m in models
                if "torch" in cfg.runtimes
            }
            counter = rapl.find_rapl()
            with meter_factory() if counter is None else contextlib.nullcontext() as meter:
                samples, order, reading = _latency(prepared, cfg, meter)
                energy = (
                    measure_rapl(prepared, samples, cfg, counter)
                    if counter is not None
                    else _estimate(reading, meter.method)
                )
            end = machine.snapshot(cpu)
        finally:
            torch.set_num_threads(threads)
            os.sched_setaffinity(0, before_affinity)
    info = {
        "cpu": cpu,
        "lock_wait_s": round(waited, 3),
        "nice": nice,
        "start": start,
        "end": end,
        "threads": cfg.threads,
    }
    return SuiteResult(samples, order, energy, info, fold_pass)

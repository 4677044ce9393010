"""One benchmark of every variant of a (dataset, protocol), side by side, on one pinned core.

Order of work (all under the machine-wide lock, pinned, `threads` intra-op threads):
1. the reference's own latency (10.2): one cold pass over each torch model's test fold, batch 64;
2. warm-up: every target (variant x chosen model x runtime x MoE form) `warmup` batch-1 calls
   (torch: in proportion to its samples) and a few at each larger batch;
3. batch 1: per cache regime (qmoe.bench.regimes: `warm`, `after_backbone`), `samples` calls per
   ONNX Runtime target (`torch_samples` per torch target) in timed blocks, round-robin across all
   targets and regimes in ABBA order (turn t forwards, turn t+1 backwards; a target's regimes
   side by side), so drift of the machine reaches every variant and regime alike; every call's
   time is kept;
4. batch 8, 64, ...: `batch_repeats` calls per ONNX Runtime target (torch: scaled down like its
   batch-1 samples), warm, ABBA round-robin likewise;
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
from qmoe.bench.blocks import Prepared, round_robin, warm
from qmoe.bench.regimes import Flush, l2_cache
from qmoe.bench.runners import Model, Target, applies, check_runtimes, forms
from qmoe.bench.timing import reference_fold_pass
from qmoe.contract.benchmarks import Form, Regime, check_regimes
from qmoe.energy import EnergyMeter, kwh_to_joules
from qmoe.io import require

log = logging.getLogger(__name__)

ESTIMATED = "estimated: power model x time"


@dataclass(frozen=True)
class SuiteConfig:
    """params.yaml `benchmark`."""

    runtimes: tuple[str, ...]  # first = the deployment (summary.csv's latency_* columns)
    regimes: tuple[str, ...]  # cache regimes every batch-1 target is timed in (warm first)
    flush_l2_multiple: float  # after_backbone: bytes written before each call, x the core's L2
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
        check_regimes(self.regimes)
        require(
            self.flush_l2_multiple >= 4,
            "benchmark.flush_l2_multiple",
            f"{self.flush_l2_multiple} < 4 (a smaller write leaves part of L2 as it was)",
        )
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

    @property
    def timed_regimes(self) -> tuple[Regime, ...]:
        return tuple(Regime(r) for r in self.regimes)

    def per_turn(self, target: Target) -> int:
        return self.block if target.runtime == "onnxruntime" else self.torch_samples // self.turns

    def repeats(self, target: Target) -> int:
        """Calls per batch size > 1: `batch_repeats`, scaled like batch 1 for torch (>= 5)."""
        if target.runtime == "onnxruntime":
            return self.batch_repeats
        return max(5, self.batch_repeats * self.torch_samples // self.samples)


class EnergyResult(NamedTuple):
    method: str  # starts with "measured" or ESTIMATED
    watts: float | None  # estimate: the power model's mean watts
    per_inference_j: dict[str, list[float]]  # measured: variant -> joules per call, per block
    blocks: list[dict]  # energy.csv rows (every block as measured)


class Timed(NamedTuple):
    """What one array of samples measured."""

    target: Target
    batch: int
    regime: Regime


class SuiteResult(NamedTuple):
    samples_ns: dict[Timed, np.ndarray]  # per-call ns, in the order measured
    order: list[dict]  # timed blocks in the order run
    energy: EnergyResult
    machine: dict  # cpu, lock wait, snapshots before/after
    fold_pass_s: dict[Target, float]  # torch targets: the reference's 10.2 pass


def prepare(models: Sequence[Model], cfg: SuiteConfig) -> list[Prepared]:
    """Targets grouped by runtime (then model, then MoE form): in a round, an ONNX Runtime block
    follows another one, not a torch eager call whose temporaries (the faithful forms re-quantise
    every weight per call) evict the next model's weights."""
    out = []
    sizes = sorted({1, *cfg.batch_sizes})
    for runtime in cfg.runtimes:
        for m in models:
            if applies(m, runtime):
                copies = cfg.sessions if runtime == "onnxruntime" else 1
                sets = [forms(m, runtime, cfg.threads, sizes) for _ in range(copies)]
                for form in sets[0]:
                    rotation = tuple(s[form] for s in sets)
                    target = Target(m.variant, m.key, runtime, form)
                    out.append(Prepared(target, rotation[0], rotation))
    return out


def _latency(
    prepared: Sequence[Prepared], cfg: SuiteConfig, meter: EnergyMeter | None, flush: Flush | None
):
    t0 = time.perf_counter()
    for p in prepared:  # torch: fewer warm-up calls, in proportion to its samples
        share = cfg.per_turn(p.target) / cfg.block
        for each in p.rotation or (p.calls,):
            warm(each[1], max(2, round(cfg.warmup * share)))
            for b in [b for b in each if b != 1]:
                warm(each[b], max(2, round(min(cfg.warmup, 10) * share)))
    t1 = time.perf_counter()
    per_turn = {p.target: cfg.per_turn(p.target) for p in prepared}
    with meter.measure("batch-1 round robin") if meter else contextlib.nullcontext() as reading:
        raw, order = round_robin(prepared, 1, per_turn, cfg.turns, cfg.timed_regimes, flush)
    samples = {Timed(t, 1, r): v for (t, r), v in raw.items()}
    t2 = time.perf_counter()
    turns = min(cfg.batch_repeats, 5)
    for b in [b for b in cfg.batch_sizes if b != 1]:
        at_b = [p for p in prepared if b in p.calls]
        each = {p.target: math.ceil(cfg.repeats(p.target) / turns) for p in at_b}
        raw, more = round_robin(at_b, b, each, turns)
        samples |= {Timed(t, b, r): v for (t, r), v in raw.items()}
        order += more
    larger, t3 = [b for b in cfg.batch_sizes if b != 1], time.perf_counter()
    log.info(
        "%d targets x %d regimes: warm-up %.1f s, batch 1 %.1f s, batch %s %.1f s",
        *(len(prepared), len(cfg.regimes), t1 - t0, t2 - t1, larger, t3 - t2),
    )
    return samples, order, reading


def _estimate(reading, method: str) -> EnergyResult:
    """CodeCarbon over the batch-1 phase: its power model's mean watts (a model, not a reading)."""
    joules = kwh_to_joules(reading.energy_kwh)
    block = _block_row("batch-1 round robin", None, joules, reading.duration_s, "codecarbon task")
    return EnergyResult(f"{ESTIMATED} ({method})", joules / reading.duration_s, {}, [block])


def _block_row(name: str, calls: int | None, joules: float, seconds: float, kind: str, **more):
    """energy.csv: one block as measured."""
    row = {"block": name, "calls": calls, "energy_j": joules, "duration_s": seconds, "kind": kind}
    return row | more


def measure_rapl(
    prepared: Sequence[Prepared], samples: dict, cfg: SuiteConfig, counter: rapl.RaplCounter
) -> EnergyResult:
    """Blocks of >= energy_block_s per variant (its first deployment-runtime target), idle
    blocks of the same length between rounds, ABBA across variants."""
    first = {}
    for p in prepared:
        if p.target.runtime == cfg.runtimes[0] and p.target.form is Form.WHOLE:
            first.setdefault(p.target.variant, p)
    idle, busy, rows = [], {v: [] for v in first}, []
    for r in range(cfg.energy_repeats):
        idle.append(rapl.measure(counter, lambda: time.sleep(cfg.energy_block_s), 0))
        rows.append(_block_row(f"idle {r}", 0, idle[-1].joules, idle[-1].seconds, "idle"))
        for v, p in list(first.items()) if r % 2 == 0 else list(first.items())[::-1]:
            median_s = float(np.median(samples[Timed(p.target, 1, Regime.WARM)])) / 1e9
            n = max(1, math.ceil(cfg.energy_block_s / median_s))
            block = rapl.measure(counter, lambda p=p, n=n: warm(p.calls[1], n), n)
            busy[v].append(block)
            rows.append(
                _block_row(f"{v} {r}", n, block.joules, block.seconds, "inference", variant=v)
            )
    per = {v: rapl.per_inference(blocks, idle) for v, blocks in busy.items()}
    return EnergyResult(
        "measured: RAPL package counters, idle baseline subtracted", None, per, rows
    )


def after_backbone(cpu: int, cfg: SuiteConfig) -> tuple[Flush | None, dict]:
    """The flush of the `after_backbone` regime on `cpu` and its run.json record ({} when the
    regime is not timed)."""
    if Regime.AFTER_BACKBONE not in cfg.timed_regimes:
        return None, {}
    cache = l2_cache(cpu)
    flush = Flush(round(cfg.flush_l2_multiple * cache.l2_bytes), cache.line_bytes)
    return flush, flush.record(cache)


def _fold_passes(models: Sequence[Model], cfg: SuiteConfig) -> dict[Target, float]:
    """torch targets: the reference's own pass over the test fold (10.2)."""
    if "torch" not in cfg.runtimes:
        return {}
    return {
        Target(m.variant, m.key, "torch"): reference_fold_pass(
            m.loaded.model, torch.from_numpy(m.x)
        )
        for m in models
    }


def run(models: Sequence[Model], cfg: SuiteConfig, meter_factory) -> SuiteResult:
    """Everything above, under the lock and pinned; `meter_factory()` -> EnergyMeter (used only
    when no RAPL counter is readable)."""
    with machine.MachineLock() as waited, machine.priority(cfg.nice) as nice:
        before_affinity = os.sched_getaffinity(0)
        cpu = machine.pin_to_core(cfg.cpu)
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            flush, flushed = after_backbone(cpu, cfg)
            prepared = prepare(models, cfg)
            start = machine.snapshot(cpu)
            fold_pass = _fold_passes(models, cfg)
            counter = rapl.find_rapl()
            with meter_factory() if counter is None else contextlib.nullcontext() as meter:
                samples, order, reading = _latency(prepared, cfg, meter, flush)
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
        "logical_cpus": os.cpu_count(),
        "clock_ticks_per_s": machine.clock_ticks(),
        "after_backbone": flushed,
    }
    return SuiteResult(samples, order, energy, info, fold_pass)

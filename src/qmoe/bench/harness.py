"""Benchmark every trained model of one run folder: latency, energy, size, routing.

Used by the `benchmark` stage; writes nothing itself (the stage writes the returned tables).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from qmoe import models
from qmoe.bench import timing
from qmoe.bench.energy import (
    EnergyMeter,
    EnergyReading,
    joules_to_millijoules,
    kwh_to_joules,
    kwh_to_wh,
)
from qmoe.bench.timing import BenchmarkConfig
from qmoe.io import InputError, SetupError
from qmoe.quant import packing
from qmoe.training.artefacts import LoadedModel, load_trained
from qmoe.training.fit import predict

log = logging.getLogger(__name__)


class Loaded(NamedTuple):
    key: str                 # "fold{k}_seed{s}"
    run: dict                # the run's row of metrics.json
    model: LoadedModel
    x_test: Tensor           # (n_test, d) raw embeddings of the model's test fold


class BenchmarkResult(NamedTuple):
    summary: pd.DataFrame
    batch: pd.DataFrame
    routing: pd.DataFrame | None
    samples_ms: dict[str, np.ndarray]    # model key -> (samples,) batch-1 latency, ms
    order: list[tuple[int, str]]         # (round-robin block, model key) in measured order
    energy: pd.DataFrame                 # one row per energy block (energy.csv)


RUN_KEYS = ("fold", "seed", "macro_f1", "n_params", "train_energy_kwh")


def check_runs(runs: Any, where: str) -> list[dict]:
    """metrics.json `runs`: a non-empty list whose rows carry what the benchmark joins to."""
    if not isinstance(runs, list) or not runs:
        raise InputError(f"{where}: 'runs' must be a non-empty list")
    for i, run in enumerate(runs):
        missing = [k for k in RUN_KEYS if not isinstance(run, dict) or run.get(k) is None]
        if missing:
            raise InputError(f"{where}: runs[{i}] lacks {missing}")
        if not run["train_energy_kwh"] > 0:
            raise InputError(f"{where}: runs[{i}] train_energy_kwh={run['train_energy_kwh']} "
                             "is not a measurement (must be > 0)")
    return runs


def load_models(run_dir: Path, runs: list[dict], table: pd.DataFrame) -> list[Loaded]:
    """Each run's checkpoint, deployed, with its test inputs (n_test, d) taken from the feature
    table's emb_* columns (float32, raw: the model standardises them itself)."""
    emb = table[[c for c in table.columns if c.startswith("emb_")]].to_numpy(dtype=np.float32)
    row_of = {cid: i for i, cid in enumerate(table["clip_id"].astype(str))}
    out = []
    for run in runs:
        key = f"fold{run['fold']}_seed{run['seed']}"
        path = run_dir / f"{key}.pt"
        loaded = load_trained(path)
        ids = [str(c) for c in loaded.meta.get("test_clip_ids") or []]
        missing = [c for c in ids if c not in row_of]
        if not ids or missing:
            raise InputError(f"{path}: {len(missing)} of {len(ids)} test clips absent from the "
                             f"feature table, e.g. {missing[:3]}")
        if emb.shape[1] != loaded.meta["in_dim"]:
            raise InputError(f"{path}: model expects {loaded.meta['in_dim']} features, the "
                             f"feature table has {emb.shape[1]} emb_* columns")
        if any(m.training for m in loaded.model.modules()):
            raise InputError(f"{path}: the deployed model is in training mode (dropout would be "
                             "active while timing)")
        out.append(Loaded(key, run, loaded, torch.from_numpy(emb[[row_of[c] for c in ids]])))
    return out


def _sizes(loaded: LoadedModel, tmp: Path) -> dict[str, float]:
    net = loaded.model.net
    meta = loaded.meta
    fp32 = models.build(models.FP32Config(), models.MLPConfig(
        in_dim=meta["in_dim"], num_classes=meta["num_classes"],
        hidden_sizes=tuple(meta["model"]["hidden_sizes"]), dropout=meta["model"]["dropout"]), {})
    reference = packing.reference_size_bytes(net)
    return {
        "size_packed_bytes": packing.write_artefact(net, tmp / "artefact.pt"),
        "size_fp32_state_dict_bytes": packing.state_dict_bytes(fp32),
        "size_reference_kb": (reference if reference is not None
                              else packing.state_dict_bytes(net)) / 1000,
    }


def energy_row(run: dict, readings: list[EnergyReading], n: int) -> dict[str, Any]:
    """Per-inference energy from repeated blocks of `n` calls (median over blocks, robust to a
    block slowed by other load), set against the run's training energy: break-even = inferences
    whose energy equals training's; deploy/train at 1e3 and 1e6 inferences."""
    methods = {r.method for r in readings}
    if len(methods) != 1:
        raise SetupError(f"energy blocks measured with different methods: {sorted(methods)}")
    per_inf_j = np.array([kwh_to_joules(r.energy_kwh) / n for r in readings])   # (blocks,)
    q25, q50, q75 = np.percentile(per_inf_j, [25, 50, 75])
    train_j = kwh_to_joules(run["train_energy_kwh"])
    per_inf_mj = joules_to_millijoules(q50)
    return {
        "energy_block_n": n, "energy_blocks": len(readings),
        "energy_block_kwh": float(np.median([r.energy_kwh for r in readings])),
        "energy_block_s": float(np.median([r.duration_s for r in readings])),
        "energy_per_inference_mj": per_inf_mj,
        "energy_per_inference_mj_iqr": joules_to_millijoules(q75 - q25),
        "energy_method": methods.pop(), "train_energy_kwh": run["train_energy_kwh"],
        "break_even_inferences": train_j / q50,
        "deploy_over_train_1e3": 1e3 * q50 / train_j,
        "deploy_over_train_1e6": 1e6 * q50 / train_j,
        "f1_per_inference_mj": run["macro_f1"] / per_inf_mj,
        "f1_per_train_wh": run["macro_f1"] / kwh_to_wh(run["train_energy_kwh"]),
    }


def energy_blocks(items: list[Loaded], cfg: BenchmarkConfig,
                  meter: EnergyMeter) -> dict[str, list[EnergyReading]]:
    """`cfg.energy_repeats` blocks of `cfg.energy_samples` batch-1 calls per model, one CodeCarbon
    task each, models interleaved (block 1 of every model, then block 2, ...)."""
    readings: dict[str, list[EnergyReading]] = {it.key: [] for it in items}
    n, repeats = cfg.energy_samples, cfg.energy_repeats
    for r in range(repeats):
        for it in items:
            with meter.measure(f"inference {it.key} block {r + 1}/{repeats} x{n}") as reading:
                timing.run_calls(it.model.model, it.x_test, n)
            readings[it.key].append(reading)
    return readings


def _energy_frame(items: list[Loaded], readings: dict[str, list[EnergyReading]],
                  n: int) -> pd.DataFrame:
    """Every energy block as measured (energy.csv)."""
    return pd.DataFrame([
        {"fold": it.run["fold"], "seed": it.run["seed"], "block": b, "n": n,
         "energy_kwh": r.energy_kwh, "emissions_kg": r.emissions_kg, "duration_s": r.duration_s,
         "energy_method": r.method}
        for it in items for b, r in enumerate(readings[it.key])])


def _routing(item: Loaded, expert_names: list[str]) -> list[dict]:
    torch.manual_seed(0)
    pred = predict(item.model.model, item.x_test)
    counts = torch.bincount(pred.expert, minlength=len(expert_names)).tolist()
    return [{"fold": item.run["fold"], "seed": item.run["seed"], "expert": e,
             "expert_name": name, "frequency": counts[e] / len(item.x_test)}
            for e, name in enumerate(expert_names)]


def _batch_rows(it: Loaded, cfg: BenchmarkConfig) -> list[dict]:
    rows = []
    for b in cfg.batch_sizes:
        s = timing.batch_latency(it.model.model, it.x_test, b, min(cfg.warmup, 10),
                                    cfg.batch_repeats)
        rows.append({"fold": it.run["fold"], "seed": it.run["seed"], "batch_size": b, "n": s.n,
                     "median_ms": s.median_ms, "p95_ms": s.p95_ms})
    return rows


def _summary_row(it: Loaded, samples_ms: np.ndarray, fold_pass_s: float,
                 readings: list[EnergyReading], cfg: BenchmarkConfig, tmp: Path) -> dict[str, Any]:
    lat = timing.summarize(samples_ms)
    row = {"fold": it.run["fold"], "seed": it.run["seed"], "latency_n": lat.n,
           **{f"latency_{k}": v for k, v in lat._asdict().items() if k != "n"},
           "reference_fold_pass_s": fold_pass_s}
    return (row | energy_row(it.run, readings, cfg.energy_samples) | _sizes(it.model, tmp)
            | {"n_params": it.run["n_params"], "macro_f1": it.run["macro_f1"]})


def benchmark(items: list[Loaded], cfg: BenchmarkConfig, meter: EnergyMeter) -> BenchmarkResult:
    """In this order: each model's reference whole-fold pass (cold, as the reference ran it once
    per fold); the round-robin batch-1 latency of all models; batch latency per model; the
    interleaved energy blocks; sizes and routing. All under `cfg.threads` intra-op threads."""
    with timing.fixed_threads(cfg.threads), tempfile.TemporaryDirectory() as tmp:
        fold_pass = {it.key: timing.reference_fold_pass(it.model.model, it.x_test)
                     for it in items}
        rr = timing.round_robin_latency({it.key: it.model.model for it in items},
                                           {it.key: it.x_test for it in items},
                                           cfg.warmup, cfg.samples, cfg.block)
        batch_rows = [row for it in items for row in _batch_rows(it, cfg)]
        readings = energy_blocks(items, cfg, meter)
        rows, routing = [], []
        for it in items:
            rows.append(_summary_row(it, rr.samples_ms[it.key], fold_pass[it.key],
                                     readings[it.key], cfg, Path(tmp)))
            experts = it.model.meta["variants"][it.model.meta["variant"]].get("experts")
            if experts:
                routing += _routing(it, list(experts))
    return BenchmarkResult(pd.DataFrame(rows), pd.DataFrame(batch_rows),
                           pd.DataFrame(routing) if routing else None, rr.samples_ms, rr.order,
                           _energy_frame(items, readings, cfg.energy_samples))

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

from qmoe import models, packing, profiling
from qmoe.energy import EnergyMeter, joules_to_millijoules, kwh_to_joules, kwh_to_wh
from qmoe.profiling import BenchmarkConfig
from qmoe.train import predict
from qmoe.trained import LoadedModel, load_trained

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
    samples_ms: dict[str, np.ndarray]
    order: list[tuple[int, str]]


def load_models(run_dir: Path, runs: list[dict], table: pd.DataFrame) -> list[Loaded]:
    """Each run's checkpoint, deployed, with its test inputs taken from the feature table."""
    emb = table[[c for c in table.columns if c.startswith("emb_")]].to_numpy(dtype=np.float32)
    row_of = {cid: i for i, cid in enumerate(table["clip_id"].astype(str))}
    out = []
    for run in runs:
        key = f"fold{run['fold']}_seed{run['seed']}"
        loaded = load_trained(run_dir / f"{key}.pt")
        ids = loaded.meta["test_clip_ids"]
        missing = [c for c in ids if c not in row_of]
        if missing:
            raise ValueError(f"{run_dir / key}.pt: {len(missing)} test clips absent from the "
                             f"feature table, e.g. {missing[:3]}")
        x = torch.from_numpy(emb[[row_of[c] for c in ids]])
        out.append(Loaded(key, run, loaded, x))
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


def _energy_row(run: dict, energy_kwh: float, n: int, method: str) -> dict[str, Any]:
    per_inf_j = kwh_to_joules(energy_kwh) / n
    train_j = kwh_to_joules(run["train_energy_kwh"])
    per_inf_mj = joules_to_millijoules(per_inf_j)
    return {
        "energy_block_n": n, "energy_block_kwh": energy_kwh, "energy_per_inference_mj": per_inf_mj,
        "energy_method": method, "train_energy_kwh": run["train_energy_kwh"],
        "break_even_inferences": train_j / per_inf_j,
        "deploy_over_train_1e3": 1e3 * per_inf_j / train_j,
        "deploy_over_train_1e6": 1e6 * per_inf_j / train_j,
        "f1_per_inference_mj": run["macro_f1"] / per_inf_mj,
        "f1_per_train_wh": run["macro_f1"] / kwh_to_wh(run["train_energy_kwh"]),
    }


def _routing(item: Loaded, expert_names: list[str]) -> list[dict]:
    torch.manual_seed(0)
    pred = predict(item.model.model, item.x_test)
    counts = torch.bincount(pred.expert, minlength=len(expert_names)).tolist()
    return [{"fold": item.run["fold"], "seed": item.run["seed"], "expert": e,
             "expert_name": name, "frequency": counts[e] / len(item.x_test)}
            for e, name in enumerate(expert_names)]


def benchmark(items: list[Loaded], cfg: BenchmarkConfig, meter: EnergyMeter) -> BenchmarkResult:
    """Latency (round robin), batch latency, the reference's fold pass, energy, size, routing."""
    models_ = {it.key: it.model.model for it in items}
    inputs = {it.key: it.x_test for it in items}
    rr = profiling.round_robin_latency(models_, inputs, cfg.warmup, cfg.samples, cfg.block)
    rows, batch_rows, routing = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for it in items:
            lat = profiling.summarize(rr.samples_ms[it.key])
            row = {"fold": it.run["fold"], "seed": it.run["seed"], "latency_n": lat.n,
                   **{f"latency_{k}": v for k, v in lat._asdict().items() if k != "n"},
                   "reference_fold_pass_s": profiling.reference_fold_pass(it.model.model, it.x_test)}
            for b in cfg.batch_sizes:
                s = profiling.batch_latency(it.model.model, it.x_test, b, min(cfg.warmup, 10),
                                            cfg.batch_repeats)
                batch_rows.append({"fold": it.run["fold"], "seed": it.run["seed"], "batch_size": b,
                                   "n": s.n, "median_ms": s.median_ms, "p95_ms": s.p95_ms})
            with meter.measure(f"inference {it.key} x{cfg.energy_samples}") as r:
                profiling.run_calls(it.model.model, it.x_test, cfg.energy_samples)
            row |= _energy_row(it.run, r.energy_kwh, cfg.energy_samples, r.method)
            row |= _sizes(it.model, Path(tmp)) | {"n_params": it.run["n_params"],
                                                   "macro_f1": it.run["macro_f1"]}
            rows.append(row)
            experts = it.model.meta["variants"][it.model.meta["variant"]].get("experts")
            if experts:
                routing += _routing(it, list(experts))
    return BenchmarkResult(pd.DataFrame(rows), pd.DataFrame(batch_rows),
                           pd.DataFrame(routing) if routing else None, rr.samples_ms, rr.order)

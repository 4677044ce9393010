"""A benchmark run's measurements -> each variant's tables (docs/architecture.md section 4).

summary.csv has one row per trained model (as the run metrics list them); models that were not
timed (`benchmark.models_per_fold`) carry NaN latency and `timed` False. Latency columns without
a prefix are the deployment runtime's (`benchmark.runtimes[0]`) in the `warm` regime; other
runtimes and regimes are prefixed (`torch_latency_median_ms`, `after_backbone_latency_median_ms`,
`torch_after_backbone_latency_median_ms`: qmoe.contract.benchmarks.latency_prefix). An MoE's parts
(router, expert, host dispatch) are in rounds.csv and their own sample folders, not here.
Energy is either measured (RAPL, idle baseline subtracted) or the power model's watts times the
model's warm median latency, labelled "estimated: power model x time".
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from qmoe import models
from qmoe.bench import opcount
from qmoe.bench.runners import Model, Target
from qmoe.bench.suite import SuiteConfig, SuiteResult, Timed
from qmoe.bench.timing import summarize
from qmoe.contract.benchmarks import Form, Regime, latency_prefix
from qmoe.contract.runs import ModelKey
from qmoe.energy import J_PER_KWH, joules_to_millijoules
from qmoe.quant import packing
from qmoe.variants import FP32Config


class VariantTables(NamedTuple):
    summary: pd.DataFrame
    batch: pd.DataFrame
    # (runtime, form, regime) -> model -> batch-1 samples (ms)
    latency_ms: dict[tuple[str, Form, Regime], dict[ModelKey, np.ndarray]]
    energy: pd.DataFrame


def _latency_cols(ns: np.ndarray | None, prefix: str) -> dict[str, float]:
    if ns is None:
        return {
            f"{prefix}latency_n": 0,
            **{
                f"{prefix}latency_{k}": math.nan
                for k in ("median_ms", "mean_ms", "std_ms", "iqr_ms", "p95_ms", "p99_ms")
            },
        }
    s = summarize(ns / 1e6)
    return {f"{prefix}latency_{k}": v for k, v in s._asdict().items()}


def _energy_cols(
    run: dict, median_ms: float, n: int, result: SuiteResult, variant: str, measured_here: bool
) -> dict[str, Any]:
    """Per-inference energy of one model (set against its training energy by aggregate: the
    training cost is measured, so the benchmark does not depend on it)."""
    e = result.energy
    if e.watts is not None and not math.isnan(median_ms):
        per_j = e.watts * median_ms / 1000
    elif e.per_inference_j.get(variant) and measured_here:
        per_j = float(np.median(e.per_inference_j[variant]))
    else:
        per_j = math.nan
    mj = joules_to_millijoules(per_j)
    return {
        "energy_block_n": n,
        "energy_block_kwh": per_j * n / J_PER_KWH,
        "energy_per_inference_mj": mj,
        "energy_method": e.method,
        "f1_per_inference_mj": run["macro_f1"] / mj,
    }


def _static(model: Model, block: int) -> dict[str, float]:
    """Sizes the architecture fixes: the reference's theoretical accounting (7.7) and the FP32
    state dict it compares against."""
    meta, net = model.loaded.meta, model.loaded.model.net
    fp32 = models.build(
        FP32Config(),
        models.MLPConfig(meta.in_dim, meta.num_classes, meta.hidden_sizes, meta.dropout),
    )
    reference = packing.reference_size_bytes(net)
    return {
        "size_fp32_state_dict_bytes": packing.state_dict_bytes(fp32),
        "size_reference_kb": (reference if reference is not None else packing.state_dict_bytes(net))
        / 1000,
    }


def _analytical(model: Model, block: int, routing: pd.DataFrame | None, key: ModelKey) -> float:
    freq = None
    if routing is not None:
        part = routing[(routing["fold"] == key.fold) & (routing["seed"] == key.seed)]
        freq = part.sort_values("expert")["frequency"].tolist()
    return opcount.energy(opcount.count_model(model.loaded.model.net, block, freq)).total_nj


def variant_tables(
    variant: str,
    runs: list[dict],
    deployed: pd.DataFrame,
    routing: pd.DataFrame | None,
    chosen: list[Model],
    result: SuiteResult,
    cfg: SuiteConfig,
    block: int,
) -> VariantTables:
    """Tables of one variant: `runs` from its run metrics, `deployed` = its deployed table."""
    dep = deployed.set_index(["fold", "seed"])
    timed = {m.key: m for m in chosen}
    static = _static(chosen[0], block)
    rows: list[dict] = []
    for run in runs:
        key = ModelKey(int(run["fold"]), int(run["seed"]))
        if key not in dep.index:
            raise ValueError(f"{variant} {key.stem}: no row in its deployed table (rerun export)")
        row = _timing_cols(variant, key, key in timed, result, cfg)
        first = chosen[0].key == key
        row |= _energy_cols(run, row["latency_median_ms"], row["latency_n"], result, variant, first)
        row |= _model_cols(run, dep.loc[key], static)
        row["analytical_energy_nj"] = _analytical(timed.get(key, chosen[0]), block, routing, key)
        rows.append(row)
    return VariantTables(
        pd.DataFrame(rows),
        _batch(variant, result),
        _samples_ms(variant, runs, result),
        _energy_rows(variant, result),
    )


def _timing_cols(
    variant: str, key: ModelKey, timed: bool, result: SuiteResult, cfg: SuiteConfig
) -> dict:
    """summary.csv's latency columns of one model: per runtime and regime (prefixed), and the
    reference's whole-fold pass."""
    primary = cfg.runtimes[0]
    row = {"fold": key.fold, "seed": key.seed, "timed": timed, "latency_runtime": primary}
    for r in cfg.runtimes:
        for regime in cfg.timed_regimes:
            ns = result.samples_ns.get(Timed(Target(variant, key, r), 1, regime))
            row |= _latency_cols(ns, latency_prefix(None if r == primary else r, regime))
    row["reference_fold_pass_s"] = result.fold_pass_s.get(Target(variant, key, "torch"), math.nan)
    return row


def _model_cols(run: dict, d: pd.Series, static: dict) -> dict:
    """summary.csv's size and F1 columns of one model: its deployed row `d` and its run."""
    return {
        "size_packed_bytes": int(d["size_file_bytes"]),
        "size_weight_bytes": int(d["size_tensor_bytes"]),
        "size_quantised_weight_bytes": int(d["size_quantised_weight_bytes"]),
        "size_fp32_file_bytes": int(d["size_fp32_file_bytes"]),
        **static,
        "n_params": run["n_params"],
        "macro_f1": run["macro_f1"],
        "deployed_macro_f1": float(d["deployed_macro_f1"]),
        "torch_b1_macro_f1": float(d["torch_b1_macro_f1"]),
        "artefact": d["artefact"],
    }


def _samples_ms(
    variant: str, runs: list[dict], result: SuiteResult
) -> dict[tuple[str, Form, Regime], dict[ModelKey, np.ndarray]]:
    """Batch-1 samples in ms by (runtime, form, regime), then model: the raw latency files."""
    latency: dict[tuple[str, Form, Regime], dict[ModelKey, np.ndarray]] = {}
    for run in runs:
        key = ModelKey(int(run["fold"]), int(run["seed"]))
        for (t, batch, regime), ns in result.samples_ns.items():
            if t.variant == variant and t.key == key and batch == 1:
                latency.setdefault((t.runtime, t.form, regime), {})[key] = ns / 1e6
    return latency


def _batch(variant: str, result: SuiteResult) -> pd.DataFrame:
    rows = []
    for (t, b, regime), ns in result.samples_ns.items():
        if t.variant == variant and t.form is Form.WHOLE:
            s = summarize(ns / 1e6)
            rows.append(
                {
                    "fold": t.key.fold,
                    "seed": t.key.seed,
                    "runtime": t.runtime,
                    "regime": regime.value,
                    "batch_size": b,
                    "n": s.n,
                    "median_ms": s.median_ms,
                    "p95_ms": s.p95_ms,
                }
            )
    return (
        pd.DataFrame(rows)
        .sort_values(["runtime", "fold", "seed", "batch_size", "regime"], kind="stable")
        .reset_index(drop=True)
    )


def _energy_rows(variant: str, result: SuiteResult) -> pd.DataFrame:
    rows = [
        dict(r, energy_method=result.energy.method)
        for r in result.energy.blocks
        if r.get("variant") in (None, variant)
    ]
    return pd.DataFrame(rows)

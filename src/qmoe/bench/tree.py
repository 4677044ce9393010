"""One benchmark stage instance: every variant of a (dataset, protocol), measured in one run.

Reads data/runs/<d>/<p>/<variant>/metrics.json (the models), data/deployed/<d>/<p> (artefacts,
deployed.csv, routing.csv, export.json) and the feature table; writes data/benchmarks/<d>/<p>
atomically (docs/architecture.md section 4).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from qmoe.bench import frontend, rounds, runners, suite
from qmoe.bench.device import device_id, device_info
from qmoe.bench.suite import SuiteConfig, SuiteResult
from qmoe.bench.tables import VariantTables, variant_tables
from qmoe.contract.regimes import latency_folder
from qmoe.deploy import runtime as ort_runtime
from qmoe.energy import EnergyConfig, EnergyMeter
from qmoe.features.backbones import Backbone
from qmoe.features.embed import FeaturesConfig, build_backbone
from qmoe.io import InputError, atomic_dir, load_json, save_json
from qmoe.training.layout import ModelKey
from qmoe.training.protocols import feature_table

log = logging.getLogger(__name__)


class BenchSpec(NamedTuple):
    dataset: str
    protocol: str
    variants: tuple[str, ...]


class FrontendSpec(NamedTuple):
    """The front end timed beside the heads: data/raw/<dataset> and params `features`."""

    raw: Path
    features: FeaturesConfig
    backbone: Callable[[FeaturesConfig], Backbone] = build_backbone


def _runs(runs: Path, variant: str, spec: BenchSpec) -> list[dict]:
    path = runs / variant / "metrics.json"
    if not path.is_file():
        raise InputError(f"{path}: not found (train {variant} first)")
    metrics = load_json(path)
    for field, want in (
        ("dataset", spec.dataset),
        ("protocol", spec.protocol),
        ("variant", variant),
    ):
        if metrics.get(field) != want:
            raise InputError(f"{path}: {field} is {metrics.get(field)!r}, expected {want!r}")
    rows = metrics.get("runs") or []
    missing = [
        i
        for i, r in enumerate(rows)
        if any(r.get(k) is None for k in ("fold", "seed", "macro_f1", "n_params"))
    ]
    if not rows or missing:
        raise InputError(
            f"{path}: 'runs' empty or rows {missing} lack fold, seed, macro_f1 or n_params"
        )
    return rows


def _deployed(deployed: Path, variant: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    path = deployed / variant / "deployed.csv"
    if not path.is_file():
        raise InputError(f"{path}: not found (run the export stage)")
    routing = deployed / variant / "routing.csv"
    return pd.read_csv(path), pd.read_csv(routing) if routing.is_file() else None


def benchmark_tree(
    spec: BenchSpec,
    cfg: SuiteConfig,
    energy: EnergyConfig,
    features: Path,
    runs: Path,
    deployed: Path,
    out: Path,
    meter_factory: Callable[[], Any] | None = None,
    front: FrontendSpec | None = None,
) -> pd.DataFrame:
    """Measure and write; returns one line per variant (median over its timed models) for the
    log. `meter_factory`: the CodeCarbon meter (tests pass a fake); `front`: time the front end
    too (frontend.csv)."""
    table_path = features / "features.parquet"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: feature table not found (run the features stage)")
    export_info = load_json(deployed / "export.json")
    table = feature_table(spec.protocol, pd.read_parquet(table_path))  # the protocol's inputs
    inputs, chosen = {}, {}
    for v in spec.variants:
        rows = _runs(runs, v, spec)
        inputs[v] = (rows, *_deployed(deployed, v))
        keys = runners.choose(
            [ModelKey(int(r["fold"]), int(r["seed"])) for r in rows], cfg.models_per_fold
        )
        chosen[v] = [runners.load(v, k, runs, deployed, table) for k in keys]
    log.info(
        "%s/%s: timing %d models of %d variants with %s",
        spec.dataset,
        spec.protocol,
        sum(map(len, chosen.values())),
        len(spec.variants),
        list(cfg.runtimes),
    )
    result = suite.run(
        [m for v in spec.variants for m in chosen[v]],
        cfg,
        meter_factory or (lambda: EnergyMeter(energy.country_iso_code)),
    )
    info = device_info(cfg.threads) | {
        "onnxruntime": ort_runtime.ort_version(),
        "runtimes": list(cfg.runtimes),
        "after_backbone": result.machine["after_backbone"],
    }
    tables = {
        v: variant_tables(v, *inputs[v], chosen[v], result, cfg, int(export_info["block_size"]))
        for v in spec.variants
    }
    per_round = rounds.round_medians(result.order, _batch1_ms(result))
    extra = {"rounds": per_round}
    if front is not None:
        extra["frontend"] = frontend.frontend_latency(
            front.raw,
            front.features,
            cfg.frontend_clips,
            cfg.frontend_repeats,
            cfg.cpu,
            cfg.threads,
            front.backbone,
            cfg.nice,
        )
        log.info("front end per clip (median ms): %s", frontend.summary(extra["frontend"]))
    _write(out, tables, info, result, inputs, cfg, extra)
    return _log_frame(tables, cfg)


def _batch1_ms(result: SuiteResult) -> dict[tuple, np.ndarray]:
    """(variant, fold, seed, runtime, form, regime) -> batch-1 samples in ms, in the order
    measured."""
    return {
        (t.variant, t.key.fold, t.key.seed, t.runtime, t.form.value, regime.value): ns / 1e6
        for (t, b, regime), ns in result.samples_ns.items()
        if b == 1
    }


def _write(
    out: Path,
    tables: dict[str, VariantTables],
    info: dict,
    result: SuiteResult,
    inputs: dict,
    cfg: SuiteConfig,
    extra: dict[str, pd.DataFrame],
) -> None:
    """`extra`: tables written beside run.json as <name>.csv (rounds, frontend)."""
    link = {"device_id": device_id(info)}
    with atomic_dir(out) as tmp:
        for name, frame in extra.items():
            frame.assign(**link).to_csv(tmp / f"{name}.csv", index=False)
        for v, t in tables.items():
            folder = tmp / v
            for (runtime, form, regime), samples in t.latency_ms.items():
                named = None if runtime == cfg.runtimes[0] else runtime
                sub = folder / latency_folder(named, form, regime)
                sub.mkdir(parents=True, exist_ok=True)
                for key, ms in samples.items():
                    np.save(sub / f"{key.stem}.npy", ms.astype(np.float64))
            folder.mkdir(exist_ok=True)
            t.summary.assign(**link, device="device.json").to_csv(
                folder / "summary.csv", index=False
            )
            t.batch.assign(**link).to_csv(folder / "batch_latency.csv", index=False)
            t.energy.assign(**link).to_csv(folder / "energy.csv", index=False)
            routing = inputs[v][2]
            if routing is not None:
                routing.assign(**link).to_csv(folder / "routing.csv", index=False)
            save_json(folder / "device.json", info | link)
        save_json(
            tmp / "run.json",
            {
                **link,
                "machine": result.machine,
                "energy_method": result.energy.method,
                "estimated_watts": result.energy.watts,
                "config": dataclasses.asdict(cfg),
                "versions": {"onnxruntime": info["onnxruntime"], "torch": info["torch"]},
                "order": result.order,
            },
        )


def _log_frame(tables: dict[str, VariantTables], cfg: SuiteConfig) -> pd.DataFrame:
    rows = []
    for v, t in tables.items():
        timed = t.summary[t.summary["timed"]]
        rows.append(
            {
                "variant": v,
                **timed[
                    ["latency_median_ms", "latency_p99_ms", "size_packed_bytes", "energy_method"]
                ]
                .median(numeric_only=True)
                .to_dict(),
                "energy_method": timed["energy_method"].iloc[0],
            }
        )
    frame = pd.DataFrame(rows)
    fp32 = frame.loc[frame["variant"] == "fp32", "latency_median_ms"]
    frame["ratio_to_fp32"] = frame["latency_median_ms"] / (fp32.iloc[0] if len(fp32) else np.nan)
    return frame

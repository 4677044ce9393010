"""One benchmark stage instance: every variant of a (dataset, protocol), measured in one run.

Reads data/runs/<d>/<p> (the models each variant trained), data/deployed/<d>/<p> (artefacts,
tables, export.json) and the feature table; writes data/benchmarks/<d>/<p> atomically
(qmoe.contract.benchmarks; docs/architecture.md section 4).
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
from qmoe.contract.benchmarks import BenchFolder, latency_folder
from qmoe.contract.deployed import DeployedFolder, read_variant
from qmoe.contract.features import read_table
from qmoe.contract.runs import ModelKey, read_metrics
from qmoe.contract.study import RunId, instance
from qmoe.deploy import runtime as ort_runtime
from qmoe.energy import EnergyConfig, EnergyMeter
from qmoe.features.backbones import Backbone
from qmoe.features.embed import FeaturesConfig, build_backbone
from qmoe.io import atomic_dir, load_json, save_json
from qmoe.training.protocols import feature_table

log = logging.getLogger(__name__)


class FrontendSpec(NamedTuple):
    """The front end timed beside the heads: data/raw/<dataset> and params `features`."""

    raw: Path
    features: FeaturesConfig
    backbone: Callable[[FeaturesConfig], Backbone] = build_backbone


def benchmark_tree(
    run_ids: tuple[RunId, ...],
    cfg: SuiteConfig,
    energy: EnergyConfig,
    features: Path,
    runs: Path,
    deployed: Path,
    out: Path,
    meter_factory: Callable[[], Any] | None = None,
    front: FrontendSpec | None = None,
) -> pd.DataFrame:
    """Measure and write every run of `run_ids` (one dataset and protocol); returns one line per
    variant (median over its timed models) for the log. `meter_factory`: the CodeCarbon meter
    (tests pass a fake); `front`: time the front end too (frontend.csv)."""
    dataset, protocol = instance(run_ids)
    table = feature_table(protocol, read_table(features))  # the protocol's inputs
    block_size = int(load_json(DeployedFolder(deployed).export_json)["block_size"])
    inputs, chosen = _load(run_ids, cfg, runs, deployed, table)
    log.info(
        "%s/%s: timing %d models of %d variants with %s",
        dataset,
        protocol,
        sum(map(len, chosen.values())),
        len(run_ids),
        list(cfg.runtimes),
    )
    result = suite.run(
        [m for v in chosen.values() for m in v],
        cfg,
        meter_factory or (lambda: EnergyMeter(energy.country_iso_code)),
    )
    info = device_info(cfg.threads) | {
        "onnxruntime": ort_runtime.ort_version(),
        "runtimes": list(cfg.runtimes),
        "after_backbone": result.machine["after_backbone"],
    }
    tables = {v: variant_tables(v, *inputs[v], chosen[v], result, cfg, block_size) for v in chosen}
    _write(out, tables, info, result, inputs, cfg, _extra(result, cfg, front))
    return _log_frame(tables, cfg)


def _load(
    run_ids: tuple[RunId, ...], cfg: SuiteConfig, runs: Path, deployed: Path, table: pd.DataFrame
) -> tuple[dict[str, tuple], dict[str, list]]:
    """Per variant: (its model rows, deployed table, routing) and the models chosen to time."""
    inputs, chosen = {}, {}
    for run in run_ids:
        rows = read_metrics(runs / run.variant, run).runs
        inputs[run.variant] = (rows, *read_variant(deployed, run.variant))
        keys = runners.choose(
            [ModelKey(int(r["fold"]), int(r["seed"])) for r in rows], cfg.models_per_fold
        )
        chosen[run.variant] = [runners.load(run.variant, k, runs, deployed, table) for k in keys]
    return inputs, chosen


def _extra(result: SuiteResult, cfg: SuiteConfig, front: FrontendSpec | None) -> dict:
    """The tables written beside the variant folders: rounds and (`front`) frontend."""
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
    return extra


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
        folder = BenchFolder(tmp)
        for name, frame in extra.items():
            frame.assign(**link).to_csv(folder.table(name), index=False)
        for v, t in tables.items():
            _write_variant(folder, v, t, inputs[v][2], cfg, link)
            save_json(folder.device(v), info | link)
        save_json(
            folder.run_json,
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


def _write_variant(
    folder: BenchFolder,
    v: str,
    t: VariantTables,
    routing: pd.DataFrame | None,
    cfg: SuiteConfig,
    link: dict[str, str],
) -> None:
    """One variant's samples and tables (the deployed routing with `device_id`)."""
    for (runtime, form, regime), samples in t.latency_ms.items():
        named = None if runtime == cfg.runtimes[0] else runtime
        sub = latency_folder(named, form, regime)
        (folder.variant(v) / sub).mkdir(parents=True, exist_ok=True)
        for key, ms in samples.items():
            np.save(folder.samples(v, sub, key), ms.astype(np.float64))
    folder.variant(v).mkdir(exist_ok=True)
    t.summary.assign(**link, device="device.json").to_csv(folder.summary(v), index=False)
    t.batch.assign(**link).to_csv(folder.batch(v), index=False)
    t.energy.assign(**link).to_csv(folder.energy(v), index=False)
    if routing is not None:
        routing.assign(**link).to_csv(folder.routing(v), index=False)


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

"""Benchmark every trained model of one variant: latency, energy, size, routing.

DVC stage: benchmark. Outputs: docs/architecture.md section 4. Every table carries `device_id`
(short hash of device.json, written beside it), so a row always names the machine it ran on.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from qmoe.bench import harness
from qmoe.bench.device import device_id, device_info
from qmoe.bench.energy import EnergyConfig, EnergyMeter
from qmoe.bench.timing import BenchmarkConfig
from qmoe.cli import read_params, run_stage
from qmoe.io import InputError, atomic_dir, from_section, load_json, save_json

log = logging.getLogger("stages.benchmark")


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    for flag in ("--dataset", "--protocol", "--variant"):
        ap.add_argument(flag, required=True)
    for flag in ("--features", "--runs", "--out"):
        ap.add_argument(flag, type=Path, required=True)
    return ap.parse_args()


def _load(args: argparse.Namespace) -> list[harness.Loaded]:
    metrics_path = args.runs / "metrics.json"
    metrics = load_json(metrics_path)
    for field in ("dataset", "protocol", "variant"):
        if metrics.get(field) != getattr(args, field):
            raise InputError(f"{metrics_path}: {field} is {metrics.get(field)!r}, "
                             f"expected {getattr(args, field)!r}")
    runs = harness.check_runs(metrics.get("runs"), str(metrics_path))
    table_path = args.features / "features.parquet"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: feature table not found (run the features stage)")
    return harness.load_models(args.runs, runs, pd.read_parquet(table_path))


def _write(out: Path, result: harness.BenchmarkResult, info: dict, cfg: BenchmarkConfig) -> None:
    link = {"device_id": device_id(info)}
    (out / "latency").mkdir()
    for key, samples in result.samples_ms.items():
        np.save(out / "latency" / f"{key}.npy", samples.astype(np.float64))
    result.summary.assign(**link, device="device.json").to_csv(out / "summary.csv", index=False)
    result.batch.assign(**link).to_csv(out / "batch_latency.csv", index=False)
    result.energy.assign(**link).to_csv(out / "energy.csv", index=False)
    if result.routing is not None:
        result.routing.assign(**link).to_csv(out / "routing.csv", index=False)
    save_json(out / "order.json", {**link, "device": "device.json", "block": cfg.block,
                                   "warmup": cfg.warmup, "samples": cfg.samples,
                                   "blocks": [{"block": b, "model": k} for b, k in result.order]})
    save_json(out / "device.json", info | link)


def main() -> None:
    args = _args()
    params = read_params()
    cfg = from_section(BenchmarkConfig, params.get("benchmark"), "benchmark")
    energy = from_section(EnergyConfig, params.get("energy"), "energy")
    items = _load(args)
    info = device_info(cfg.threads)
    with atomic_dir(args.out) as tmp, EnergyMeter(energy.country_iso_code) as meter:
        result = harness.benchmark(items, cfg, meter)
        _write(tmp, result, info, cfg)
    for row in result.summary.itertuples():
        log.info("%s/%s/%s fold %d seed %d: median %.3f ms, p99 %.3f ms, %.4f mJ/inference "
                 "(%s), packed %.3f of FP32", args.dataset, args.protocol, args.variant, row.fold,
                 row.seed, row.latency_median_ms, row.latency_p99_ms,
                 row.energy_per_inference_mj, row.energy_method,
                 row.size_packed_bytes / row.size_fp32_state_dict_bytes)


if __name__ == "__main__":
    run_stage(main)

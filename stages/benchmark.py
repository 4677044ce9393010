"""Benchmark every trained model of one variant: latency, energy, size, routing. DVC stage: benchmark."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from qmoe import bench
from qmoe.cli import read_params, run_stage
from qmoe.device import device_id, device_info
from qmoe.energy import EnergyConfig, EnergyMeter
from qmoe.io import atomic_dir, from_section, load_json, save_json
from qmoe.profiling import BenchmarkConfig

log = logging.getLogger("stages.benchmark")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for flag in ("--dataset", "--protocol", "--variant"):
        ap.add_argument(flag, required=True)
    for flag in ("--features", "--runs", "--out"):
        ap.add_argument(flag, type=Path, required=True)
    args = ap.parse_args()

    params = read_params()
    cfg = from_section(BenchmarkConfig, params.get("benchmark"), "benchmark")
    energy = from_section(EnergyConfig, params.get("energy"), "energy")
    torch.set_num_threads(cfg.threads)
    runs = load_json(args.runs / "metrics.json")["runs"]
    table = pd.read_parquet(args.features / "features.parquet")
    items = bench.load_models(args.runs, runs, table)
    info = device_info(cfg.threads)

    with atomic_dir(args.out) as tmp, EnergyMeter(energy.country_iso_code) as meter:
        result = bench.benchmark(items, cfg, meter)
        (tmp / "latency").mkdir()
        for key, samples in result.samples_ms.items():
            np.save(tmp / "latency" / f"{key}.npy", samples)
        summary = result.summary.assign(device_id=device_id(info), device="device.json")
        summary.to_csv(tmp / "summary.csv", index=False)
        result.batch.to_csv(tmp / "batch_latency.csv", index=False)
        if result.routing is not None:
            result.routing.to_csv(tmp / "routing.csv", index=False)
        save_json(tmp / "order.json", [{"block": b, "model": k} for b, k in result.order])
        save_json(tmp / "device.json", info | {"device_id": device_id(info)})
    for _, row in summary.iterrows():
        log.info("%s/%s/%s fold %d seed %d: median %.3f ms, p99 %.3f ms, %.4f mJ/inference, "
                 "packed %.3f of FP32", args.dataset, args.protocol, args.variant, row.fold, row.seed,
                 row.latency_median_ms, row.latency_p99_ms, row.energy_per_inference_mj,
                 row.size_packed_bytes / row.size_fp32_state_dict_bytes)


if __name__ == "__main__":
    run_stage(main)

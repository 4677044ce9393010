"""Benchmark every variant of one (dataset, protocol) side by side. DVC stage: benchmark.

One process, pinned to one core, under a machine-wide lock: every variant's deployed artefacts
(ONNX Runtime; an MoE's also in its parts) and torch models, round-robin in ABBA order, each in
every cache regime of `benchmark.regimes` (qmoe.bench.suite). Outputs (docs/architecture.md
section 4): <out>/<variant>/{summary.csv, latency[_<runtime>][_<form>]/<regime>/,
batch_latency.csv, energy.csv, routing.csv (MoE), device.json}, <out>/run.json (the order of
the timed blocks, the flush, load average, CPU clock and steal time before and after),
<out>/rounds.csv (each batch-1 block's median: the stats stage pairs latency by round) and
<out>/frontend.csv (decode, mel, image, backbone per clip at batch 1).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from qmoe.bench.suite import SuiteConfig
from qmoe.bench.tree import FrontendSpec, benchmark_tree
from qmoe.cli import read_params, run_stage
from qmoe.contract.study import Study
from qmoe.energy import EnergyConfig
from qmoe.features.embed import FeaturesConfig
from qmoe.io import from_section

log = logging.getLogger("stages.benchmark")
FOLDERS = {
    "features": "data/features/<dataset>",
    "raw": "data/raw/<dataset> (front-end timing clips)",
    "runs": "data/runs/<dataset>/<protocol>",
    "deployed": "data/deployed/<dataset>/<protocol>",
    "out": "data/benchmarks/<dataset>/<protocol>",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--protocol", required=True)
    for flag, where in FOLDERS.items():
        ap.add_argument(f"--{flag}", type=Path, required=True, help=where)
    args = ap.parse_args()

    params = read_params()
    study = from_section(Study, params.get("study"), "study")
    cfg = from_section(SuiteConfig, params.get("benchmark"), "benchmark")
    energy = from_section(EnergyConfig, params.get("energy"), "energy")
    features = from_section(FeaturesConfig, params.get("features"), "features")
    summary = benchmark_tree(
        study.runs(args.dataset, args.protocol),
        cfg,
        energy,
        args.features,
        args.runs,
        args.deployed,
        args.out,
        front=FrontendSpec(args.raw, features),
    )
    _log(summary, cfg.runtimes[0])


def _log(summary, runtime: str) -> None:
    for row in summary.itertuples():
        log.info(
            "%s: median %.4f ms (%.2fx %s fp32), p99 %.4f ms, %.0f kB, %s",
            row.variant,
            row.latency_median_ms,
            row.ratio_to_fp32,
            runtime,
            row.latency_p99_ms,
            row.size_packed_bytes / 1e3,
            row.energy_method,
        )


if __name__ == "__main__":
    run_stage(main)

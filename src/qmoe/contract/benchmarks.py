"""data/benchmarks/<dataset>/<protocol> (docs/architecture.md section 4): per variant the summary,
the raw latency samples, batch latency, energy blocks, routing and device; beside them run.json,
rounds.csv and frontend.csv. Their paths and the readers the analysis uses."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.contract.runs import ModelKey, check_columns, unique_keys
from qmoe.contract.study import RunId
from qmoe.io import InputError

# summary.csv columns the analysis reads (the benchmark writes more: docs/architecture.md 4)
SUMMARY_FIELDS = [
    "fold",
    "seed",
    "latency_n",
    "latency_median_ms",
    "latency_mean_ms",
    "latency_std_ms",
    "latency_iqr_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "reference_fold_pass_s",
    "energy_block_n",
    "energy_block_kwh",
    "energy_per_inference_mj",
    "energy_method",
    "size_packed_bytes",
    "size_fp32_state_dict_bytes",
    "size_reference_kb",
    "n_params",
    "macro_f1",
    "f1_per_inference_mj",
]
ROUTING_FIELDS = ["fold", "seed", "expert", "expert_name", "frequency"]  # + device_id
SAMPLES = "{stem}.npy"  # one model's per-call latencies (ms, float64) in a latency folder
DEVICE = "device.json"  # the machine that timed a variant


class BenchFolder(NamedTuple):
    """data/benchmarks/<dataset>/<protocol>: what one benchmark stage instance writes."""

    root: Path

    def variant(self, variant: str) -> Path:
        return self.root / variant

    def summary(self, variant: str) -> Path:
        return self.root / variant / "summary.csv"

    def samples(self, variant: str, folder: str, key: ModelKey) -> Path:
        """`folder`: latency[_<runtime>][_<form>]/<regime> (qmoe.bench.regimes.latency_folder)."""
        return self.root / variant / folder / SAMPLES.format(stem=key.stem)

    def batch(self, variant: str) -> Path:
        return self.root / variant / "batch_latency.csv"

    def energy(self, variant: str) -> Path:
        return self.root / variant / "energy.csv"

    def routing(self, variant: str) -> Path:
        return self.root / variant / "routing.csv"

    def device(self, variant: str) -> Path:
        return self.root / variant / DEVICE

    def table(self, name: str) -> Path:
        """A table beside the variant folders: rounds, frontend (<name>.csv)."""
        return self.root / f"{name}.csv"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"


def device_files(root: Path) -> list[Path]:
    """Every variant's device.json under the benchmarks tree `root`, in path order."""
    return sorted(Path(root).glob(f"*/*/*/{DEVICE}"))


def bench_folder(root: Path, run: RunId) -> BenchFolder:
    """The benchmark folder of `run`'s (dataset, protocol) under the benchmarks tree `root`."""
    return BenchFolder(Path(root) / run.dataset / run.protocol)


def read_summary(root: Path, run: RunId) -> pd.DataFrame:
    """summary.csv of `run` under the benchmarks tree `root`: SUMMARY_FIELDS, one row per model."""
    path = bench_folder(root, run).summary(run.variant)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    frame = pd.read_csv(path)
    check_columns(frame, SUMMARY_FIELDS, str(path))
    unique_keys(frame, str(path))
    return frame


def read_samples(root: Path, run: RunId, folder: str) -> pd.DataFrame:
    """Per-inference latencies (ms) of every model of `run` in its latency `folder`: columns
    fold, seed, latency_ms (none when the folder is absent)."""
    where = bench_folder(root, run).variant(run.variant) / folder
    parts = []
    for path in sorted(where.glob(SAMPLES.format(stem="*"))) if where.is_dir() else []:
        try:
            key = ModelKey.parse(path.stem)
        except ValueError:
            raise InputError(f"{path}: latency file name is not fold<k>_seed<s>.npy") from None
        values = np.load(path, allow_pickle=False).astype(np.float64).ravel()
        parts.append(pd.DataFrame({"fold": key.fold, "seed": key.seed, "latency_ms": values}))
    if not parts:
        return pd.DataFrame(
            {
                "fold": pd.Series(dtype=int),
                "seed": pd.Series(dtype=int),
                "latency_ms": pd.Series(dtype=float),
            }
        )
    return pd.concat(parts, ignore_index=True)


def read_routing(root: Path, run: RunId) -> pd.DataFrame | None:
    """routing.csv of one MoE benchmark, with the run's names (None when absent)."""
    path = bench_folder(root, run).routing(run.variant)
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    check_columns(frame, ROUTING_FIELDS, str(path))
    return frame.assign(dataset=run.dataset, protocol=run.protocol, variant=run.variant)

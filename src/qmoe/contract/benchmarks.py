"""data/benchmarks/<dataset>/<protocol> (docs/architecture.md section 4): per variant the summary,
the raw latency samples, batch latency, energy blocks, routing and device; beside them run.json,
rounds.csv and frontend.csv. Their paths, the names a timed block carries besides its model and
runtime (the cache regime the call meets, the form of an MoE that is called, and the file and
column names they give), and the readers the analysis uses.

Regimes (params `benchmark.regimes`; qmoe.bench.regimes brings the core into each):
- `warm`: back-to-back calls; the head's weights stay in the core's caches between calls.
- `after_backbone`: before every timed call the core's L2 is flushed, as the backbone pass that
  precedes a deployed head does; the head then starts from a cold L2.

MoE forms (ONNX Runtime only; every other target is `whole`):
- `whole`: the model as one call (the export stage's artefact, or the torch module);
- `router`: the router graph alone (z-score, router, curiosity, TopK);
- `expert`: per clip, the artefact of the expert the MoE routes that clip to, alone;
- `host_dispatch`: the router graph, then the chosen expert's artefact, called by the host
  (qmoe.deploy.runtime.HostDispatch).

Each protocol's latency claims are timed in their own runtime (`CLAIMS_RUNTIME`): `faithful` in
the reference's execution form, torch eager (reference-method.md 10.2); `corrected` as deployed."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.contract.runs import ModelKey, check_columns, unique_keys
from qmoe.contract.study import RunId
from qmoe.io import ConfigError, InputError


class Regime(Enum):
    WARM = "warm"
    AFTER_BACKBONE = "after_backbone"


class Form(Enum):
    WHOLE = "whole"
    ROUTER = "router"
    EXPERT = "expert"
    HOST_DISPATCH = "host_dispatch"


REFERENCE_BATCH = 64  # the reference's whole-fold pass runs batches of 64 (reference-method 10.2)
MOE_FORMS = (Form.WHOLE, Form.ROUTER, Form.EXPERT, Form.HOST_DISPATCH)
EXACT_FORMS = (Form.WHOLE, Form.HOST_DISPATCH)  # the two that compute the MoE's output
FORM_WORDS = {Form.WHOLE.value: "one graph", Form.HOST_DISPATCH.value: "host dispatch"}


def check_regimes(names: tuple[str, ...]) -> None:
    """params `benchmark.regimes`: distinct known names, `warm` first (summary.csv's unprefixed
    columns and the energy estimate are warm)."""
    valid = [r.value for r in Regime]
    distinct = len(set(names)) == len(names) and set(names) <= set(valid)
    if not (names and names[0] == Regime.WARM.value and distinct):
        raise ConfigError(
            f"benchmark.regimes: {list(names)}: distinct names of {valid}, `warm` first "
            "(summary.csv's unprefixed columns and the energy estimate are warm)"
        )


def latency_prefix(runtime: str | None, regime: Regime) -> str:
    """summary.csv column prefix: '' for the deployment runtime (None) warm, else
    '<runtime>_' and/or '<regime>_' (torch_after_backbone_latency_median_ms)."""
    parts = [runtime] if runtime else []
    parts += [] if regime is Regime.WARM else [regime.value]
    return "".join(f"{p}_" for p in parts)


def latency_folder(runtime: str | None, form: Form, regime: Regime) -> str:
    """<variant>/<folder>/fold{k}_seed{s}.npy: latency[_<runtime>][_<form>]/<regime>."""
    name = "latency" + (f"_{runtime}" if runtime else "")
    name += "" if form is Form.WHOLE else f"_{form.value}"
    return f"{name}/{regime.value}"


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


# the runtime each protocol's latency claims are timed in (qmoe.bench.runners.RUNTIMES)
CLAIMS_RUNTIME = {"faithful": "torch", "corrected": "onnxruntime"}


def claims_runtime(protocol: str) -> str:
    """The runtime a protocol's latency claims are timed in (the deployment for any other)."""
    return CLAIMS_RUNTIME.get(protocol, "onnxruntime")


def deployment_runtime(runs: pd.DataFrame, d: str, p: str) -> str:
    """The deployment runtime of a benchmark (summary.csv's latency_runtime)."""
    sub = runs.loc[(runs["dataset"] == d) & (runs["protocol"] == p)]
    col = sub["latency_runtime"].dropna() if "latency_runtime" in sub else pd.Series(dtype=str)
    return str(col.iloc[0]) if len(col) else "onnxruntime"


def load_samples(bench_root: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Per-inference batch-1 latencies of every (dataset, protocol, variant) of the runs table
    `runs` under the protocol's runtime, every regime timed: dataset, protocol, variant, fold,
    seed, runtime, regime, latency_ms."""
    parts = []
    for (d, p, v), _ in runs.groupby(["dataset", "protocol", "variant"], sort=True):
        runtime = claims_runtime(p)
        named = None if runtime == deployment_runtime(runs, d, p) else runtime
        for regime in Regime:
            folder = latency_folder(named, Form.WHOLE, regime)
            found = read_samples(bench_root, RunId(d, p, v), folder)
            if not found.empty:
                meta = dict(dataset=d, protocol=p, variant=v, runtime=runtime, regime=regime.value)
                parts.append(found.assign(**meta))
    cols = ["dataset", "protocol", "variant", "fold", "seed", "runtime", "regime", "latency_ms"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)

"""Read the results tree (data/runs, data/train_cost, data/benchmarks; docs/architecture.md 3-4)
into tidy frames.

`runs_table` joins each trained model's metrics with its training cost (time, energy) and its
benchmark summary, and derives what compares the two (break-even inferences, ...): one row per
dataset x protocol x variant x fold x seed, with the variant's facts (kind, bit-widths, MoE-ness,
curiosity mode) taken from the config the train stage recorded (metrics.json `variant_config`),
never from its name. Everything else is loaded per (dataset, protocol, variant) on demand:
per-inference latency samples, predictions, routing frequencies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe import variants
from qmoe.contract.study import Study
from qmoe.io import ConfigError, InputError
from qmoe.training.layout import ModelKey

KEYS = ["dataset", "protocol", "variant", "fold", "seed"]
RUN_FIELDS = [
    "fold",
    "seed",
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "best_epoch",
    "selected_epoch",
    "epochs_run",
    "n_train",
    "n_val",
    "n_test",
    "n_params",
]
COST_FIELDS = ["fold", "seed", "train_seconds", "train_energy_kwh", "train_emissions_kg"]
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
BENCH_PREFIX = "bench_"  # summary.csv columns that repeat a metrics.json field (macro_f1, ...)
FACTS = list(variants.VariantFacts._fields)  # kind, weight_bits, ..., is_moe, curiosity


def _check_columns(frame: pd.DataFrame, needed: list[str], where: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(f"{where}: missing field(s) {missing}")


def _unique_keys(frame: pd.DataFrame, where: str) -> None:
    dup = frame.duplicated(["fold", "seed"], keep=False)
    if dup.any():
        keys = sorted(set(zip(frame.loc[dup, "fold"], frame.loc[dup, "seed"])))
        raise InputError(f"{where}: duplicate (fold, seed) rows {keys}")


def run_config(data: dict, path: Path) -> variants.VariantConfig:
    """The config of the variant a run folder trained (metrics.json `variant_config`)."""
    if "variant_config" not in data:
        raise InputError(f"{path}: no 'variant_config' (written by the train stage; rerun it)")
    try:
        return variants.from_dict(data["variant_config"])
    except (ConfigError, KeyError, TypeError) as e:
        raise InputError(f"{path}: variant_config: {e}") from None


def load_run_metrics(run_dir: Path, dataset: str, protocol: str, variant: str) -> pd.DataFrame:
    """metrics.json -> one row per (fold, seed) with the variant's facts; the header must name
    this very run."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    data = _read_headed(path, Where(dataset, protocol, variant))
    frame = pd.DataFrame(data.get("runs") or [])
    if frame.empty:
        raise InputError(f"{path}: 'runs' is empty")
    _check_columns(frame, RUN_FIELDS, str(path))
    _unique_keys(frame, str(path))
    return frame[RUN_FIELDS].assign(**variants.facts(run_config(data, path))._asdict())


def load_summary(bench_dir: Path) -> pd.DataFrame:
    path = Path(bench_dir) / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    frame = pd.read_csv(path)
    _check_columns(frame, SUMMARY_FIELDS, str(path))
    _unique_keys(frame, str(path))
    return frame


def load_cost(path: Path, dataset: str, protocol: str, variant: str) -> pd.DataFrame:
    """data/train_cost/<d>/<p>/<v>.json -> one row per (fold, seed): train_seconds, energy and
    emissions, and the file's `energy_method` (runs.csv `energy_method`; the benchmark's is
    `bench_energy_method`)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (written by the train stage)")
    data = _read_headed(path, Where(dataset, protocol, variant))
    frame = pd.DataFrame(data.get("runs") or [])
    _check_columns(frame, COST_FIELDS, str(path))
    _unique_keys(frame, str(path))
    return frame[COST_FIELDS].assign(energy_method=data.get("energy_method", ""))


def _read_headed(path: Path, where: Where) -> dict:
    """A per-variant JSON file (metrics.json, a cost file) whose header must name this very run."""
    data = json.loads(path.read_text())
    for field, expected in where._asdict().items():
        if data.get(field) != expected:
            raise InputError(f"{path}: {field} is {data.get(field)!r}, expected {expected!r}")
    return data


def _join(left: pd.DataFrame, right: pd.DataFrame, what: tuple[str, str], where: str):
    """One-to-one join on (fold, seed); both sides must hold the same models."""
    a, b = set(zip(left["fold"], left["seed"])), set(zip(right["fold"], right["seed"]))
    if a != b:
        raise InputError(
            f"{where}: (fold, seed) of {what[0]} and {what[1]} differ: only in the first "
            f"{sorted(a - b)}, only in the second {sorted(b - a)}"
        )
    shared = [c for c in right.columns if c in left.columns and c not in ("fold", "seed")]
    right = right.rename(columns={c: BENCH_PREFIX + c for c in shared})
    return left.merge(right, on=["fold", "seed"], how="inner", validate="one_to_one")


def with_training_cost_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """What one inference costs against the training that made the model (reference 10.3):
    break-even inferences, deployment/training energy x1e3 and x1e6, F1 per training Wh."""
    train_j = table["train_energy_kwh"] * 3.6e6
    per_j = table["energy_per_inference_mj"] / 1e3
    return table.assign(
        break_even_inferences=train_j / per_j,
        deploy_over_train_1e3=1e3 * per_j / train_j,
        deploy_over_train_1e6=1e6 * per_j / train_j,
        f1_per_train_wh=table["macro_f1"] / (table["train_energy_kwh"] * 1e3),
    )


class Roots(NamedTuple):
    """The three trees `runs_table` reads (dvc.yaml's aggregate deps)."""

    runs: Path  # data/runs/<d>/<p>/<v>/metrics.json
    costs: Path  # data/train_cost/<d>/<p>/<v>.json
    benchmarks: Path  # data/benchmarks/<d>/<p>/<v>/summary.csv


def runs_table(roots: Roots, study: Study) -> pd.DataFrame:
    """One row per dataset x protocol x variant x fold x seed; an absent listed run raises."""
    parts = []
    for dataset, protocol, variant in study.combinations():
        where = Where(dataset, protocol, variant)
        run_dir, bench_dir = where.under(roots.runs), where.under(roots.benchmarks)
        for folder, what in ((run_dir, "run"), (bench_dir, "benchmark")):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{folder}: no {what} folder for dataset={dataset} "
                    f"protocol={protocol} variant={variant} (listed in params "
                    "study)"
                )
        label = f"{dataset}/{protocol}/{variant}"
        metrics = load_run_metrics(run_dir, dataset, protocol, variant)
        cost = load_cost(Path(f"{where.under(roots.costs)}.json"), *where)
        joined = _join(metrics, cost, ("metrics.json", "the cost file"), label)
        joined = _join(joined, load_summary(bench_dir), ("metrics.json", "summary.csv"), label)
        parts.append(joined.assign(dataset=dataset, protocol=protocol, variant=variant))
    table = with_training_cost_ratios(pd.concat(parts, ignore_index=True))
    rest = [c for c in table.columns if c not in KEYS + FACTS]
    return table[KEYS + FACTS + rest].sort_values(KEYS, kind="stable").reset_index(drop=True)


def read_runs_table(path: Path) -> pd.DataFrame:
    """reports/tables/runs.csv as written by `aggregate` (a single model's empty `curiosity`
    cell reads back as "")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run the aggregate stage)")
    table = pd.read_csv(path)
    _check_columns(table, KEYS + FACTS + ["macro_f1", "weighted_f1", "accuracy"], str(path))
    return table.assign(
        curiosity=table["curiosity"].fillna("").astype(str), is_moe=table["is_moe"].astype(bool)
    )


def variant_facts(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant of the runs table, indexed by name: its fact columns (FACTS). A
    variant whose runs carry two different configs raises, naming it."""
    facts = runs[["variant", *FACTS]].drop_duplicates()
    twice = facts.loc[facts["variant"].duplicated(), "variant"]
    if not twice.empty:
        raise InputError(
            f"variant {twice.iloc[0]!r} was trained with different configs: "
            f"{facts[facts['variant'] == twice.iloc[0]].to_dict('records')}"
        )
    return facts.set_index("variant")


class Where(NamedTuple):
    dataset: str
    protocol: str
    variant: str

    def under(self, root: Path) -> Path:
        return Path(root) / self.dataset / self.protocol / self.variant


def load_latency(bench_root: Path, where: Where, folder: str) -> pd.DataFrame:
    """Per-inference latencies (ms) of every model of a variant in its benchmark's `folder`
    (e.g. latency/warm: qmoe.contract.regimes.latency_folder): columns fold, seed, latency_ms."""
    folder = where.under(bench_root) / folder
    parts = []
    for path in sorted(folder.glob("*.npy")) if folder.is_dir() else []:
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


def load_predictions(runs_root: Path, where: Where) -> pd.DataFrame | None:
    """predictions.csv of one run folder (None when absent)."""
    path = where.under(runs_root) / "predictions.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    _check_columns(frame, ["fold", "seed", "label", "pred"], str(path))
    return frame.assign(dataset=where.dataset, protocol=where.protocol, variant=where.variant)


def load_routing(bench_root: Path, where: Where) -> pd.DataFrame | None:
    """routing.csv of one MoE benchmark (None when absent)."""
    path = where.under(bench_root) / "routing.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    _check_columns(frame, ["fold", "seed", "expert", "expert_name", "frequency"], str(path))
    return frame.assign(dataset=where.dataset, protocol=where.protocol, variant=where.variant)


def class_names(runs_root: Path, where: Where) -> list[str] | None:
    """metrics.json `class_names` when the train stage recorded them."""
    path = where.under(runs_root) / "metrics.json"
    names = json.loads(path.read_text()).get("class_names") if path.is_file() else None
    return [str(n) for n in names] if names else None


def expert_facts(runs_root: Path, where: Where) -> pd.DataFrame:
    """The experts of an MoE run, from its recorded config: expert_name, expert_kind,
    expert_weight_bits (one row per expert)."""
    path = where.under(runs_root) / "metrics.json"
    experts = getattr(run_config(json.loads(path.read_text()), path), "experts", ())
    rows = [(e.name, *variants.facts(e.config)[:2]) for e in experts]
    return pd.DataFrame(rows, columns=["expert_name", "expert_kind", "expert_weight_bits"])


def routed_predictions(
    runs_root: Path, bench_root: Path, runs: pd.DataFrame, variant: str
) -> pd.DataFrame | None:
    """predictions.csv of an MoE variant with each sample's `expert_name` (from routing.csv) and
    that expert's `expert_kind` and `expert_weight_bits` (from the run's config)."""
    parts = []
    for (d, p), _ in runs[runs["variant"] == variant].groupby(["dataset", "protocol"], sort=True):
        where = Where(d, p, variant)
        pred, routing = load_predictions(runs_root, where), load_routing(bench_root, where)
        if pred is None or routing is None or not {"expert", "gate_prob"} <= set(pred.columns):
            continue
        names = routing[["expert", "expert_name"]].drop_duplicates()
        if names["expert"].duplicated().any():
            raise InputError(f"{where.under(bench_root)}/routing.csv: one expert id has two names")
        routed = pred.merge(names, on="expert", how="left")
        parts.append(routed.merge(expert_facts(runs_root, where), on="expert_name", how="left"))
    return pd.concat(parts, ignore_index=True) if parts else None

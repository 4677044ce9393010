"""Read the results tree (data/runs, data/train_cost, data/benchmarks; docs/architecture.md 3-4)
into tidy frames.

`runs_table` joins each trained model's metrics with its training cost (time, energy) and its
benchmark summary, and derives what compares the two (break-even inferences, ...): one row per
dataset x protocol x variant x fold x seed, with the variant's facts (kind, bit-widths, MoE-ness,
curiosity mode) taken from the config the train stage recorded (its `variant_config`),
never from its name. Everything else is loaded per (dataset, protocol, variant) on demand:
per-inference latency samples, predictions, routing frequencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from qmoe import variants
from qmoe.contract import benchmarks
from qmoe.contract import runs as run_files
from qmoe.contract.runs import FACTS, KEYS, check_columns
from qmoe.contract.study import RunId, Study
from qmoe.io import InputError

BENCH_PREFIX = "bench_"  # summary.csv columns that repeat a run metrics field (macro_f1, ...)


def load_run_metrics(run_dir: Path, run: RunId) -> pd.DataFrame:
    """A run's metrics -> one row per (fold, seed) with the variant's facts; the header must name
    this very run."""
    metrics = run_files.read_metrics(run_dir, run)
    frame = pd.DataFrame(metrics.runs)
    check_columns(frame, run_files.METRICS_FIELDS, str(metrics.path))
    facts = variants.facts(metrics.config())
    return frame[run_files.METRICS_FIELDS].assign(**facts._asdict())


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

    runs: Path  # data/runs (qmoe.contract.runs)
    costs: Path  # data/train_cost (qmoe.contract.runs.read_cost)
    benchmarks: Path  # data/benchmarks (qmoe.contract.benchmarks)


def runs_table(roots: Roots, study: Study) -> pd.DataFrame:
    """One row per dataset x protocol x variant x fold x seed; an absent listed run raises."""
    parts = [_run_rows(roots, run) for run in study.combinations()]
    table = with_training_cost_ratios(pd.concat(parts, ignore_index=True))
    rest = [c for c in table.columns if c not in KEYS + FACTS]
    return table[KEYS + FACTS + rest].sort_values(KEYS, kind="stable").reset_index(drop=True)


def _run_rows(roots: Roots, run: RunId) -> pd.DataFrame:
    """One run's models: its metrics joined with its training cost and its benchmark summary."""
    for root, what in ((roots.runs, "run"), (roots.benchmarks, "benchmark")):
        if not run.under(root).is_dir():
            raise FileNotFoundError(
                f"{run.under(root)}: no {what} folder for dataset={run.dataset} "
                f"protocol={run.protocol} variant={run.variant} (listed in params study)"
            )
    metrics = load_run_metrics(run.under(roots.runs), run)
    cost = run_files.read_cost(run_files.cost_file(roots.costs, run), run)
    joined = _join(metrics, cost, (run_files.METRICS_FILE, "the cost file"), run.label)
    summary = benchmarks.read_summary(roots.benchmarks, run)
    joined = _join(joined, summary, (run_files.METRICS_FILE, "summary.csv"), run.label)
    return joined.assign(dataset=run.dataset, protocol=run.protocol, variant=run.variant)


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


def expert_facts(runs_root: Path, run: RunId) -> pd.DataFrame:
    """The experts of an MoE run, from its recorded config: expert_name, expert_kind,
    expert_weight_bits (one row per expert)."""
    experts = getattr(run_files.read_metrics(run.under(runs_root), run).config(), "experts", ())
    rows = [(e.name, *variants.facts(e.config)[:2]) for e in experts]
    return pd.DataFrame(rows, columns=["expert_name", "expert_kind", "expert_weight_bits"])


def routed_predictions(
    runs_root: Path, bench_root: Path, runs: pd.DataFrame, variant: str
) -> pd.DataFrame | None:
    """predictions.csv of an MoE variant with each sample's `expert_name` (from routing.csv) and
    that expert's `expert_kind` and `expert_weight_bits` (from the run's config)."""
    parts = []
    for (d, p), _ in runs[runs["variant"] == variant].groupby(["dataset", "protocol"], sort=True):
        where = RunId(d, p, variant)
        pred = run_files.read_predictions(where.under(runs_root), where)
        routing = benchmarks.read_routing(bench_root, where)
        if pred is None or routing is None or not {"expert", "gate_prob"} <= set(pred.columns):
            continue
        names = routing[["expert", "expert_name"]].drop_duplicates()
        if names["expert"].duplicated().any():
            path = benchmarks.bench_folder(bench_root, where).routing(variant)
            raise InputError(f"{path}: one expert id has two names")
        routed = pred.merge(names, on="expert", how="left")
        parts.append(routed.merge(expert_facts(runs_root, where), on="expert_name", how="left"))
    return pd.concat(parts, ignore_index=True) if parts else None

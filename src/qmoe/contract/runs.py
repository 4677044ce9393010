"""data/runs and data/train_cost (docs/architecture.md section 3), in one place and without torch,
so the analysis stages read run folders without depending on the training code: the model file
stem, the folder's files, what a checkpoint's `meta` holds, and the one validating reader of
metrics.json, of the cost file, of predictions.csv and of the runs table that joins them
(reports/tables/runs.csv)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from qmoe import variants
from qmoe.contract.study import RunId
from qmoe.io import ConfigError, InputError, atomic_path, load_json, save_json
from qmoe.variants import VariantConfig

_STEM = re.compile(r"fold(\d+)_seed(-?\d+)")
METRICS_FILE = "metrics.json"  # a run folder's model list and scores (no measurement)


class ModelKey(NamedTuple):
    """One trained model of a run folder: its file stem `fold{k}_seed{s}` (any integer seed)."""

    fold: int
    seed: int

    @property
    def stem(self) -> str:
        return f"fold{self.fold}_seed{self.seed}"

    @classmethod
    def parse(cls, stem: str) -> ModelKey:
        """`fold3_seed-1` -> ModelKey(3, -1); anything else raises ValueError naming the stem."""
        m = _STEM.fullmatch(stem)
        if not m:
            raise ValueError(f"{stem!r} is not a model file stem fold<k>_seed<s>")
        return cls(int(m.group(1)), int(m.group(2)))


class RunFolder(NamedTuple):
    """data/runs/<dataset>/<protocol>/<variant>: what the train stages write there."""

    root: Path

    def checkpoint(self, key: ModelKey) -> Path:
        return self.root / f"{key.stem}.pt"

    def curiosity(self, key: ModelKey) -> Path:
        return self.root / "curiosity" / f"{key.stem}.json"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"


PROTOCOL_RECORD = "protocol.json"  # beside the cost files: {dataset, protocol, describe}


class TrainOutputs(NamedTuple):
    """One train stage instance's two outputs (DVC `persist: true`: kept between runs)."""

    runs: Path  # data/runs/<dataset>/<protocol>: one run folder per variant (deterministic)
    costs: Path  # data/train_cost/<dataset>/<protocol>: one <variant>.json (measured)

    def folder(self, variant: str) -> Path:
        return self.runs / variant

    def cost(self, variant: str) -> Path:
        return self.costs / f"{variant}.json"

    @property
    def protocol(self) -> Path:
        """What the protocol does, in its own words (read_protocol: the report's text)."""
        return self.costs / PROTOCOL_RECORD


def cost_file(costs_root: Path, run: RunId) -> Path:
    """data/train_cost/<dataset>/<protocol>/<variant>.json: the cost file of `run`."""
    return TrainOutputs(Path(), Path(costs_root) / run.dataset / run.protocol).cost(run.variant)


def protocol_file(costs_root: Path, dataset: str, protocol: str) -> Path:
    """data/train_cost/<dataset>/<protocol>/protocol.json: what the protocol does, in words."""
    return TrainOutputs(Path(), Path(costs_root) / dataset / protocol).protocol


def write_protocol(outputs: TrainOutputs, dataset: str, protocol: str, lines: list[str]) -> None:
    """The train stage's description of its protocol (the report's text: no training code)."""
    with atomic_path(outputs.protocol) as tmp:
        save_json(tmp, {"dataset": dataset, "protocol": protocol, "describe": lines})


def read_protocol(costs_root: Path, dataset: str, protocol: str) -> list[str]:
    """The description lines the train stage recorded for (dataset, protocol)."""
    path = protocol_file(costs_root, dataset, protocol)
    if not path.is_file():
        raise InputError(f"{path}: not found (run the train stage)")
    lines = load_json(path).get("describe")
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise InputError(f"{path}: 'describe' is not a list of lines")
    return lines


# metrics.json `runs` fields (one entry per model, grid order); the cost file's
# reports/tables/runs.csv: one row per model, keyed so, with its variant's facts
KEYS = ["dataset", "protocol", "variant", "fold", "seed"]
FACTS = list(variants.VariantFacts._fields)  # kind, weight_bits, ..., is_moe, curiosity
METRICS_FIELDS = [
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
MODEL_FIELDS = ("fold", "seed", "macro_f1", "n_params")  # what export and benchmark read
COST_FIELDS = ["fold", "seed", "train_seconds", "train_energy_kwh", "train_emissions_kg"]
PREDICTION_FIELDS = ["fold", "seed", "label", "pred"]  # + clip_id; MoE: expert, gate_prob, ...


class Metrics(NamedTuple):
    """One run folder's metrics.json, checked: its header names the run, `runs` lists models."""

    path: Path
    data: dict[str, Any]

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.data["runs"]

    @property
    def keys(self) -> list[ModelKey]:
        return [ModelKey(int(r["fold"]), int(r["seed"])) for r in self.runs]

    @property
    def class_names(self) -> list[str] | None:
        names = self.data.get("class_names")
        return [str(n) for n in names] if names else None

    def config(self) -> VariantConfig:
        """The config of the variant the folder trained (`variant_config`)."""
        if "variant_config" not in self.data:
            raise InputError(
                f"{self.path}: no 'variant_config' (written by the train stage; rerun it)"
            )
        try:
            return variants.from_dict(self.data["variant_config"])
        except (ConfigError, KeyError, TypeError) as e:
            raise InputError(f"{self.path}: variant_config: {e}") from None


def write_metrics(
    folder: Path, run: RunId, config: dict, class_names: list[str] | None, rows: list[dict]
) -> None:
    """metrics.json: the run's header, its resolved config (variants.to_dict), the class names
    and one row per model in grid order (no measurement: the same bytes on every run)."""
    header = run._asdict() | {"variant_config": config, "class_names": class_names}
    save_json(RunFolder(Path(folder)).metrics, header | {"runs": rows})


def read_metrics(folder: Path, run: RunId) -> Metrics:
    """metrics.json of `run`'s run folder: its header must name `run`; every model row has
    MODEL_FIELDS, once per (fold, seed)."""
    path = RunFolder(Path(folder)).metrics
    if not path.is_file():
        raise InputError(f"{path}: not found (train {run.variant} first)")
    data = read_headed(path, run)
    rows = data.get("runs") or []
    if not rows:
        raise InputError(f"{path}: 'runs' is empty")
    bad = [i for i, r in enumerate(rows) if any(r.get(k) is None for k in MODEL_FIELDS)]
    if bad:
        raise InputError(f"{path}: rows {bad} lack one of {', '.join(MODEL_FIELDS)}")
    unique_keys(pd.DataFrame(rows), str(path))
    return Metrics(path, data)


def read_headed(path: Path, run: RunId) -> dict[str, Any]:
    """A per-variant JSON file (metrics.json, a cost file) whose header must name this very run."""
    data = json.loads(path.read_text())
    for field, expected in run._asdict().items():
        if data.get(field) != expected:
            raise InputError(f"{path}: {field} is {data.get(field)!r}, expected {expected!r}")
    return data


def read_cost(path: Path, run: RunId) -> pd.DataFrame:
    """data/train_cost/<d>/<p>/<v>.json -> one row per (fold, seed): COST_FIELDS and the file's
    `energy_method` (runs.csv `energy_method`; the benchmark's is `bench_energy_method`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (written by the train stage)")
    data = read_headed(path, run)
    frame = pd.DataFrame(data.get("runs") or [])
    check_columns(frame, COST_FIELDS, str(path))
    unique_keys(frame, str(path))
    return frame[COST_FIELDS].assign(energy_method=data.get("energy_method", ""))


def read_predictions(folder: Path, run: RunId) -> pd.DataFrame | None:
    """predictions.csv of `run`'s run folder, with the run's names (None when absent)."""
    path = RunFolder(Path(folder)).predictions
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    check_columns(frame, PREDICTION_FIELDS, str(path))
    return frame.assign(dataset=run.dataset, protocol=run.protocol, variant=run.variant)


def check_columns(frame: pd.DataFrame, needed: list[str], where: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(f"{where}: missing field(s) {missing}")


def unique_keys(frame: pd.DataFrame, where: str) -> None:
    dup = frame.duplicated(["fold", "seed"], keep=False)
    if dup.any():
        keys = sorted(set(zip(frame.loc[dup, "fold"], frame.loc[dup, "seed"])))
        raise InputError(f"{where}: duplicate (fold, seed) rows {keys}")


def class_names(runs_root: Path, run: RunId) -> list[str] | None:
    """The run's `class_names` when the train stage recorded them."""
    folder = run.under(runs_root)
    if not RunFolder(folder).metrics.is_file():
        return None
    return read_metrics(folder, run).class_names


def read_runs_table(path: Path) -> pd.DataFrame:
    """reports/tables/runs.csv as written by `aggregate` (qmoe.analysis.results.runs_table; a
    single model's empty `curiosity` cell reads back as "")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run the aggregate stage)")
    table = pd.read_csv(path)
    check_columns(table, KEYS + FACTS + ["macro_f1", "weighted_f1", "accuracy"], str(path))
    return table.assign(
        curiosity=table["curiosity"].fillna("").astype(str), is_moe=table["is_moe"].astype(bool)
    )

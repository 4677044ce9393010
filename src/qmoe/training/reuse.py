"""Which variants one train stage instance trains again, and which it keeps as they are.

DVC reruns the instance (one per dataset and protocol, every variant) when any of its inputs
changes; the instance itself must not retrain what that change cannot touch, and must never keep
models that came from other inputs. Each variant's cost file holds its record: `inputs`, what its
models are a function of (its config, an MoE's experts' included; the model config; the training
config fields its protocol reads, `train.moe` for MoEs only; the digests of the feature files and of
the code the stage runs, qmoe.sources), and `files`, the sha256 of every file of its run folder as
written. A variant is kept only when its recorded inputs equal today's, its run folder holds exactly
the recorded files with the recorded digests, and every checkpoint loads and names this variant,
dataset, protocol and config; otherwise it is retrained and the log says why. The record is written
last (after the old one is removed and the run folder replaced), so no interruption can leave a
record describing other models. `execution` and `energy` are not inputs: results are bit-identical
on any backend, and the energy accounting never changes a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from qmoe import sources
from qmoe.contract.checkpoint import CheckpointMeta, load_checkpoint
from qmoe.contract.features import FeatureFolder
from qmoe.contract.runs import PROTOCOL_RECORD, TrainOutputs
from qmoe.io import InputError, load_json
from qmoe.training.units import TrainJob
from qmoe.variants import to_dict

log = logging.getLogger("qmoe.training")

INPUTS = "inputs"  # the cost file's key holding what the models are a function of
FILES = "files"  # ... and the one holding {path in the run folder: sha256} as written
FORCED = "forced: DVC ran the stage though it sees no change (dvc repro -f)"


class Inputs(NamedTuple):
    """The instance's input files besides params: what the digests cover."""

    features: Path  # data/features/<dataset> (qmoe.contract.features): the table and its info
    script: Path  # stages/train.py: it and its qmoe import closure are the code
    lock: Path  # requirements.lock: the pinned libraries


class Plan(NamedTuple):
    train: list[str]  # variants trained in this run, in study order
    keep: list[str]  # variants whose models and cost file stay as they are
    why: dict[str, str]  # each trained variant -> why it is trained


def records(jobs: dict[str, TrainJob], inputs: Inputs) -> dict[str, dict[str, Any]]:
    """Each variant's record of what its models are a function of."""
    features = sources.digest(FeatureFolder(inputs.features).files)
    code = sources.digest([*sources.closure(inputs.script), inputs.script, inputs.lock])
    return {v: inputs_record(job, features, code) for v, job in jobs.items()}


def inputs_record(job: TrainJob, features: str, code: str) -> dict[str, Any]:
    """What `job`'s models are a function of, as JSON values (`features`, `code`: digests). Only
    the training fields its protocol reads: faithful models ignore `train.seeds`."""
    unused = job.protocol_obj.unused_train_fields
    train = {k: v for k, v in dataclasses.asdict(job.cfg).items() if k not in unused}
    train["moe"] = None if job.moe_cfg is None else dataclasses.asdict(job.moe_cfg)
    record = {
        "dataset": job.dataset,
        "protocol": job.protocol,
        "variant": job.variant,
        "variant_config": to_dict(job.variant_cfg),
        "model": dataclasses.asdict(job.model_cfg),
        "train": train,
        "features": features,
        "code": code,
    }
    return json.loads(json.dumps(record))  # tuples -> lists: equal to what the file holds


def folder_digests(folder: Path) -> dict[str, str]:
    """{path relative to `folder` (posix): sha256 of its bytes} for every file below it; a
    symbolic link (never written by the stage) is listed as such, not followed."""
    return {
        f.relative_to(folder).as_posix(): (
            "symlink" if f.is_symlink() else hashlib.sha256(f.read_bytes()).hexdigest()
        )
        for f in sorted(folder.rglob("*"))
        if f.is_file() or f.is_symlink()
    }


def plan(outputs: TrainOutputs, records: dict[str, dict[str, Any]], force: bool) -> Plan:
    """Remove what no listed variant owns, then split the variants (`records`' keys, in order)
    into those to train (with the reason) and those to keep; `force`: train every one."""
    _remove_unlisted(outputs, set(records))
    why = {v: FORCED if force else stale(outputs, v, r) for v, r in records.items()}
    return Plan(
        [v for v in records if why[v]],
        [v for v in records if not why[v]],
        {v: w for v, w in why.items() if w},
    )


def stale(outputs: TrainOutputs, variant: str, record: dict[str, Any]) -> str:
    """Why `variant`'s outputs cannot be kept for `record`, or "" when they can."""
    cost = outputs.cost(variant)
    if not cost.is_file():
        return f"no record of its inputs ({cost} absent)"
    try:
        written = load_json(cost)
    except (OSError, ValueError) as e:
        return f"its record {cost} is unreadable ({e})"
    changed = differences(written.get(INPUTS), record)
    if changed:
        return f"its inputs changed ({', '.join(changed[:6])})"
    files = written.get(FILES)
    if not isinstance(files, dict) or not files:
        return f"its record {cost} lists no run-folder files"
    folder = outputs.folder(variant)
    found = folder_digests(folder) if folder.is_dir() else {}
    if found != files:
        return f"its run folder {folder} is not as written ({_file_changes(files, found)})"
    return _checkpoints_differ(folder, sorted(f for f in files if f.endswith(".pt")), record)


def _checkpoints_differ(folder: Path, names: list[str], record: dict[str, Any]) -> str:
    """ "" when every checkpoint loads and its meta names this run and its current config."""
    if not names:
        return f"its run folder {folder} holds no checkpoint"
    expected = {k: record[k] for k in ("dataset", "protocol", "variant", "variant_config")}
    for name in names:
        try:
            meta = CheckpointMeta.from_dict(load_checkpoint(folder / name).meta, folder / name)
        except InputError as e:
            return f"a checkpoint does not load ({e})"
        stored = json.loads(json.dumps(meta.to_dict()))
        wrong = [k for k, v in expected.items() if stored[k] != v]
        if wrong or f"{meta.key.stem}.pt" != name:
            return f"{folder / name} holds another model ({', '.join(wrong) or 'fold/seed'})"
    return ""


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON values differ (a whole value when either is not a mapping)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix or "the whole record"]
    out = []
    for key in list(new) + [k for k in old if k not in new]:
        path = f"{prefix}.{key}" if prefix else str(key)
        out += (
            differences(old.get(key), new.get(key), path) if key in old and key in new else [path]
        )
    return out


def _file_changes(recorded: dict[str, str], found: dict[str, str]) -> str:
    missing = sorted(set(recorded) - set(found))
    extra = sorted(set(found) - set(recorded))
    altered = sorted(f for f in set(recorded) & set(found) if recorded[f] != found[f])
    parts = [
        f"{what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
        for what, names in (
            ("missing", missing),
            ("not written by it", extra),
            ("altered", altered),
        )
        if names
    ]
    return "; ".join(parts)


def _remove_unlisted(outputs: TrainOutputs, variants: set[str]) -> None:
    """A variant dropped from the study leaves no folder or cost file behind (aggregate reads
    every folder), and neither does anything else in the two outputs."""
    costs = {f"{v}.json" for v in variants} | {PROTOCOL_RECORD}
    for root, own in ((outputs.runs, variants), (outputs.costs, costs)):
        if not root.is_dir():
            continue
        for entry in sorted(root.iterdir()):
            if entry.name in own:
                continue
            log.info("removing %s: no variant of the study owns it", entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

"""Which variants one train stage instance trains again, and which it keeps as they are.

DVC runs `train` once per (dataset, protocol), for every variant of the study: one process per
variant cost about 10 s of start, imports and idle cores each, a third of the ESC-10 study (issue
15). DVC reruns the instance when any of its inputs changes, so the instance itself must not retrain
what that change cannot touch. Each variant's cost file records the inputs its models were trained
from (`inputs`): its own config (an MoE's holds its experts'), the model config, the training
config that applies to it (single models: `train` without `moe`; MoEs: with it), the digest of the
feature files and the digest of the code the stage runs (qmoe.sources: exactly the stage's DVC
source deps, its script and requirements.lock). A variant whose recorded inputs equal today's, with
a complete run folder, is kept; every other one is trained. Editing `variants.w4a8` retrains w4a8
and the MoEs whose pool holds it; a code edit retrains everything; `execution` is not an input
(results are bit-identical on any backend). The record lives in the cost file, not in the run
folder, so run folders stay byte-identical across retrains and nothing downstream reruns for
them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from qmoe import sources
from qmoe.io import load_json
from qmoe.training.units import TrainJob
from qmoe.variants import to_dict

log = logging.getLogger("qmoe.training")

INPUTS = "inputs"  # the cost file's key holding the record


class Outputs(NamedTuple):
    """One train stage instance's two outputs (DVC `persist: true`: kept between runs)."""

    runs: Path  # data/runs/<dataset>/<protocol>: one run folder per variant (deterministic)
    costs: Path  # data/train_cost/<dataset>/<protocol>: one <variant>.json (measured)

    def folder(self, variant: str) -> Path:
        return self.runs / variant

    def cost(self, variant: str) -> Path:
        return self.costs / f"{variant}.json"


class Inputs(NamedTuple):
    """The instance's input files besides params: what the digests cover."""

    features: Path  # data/features/<dataset>: features.parquet (and features.json)
    script: Path  # stages/train.py: it and its qmoe import closure are the code
    lock: Path  # requirements.lock: the pinned libraries


class Plan(NamedTuple):
    train: list[str]  # variants trained in this run, in study order
    keep: list[str]  # variants whose models and cost file stay as they are


def records(
    jobs: dict[str, TrainJob], inputs: Inputs, country_iso_code: str
) -> dict[str, dict[str, Any]]:
    """Each variant's record of what its models are a function of."""
    table = [inputs.features / n for n in ("features.parquet", "features.json")]
    features = sources.digest([f for f in table if f.is_file()])
    code = sources.digest([*sources.closure(inputs.script), inputs.script, inputs.lock])
    return {v: inputs_record(job, features, code, country_iso_code) for v, job in jobs.items()}


def inputs_record(job: TrainJob, features: str, code: str, country_iso_code: str) -> dict[str, Any]:
    """What `job`'s models are a function of, as JSON values (`features`, `code`: digests)."""
    train = dataclasses.asdict(job.cfg)
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
        "energy_country": country_iso_code,  # the cost file's emissions depend on it
    }
    return json.loads(json.dumps(record))  # tuples -> lists: equal to what the file holds


def plan(outputs: Outputs, records: dict[str, dict[str, Any]]) -> Plan:
    """Remove what no listed variant owns, then split the variants (`records`' keys, in order)
    into those to train and those to keep."""
    _remove_unlisted(outputs, set(records))
    keep = [v for v, record in records.items() if _trained_from(outputs, v, record)]
    return Plan([v for v in records if v not in keep], keep)


def _trained_from(outputs: Outputs, variant: str, record: dict[str, Any]) -> bool:
    cost, metrics = outputs.cost(variant), outputs.folder(variant) / "metrics.json"
    if not (cost.is_file() and metrics.is_file()):
        return False
    return load_json(cost).get(INPUTS) == record


def _remove_unlisted(outputs: Outputs, variants: set[str]) -> None:
    """A variant dropped from the study leaves no folder or cost file behind (aggregate reads
    every folder), and neither does anything else in the two outputs."""
    for root, own in ((outputs.runs, variants), (outputs.costs, {f"{v}.json" for v in variants})):
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

"""The train stages' work units: one model (fold, seed) -> everything the stage writes for it.

`train_unit` runs in an executor worker (qmoe.executor): the stage's `TrainJob`s (one per variant,
sharing one feature matrix: pickle sends it once) travel once to each worker, a `Unit` per model
(variant, fold, seed), and the result carries the checkpoint as bytes plus the records, so the
stage writes its outputs in a fixed order whatever ran where. Energy: parallel
units share the machine, so one meter covers the whole grid and `apportion_energy` splits it over
the models by their CPU time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd

from qmoe.contract.checkpoint import checkpoint_bytes
from qmoe.training import experiment
from qmoe.training.experiment import TrainJob
from qmoe.training.protocols import Split

APPORTIONED = (
    "the stage's whole grid measured as one task, apportioned to each model by its CPU time"
)
OTHER_NODES = "Ray cluster: only this machine's energy is measured, not other nodes'"


class Unit(NamedTuple):
    variant: str  # a key of the stage's TrainJob mapping
    split: Split
    seed: int


class UnitOutput(NamedTuple):
    metrics: dict[str, Any]  # one `runs` entry of the run metrics (deterministic)
    history: list[dict[str, Any]]  # history.csv rows
    predictions: pd.DataFrame  # predictions.csv rows
    checkpoint: bytes  # the .pt file, as qmoe.contract.checkpoint.save_checkpoint writes it
    curiosity: dict[str, list] | None  # curiosity/<stem>.json; None when u is not computed
    cpu_seconds: float  # CPU time of the unit's thread: its share of the energy
    train_seconds: float  # wall time of the fit (the cost file, not the run metrics)


def unit_name(job: TrainJob, unit: Unit) -> str:
    return experiment.run_name(job, unit.split, unit.seed)


def units_for(job: TrainJob) -> list[Unit]:
    """One variant's grid in the order the stage writes it: folds, then seeds. The test folds come
    from the split seed (the same for every model seed); the inner validation split may vary with
    the model seed (corrected)."""
    d, cfg = job.data, job.cfg
    seeds = job.protocol_obj.seeds(cfg)
    per_seed = {
        s: job.protocol_obj.splits(
            d.y.numpy(), d.folds, d.groups, seed=cfg.split_seed, model_seed=s
        )
        for s in seeds
    }
    n_folds = len(per_seed[seeds[0]])
    return [Unit(job.variant, per_seed[s][i], s) for i in range(n_folds) for s in seeds]


def train_unit(jobs: Mapping[str, TrainJob], unit: Unit) -> UnitOutput:
    """Train and evaluate one model (top-level: executor workers import it by name)."""
    job, split, seed = jobs[unit.variant], unit.split, unit.seed
    cpu0 = time.thread_time()  # torch on one thread runs its ops in this thread
    r = experiment.run_one(job, split, seed)
    cpu_seconds = time.thread_time() - cpu0
    meta = experiment.checkpoint_meta(job, split, seed, r)
    return UnitOutput(
        metrics=r.metrics,
        history=[{"fold": split.fold, "seed": seed, **h} for h in r.fit.history],
        predictions=experiment.prediction_frame(job.data, split, seed, r.prediction),
        checkpoint=checkpoint_bytes(r.model.state_dict(), meta.to_dict()),
        curiosity=experiment.curiosity_record(job.data, split, r.prediction, r.routing),
        cpu_seconds=cpu_seconds,
        train_seconds=r.train_seconds,
    )


class UnitEnergy(NamedTuple):
    energy_kwh: float
    emissions_kg: float


def apportion_energy(
    energy_kwh: float, emissions_kg: float, cpu_seconds: list[float]
) -> list[UnitEnergy]:
    """Split one reading over the units in proportion to their CPU seconds (sums are kept)."""
    total = sum(cpu_seconds)
    if not total > 0:
        raise ValueError(f"cannot apportion energy: the units' CPU seconds sum to {total}")
    return [UnitEnergy(energy_kwh * c / total, emissions_kg * c / total) for c in cpu_seconds]

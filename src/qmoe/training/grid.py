"""One train stage instance: every (fold, seed) model of every variant under one protocol.

`stages/train.py` parses its arguments and params and calls `train_protocol`, which keeps the
variants whose inputs are unchanged (qmoe.training.reuse), trains the others' models on one pool of
workers (the longest units first, so no core idles at the end) and writes one run folder
(docs/architecture.md section 3) and one cost file per trained variant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from qmoe.energy import EnergyMeter
from qmoe.executor import ExecutionConfig, measures_all_work, run_units
from qmoe.io import ConfigError, atomic_dir, atomic_path, load_json, save_json, write_bytes
from qmoe.models import ModelConfig
from qmoe.training import experiment, reuse, units
from qmoe.training.fit import TrainConfig
from qmoe.training.layout import ModelKey, RunFolder
from qmoe.training.protocols import make_protocol
from qmoe.variants import MoEConfig, VariantConfig, to_dict

log = logging.getLogger("qmoe.training")


class RunSpec(NamedTuple):
    """What one train stage instance trains (names as in dvc.yaml's matrix)."""

    dataset: str
    protocol: str


def train_protocol(
    spec: RunSpec,
    variants: Mapping[str, VariantConfig],
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    inputs: reuse.Inputs,
    outputs: reuse.Outputs,
    country_iso_code: str,
    execution: ExecutionConfig,
) -> reuse.Plan:
    """Train every variant of `variants` whose inputs changed on every fold and seed of
    `spec.protocol` (one executor unit per model); write each one's run folder (deterministic: the
    same bytes on every run) and cost file (measured: wall time and energy per model) atomically,
    once every unit has succeeded. Returns which variants were trained and which kept."""
    # the tracker probes the hardware (~1.4 s) while the features are read and split
    with EnergyMeter(country_iso_code=country_iso_code).start_soon() as meter:
        jobs = _jobs(spec, variants, model_cfg, cfg, inputs.features)
        records = reuse.records(jobs, inputs, country_iso_code)
        todo = reuse.plan(outputs, records)
        for v in todo.keep:
            log.info("%s/%s/%s: kept (its inputs are unchanged)", spec.dataset, spec.protocol, v)
        if todo.train:
            _train_grid({v: jobs[v] for v in todo.train}, records, meter, outputs, execution)
    return todo


def _jobs(
    spec: RunSpec,
    variants: Mapping[str, VariantConfig],
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    features: Path,
) -> dict[str, units.TrainJob]:
    """The protocol's view of the feature table, once, in one job per variant."""
    protocol = make_protocol(spec.protocol, cfg)
    table_path = features / "features.parquet"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: feature table not found (run the features stage)")
    head = (
        load_json(features / "features.json").get("head", "pooled")
        if (features / "features.json").is_file()
        else "pooled"
    )
    if head != "pooled":
        raise ConfigError(
            f"features.head: {head!r}: keep 'pooled'; the faithful protocol applies "
            "the reference's random head itself (it would project twice)"
        )
    # the protocol's view: faithful projects with the reference's head and, on ESC-50, learns its
    # scrambled 5-way labels
    data = experiment.embeddings_from_table(
        protocol.feature_table(pd.read_parquet(table_path)),
        protocol.label_set(spec.dataset, cfg.labels),
    )
    return {
        name: units.TrainJob(
            spec.dataset,
            spec.protocol,
            name,
            data,
            variant,
            model_cfg,
            cfg,
            cfg.moe if isinstance(variant, MoEConfig) else None,
            protocol,
        )
        for name, variant in variants.items()
    }


def _train_grid(
    jobs: dict[str, units.TrainJob],
    records: dict[str, dict],
    meter: EnergyMeter,
    outputs: reuse.Outputs,
    execution: ExecutionConfig,
) -> None:
    """Run every unit of `jobs` (MoEs' first: the longest, so the pool ends together), then write
    each variant's outputs in a fixed order (atomically)."""
    # the splits depend on the data, the protocol and the seeds, never on the variant: drawn once
    # (the corrected protocol's inner splits took ~1 s per variant)
    base = units.units_for(next(iter(jobs.values())))
    grids = {v: [u._replace(variant=v) for u in base] for v in jobs}
    # (variant, index in its grid), MoEs first; sorted() is stable: study order otherwise
    order = sorted(
        ((v, i) for v, grid in grids.items() for i in range(len(grid))),
        key=lambda vi: jobs[vi[0]].moe_cfg is None,
    )
    label = ", ".join(jobs)
    with meter.measure(f"train {next(iter(jobs.values())).protocol}: {label}") as energy:
        results = run_units(
            units.train_unit,
            jobs,
            [grids[v][i] for v, i in order],
            execution,
            name=lambda u: units.unit_name(jobs[u.variant], u),
        )
    shares = units.apportion_energy(
        energy.energy_kwh, energy.emissions_kg, [o.cpu_seconds for o in results]
    )
    method = "; ".join(
        [energy.method, units.APPORTIONED]
        + ([] if measures_all_work(execution) else [units.OTHER_NODES])
    )
    done_at = dict(zip(order, zip(results, shares, strict=True), strict=True))
    for v, job in jobs.items():
        done = [(u, *done_at[v, i]) for i, u in enumerate(grids[v])]
        _write_variant(job, done, {reuse.INPUTS: records[v], "energy_method": method}, outputs)


def _write_variant(
    job: units.TrainJob,
    done: list[tuple[units.Unit, units.UnitOutput, units.UnitEnergy]],
    cost_header: dict,
    outputs: reuse.Outputs,
) -> None:
    """One variant's run folder and cost file, units in grid order (folds, then seeds)."""
    history, predictions, costs = [], [], []
    folder_path, cost_path = outputs.folder(job.variant), outputs.cost(job.variant)
    with atomic_dir(folder_path) as tmp, atomic_path(cost_path) as cost_tmp:
        folder = RunFolder(tmp)
        for unit, r, share in done:
            key = ModelKey(unit.split.fold, unit.seed)
            log.info(
                "%s: macro-F1 %.4f (epoch %d of %d, %.2f s)",
                units.unit_name(job, unit),
                r.metrics["macro_f1"],
                r.metrics["selected_epoch"],
                r.metrics["epochs_run"],
                r.train_seconds,
            )
            costs.append(
                {
                    "fold": key.fold,
                    "seed": key.seed,
                    "train_seconds": r.train_seconds,
                    "train_energy_kwh": share.energy_kwh,
                    "train_emissions_kg": share.emissions_kg,
                }
            )
            history += r.history
            predictions.append(r.predictions)
            write_bytes(folder.checkpoint(key), r.checkpoint)
            if r.curiosity is not None:
                save_json(folder.curiosity(key), r.curiosity)
        pd.DataFrame(history).to_csv(folder.history, index=False)
        pd.concat(predictions).to_csv(folder.predictions, index=False)
        header = {"dataset": job.dataset, "protocol": job.protocol, "variant": job.variant}
        save_json(
            folder.metrics,
            {
                **header,
                "variant_config": to_dict(job.variant_cfg),
                "class_names": job.data.class_names,
                "runs": [r.metrics for _, r, _ in done],
            },
        )
        save_json(cost_tmp, {**header, **cost_header, "runs": costs})

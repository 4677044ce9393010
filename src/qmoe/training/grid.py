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

import pandas as pd

from qmoe.contract.features import FeatureFolder, read_table
from qmoe.contract.runs import ModelKey, RunFolder, TrainOutputs, write_metrics
from qmoe.contract.study import RunId, instance
from qmoe.energy import EnergyMeter, grid_emissions_kg
from qmoe.executor import ExecutionConfig, measures_all_work, run_units
from qmoe.io import ConfigError, atomic_dir, atomic_path, load_json, save_json, write_bytes
from qmoe.models import ModelConfig
from qmoe.training import experiment, reuse, units
from qmoe.training.fit import TrainConfig
from qmoe.training.protocols import make_protocol
from qmoe.variants import MoEConfig, VariantConfig, to_dict

log = logging.getLogger("qmoe.training")

COUNTRY = "energy_country"  # the cost file's grid: its emissions are for this country


def train_protocol(
    runs: tuple[RunId, ...],
    variants: Mapping[str, VariantConfig],
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    inputs: reuse.Inputs,
    outputs: TrainOutputs,
    country_iso_code: str,
    execution: ExecutionConfig,
    *,
    force: bool = False,
) -> reuse.Plan:
    """Train every variant of `variants` whose outputs cannot be kept (qmoe.training.reuse; all of
    them with `force`) on every fold and seed of the protocol of `runs` (one stage instance: one
    dataset and protocol; one executor unit per model);
    write each one's run folder (deterministic: the same bytes on every run) and then its cost file
    (measured: wall time and energy per model; the record of inputs and files), once every unit has
    succeeded. Kept variants whose emissions were computed for another country get them again
    from their recorded energy. Returns which variants were trained (and why) and which kept."""
    # the tracker probes the hardware (~1.4 s) while the features are read and split
    with EnergyMeter(country_iso_code=country_iso_code).start_soon() as meter:
        cell = instance(runs)  # (dataset, protocol)
        jobs = _jobs(runs[0], variants, model_cfg, cfg, inputs.features)
        records = reuse.records(jobs, inputs)
        todo = reuse.plan(outputs, records, force)
        for v in todo.keep:
            log.info("%s/%s/%s: kept (its inputs and files are unchanged)", *cell, v)
            _recount_emissions(outputs.cost(v), country_iso_code)
        for v, why in todo.why.items():
            log.info("%s/%s/%s: training: %s", *cell, v, why)
        if todo.train:
            _train_grid({v: jobs[v] for v in todo.train}, records, meter, outputs, execution)
    return todo


def _recount_emissions(cost: Path, country_iso_code: str) -> None:
    """Emissions of a kept variant for today's `energy.country_iso_code` (energy is unchanged)."""
    data = load_json(cost)
    if data.get(COUNTRY) == country_iso_code:
        return
    for run in data["runs"]:
        run["train_emissions_kg"] = grid_emissions_kg(run["train_energy_kwh"], country_iso_code)
    log.info("%s: emissions recomputed for %s (were %s)", cost, country_iso_code, data.get(COUNTRY))
    with atomic_path(cost) as tmp:
        save_json(tmp, {**data, COUNTRY: country_iso_code})


def _jobs(
    spec: RunId,
    variants: Mapping[str, VariantConfig],
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    features: Path,
) -> dict[str, units.TrainJob]:
    """The protocol's view of the feature table, once, in one job per variant (of `spec`'s
    dataset and protocol)."""
    protocol = make_protocol(spec.protocol, cfg)
    table, info = read_table(features), FeatureFolder(features).info
    head = load_json(info).get("head", "pooled") if info.is_file() else "pooled"
    if head != "pooled":
        raise ConfigError(
            f"features.head: {head!r}: keep 'pooled'; the faithful protocol applies "
            "the reference's random head itself (it would project twice)"
        )
    # the protocol's view: faithful projects with the reference's head and, on ESC-50, learns its
    # scrambled 5-way labels
    data = experiment.embeddings_from_table(
        protocol.feature_table(table),
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
    outputs: TrainOutputs,
    execution: ExecutionConfig,
) -> None:
    """Run every unit of `jobs` (MoEs' first: the longest, so the pool ends together), then write
    each variant's outputs in a fixed order (atomically)."""
    grids, order = _grids(jobs)
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
    done_at = dict(zip(order, zip(results, shares, strict=True), strict=True))
    for v, job in jobs.items():
        done = [(u, *done_at[v, i]) for i, u in enumerate(grids[v])]
        header = {
            reuse.INPUTS: records[v],
            COUNTRY: meter.country_iso_code,
            "energy_method": _energy_method(energy.method, execution),
        }
        _write_variant(job, done, header, outputs)


def _grids(jobs: dict[str, units.TrainJob]):
    """Each variant's units in grid order, and the run order: (variant, index in its grid), MoEs
    first (sorted() is stable: study order otherwise)."""
    # the splits depend on the data, the protocol and the seeds, never on the variant: drawn once
    base = units.units_for(next(iter(jobs.values())))
    grids = {v: [u._replace(variant=v) for u in base] for v in jobs}
    order = sorted(
        ((v, i) for v, grid in grids.items() for i in range(len(grid))),
        key=lambda vi: jobs[vi[0]].moe_cfg is None,
    )
    return grids, order


def _energy_method(measured: str, execution: ExecutionConfig) -> str:
    """How a cost file's energy was obtained: the meter's method, then how it was shared out."""
    others = [] if measures_all_work(execution) else [units.OTHER_NODES]
    return "; ".join([measured, units.APPORTIONED, *others])


# The write points of one variant's outputs, in order; `_reached` is called after each (a no-op
# that tests replace to kill the stage there): the record goes first and comes back last, so an
# interruption anywhere leaves either the old folder with its record, or no record (retrained).
STEPS = ("record removed", "folder staged", "folder replaced", "record written")


def _reached(step: str, variant: str) -> None:
    """A write point passed (STEPS)."""


def _write_variant(
    job: units.TrainJob,
    done: list[tuple[units.Unit, units.UnitOutput, units.UnitEnergy]],
    cost_header: dict,
    outputs: TrainOutputs,
) -> None:
    """One variant's run folder, then its cost file, units in grid order (folds, then seeds)."""
    folder_path, cost_path = outputs.folder(job.variant), outputs.cost(job.variant)
    cost_path.unlink(missing_ok=True)
    _reached(STEPS[0], job.variant)
    with atomic_dir(folder_path) as tmp:
        _write_folder(job, done, RunFolder(tmp))
        files = reuse.folder_digests(tmp)
        _reached(STEPS[1], job.variant)
    _reached(STEPS[2], job.variant)
    costs = [
        {
            "fold": unit.split.fold,
            "seed": unit.seed,
            "train_seconds": r.train_seconds,
            "train_energy_kwh": share.energy_kwh,
            "train_emissions_kg": share.emissions_kg,
        }
        for unit, r, share in done
    ]
    header = {"dataset": job.dataset, "protocol": job.protocol, "variant": job.variant}
    with atomic_path(cost_path) as tmp_cost:
        save_json(tmp_cost, {**header, **cost_header, reuse.FILES: files, "runs": costs})
    _reached(STEPS[3], job.variant)


def _write_folder(
    job: units.TrainJob,
    done: list[tuple[units.Unit, units.UnitOutput, units.UnitEnergy]],
    folder: RunFolder,
) -> None:
    """The run folder's files (docs/architecture.md section 3): no measurement in them."""
    history, predictions = [], []
    for unit, r, _ in done:
        key = ModelKey(unit.split.fold, unit.seed)
        log.info(
            "%s: macro-F1 %.4f (epoch %d of %d, %.2f s)",
            units.unit_name(job, unit),
            r.metrics["macro_f1"],
            r.metrics["selected_epoch"],
            r.metrics["epochs_run"],
            r.train_seconds,
        )
        history += r.history
        predictions.append(r.predictions)
        write_bytes(folder.checkpoint(key), r.checkpoint)
        if r.curiosity is not None:
            save_json(folder.curiosity(key), r.curiosity)
    pd.DataFrame(history).to_csv(folder.history, index=False)
    pd.concat(predictions).to_csv(folder.predictions, index=False)
    run = RunId(job.dataset, job.protocol, job.variant)
    rows = [r.metrics for _, r, _ in done]
    write_metrics(folder.root, run, to_dict(job.variant_cfg), job.data.class_names, rows)

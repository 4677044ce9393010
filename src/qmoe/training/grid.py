"""One train stage instance: every (fold, seed) model of one variant under one protocol.

`stages/train.py` (single models) and `stages/train_moe.py` (MoEs) parse their arguments and
params and call `train_variant`, which writes the run folder (docs/architecture.md section 3).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from qmoe.energy import EnergyMeter
from qmoe.executor import ExecutionConfig, measures_all_work, run_units
from qmoe.io import ConfigError, atomic_dir, atomic_path, load_json, save_json, write_bytes
from qmoe.models import ModelConfig
from qmoe.training import experiment, units
from qmoe.training.fit import MoETrainConfig, TrainConfig
from qmoe.training.layout import ModelKey, RunFolder
from qmoe.training.protocols import make_protocol
from qmoe.variants import VariantConfig, to_dict

log = logging.getLogger("qmoe.training")


class RunSpec(NamedTuple):
    """What one train stage instance trains (names as in dvc.yaml's matrix)."""

    dataset: str
    protocol: str
    variant: str


def train_variant(
    spec: RunSpec,
    variant: VariantConfig,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    moe_cfg: MoETrainConfig | None,
    features: Path,
    out: Path,
    cost: Path,
    country_iso_code: str,
    execution: ExecutionConfig,
) -> None:
    """Train `variant` on every fold and seed of `spec.protocol` (one executor unit per model);
    write the run folder `out` (deterministic: the same bytes on every run) and the cost file
    `cost` (measured: wall time and energy per model) atomically, once every unit has succeeded."""
    # the tracker probes the hardware (~1.4 s) while the features are read and split
    with EnergyMeter(country_iso_code=country_iso_code).start_soon() as meter:
        job = _job(spec, variant, model_cfg, cfg, moe_cfg, features)
        _train_grid(job, meter, RunOutputs(out, cost), execution)


def _job(
    spec: RunSpec,
    variant: VariantConfig,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    moe_cfg: MoETrainConfig | None,
    features: Path,
) -> units.TrainJob:
    """The protocol's view of the feature table, with everything every unit shares."""
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
    return units.TrainJob(
        spec.dataset, spec.protocol, spec.variant, data, variant, model_cfg, cfg, moe_cfg, protocol
    )


class RunOutputs(NamedTuple):
    folder: Path  # data/runs/<dataset>/<protocol>/<variant>: DVC hashes it, so no measurement
    cost: Path  # data/train_cost/<dataset>/<protocol>/<variant>.json: time and energy per model


def _train_grid(
    job: units.TrainJob, meter: EnergyMeter, out: RunOutputs, execution: ExecutionConfig
) -> None:
    """Run every unit of `job`, then write both outputs in a fixed order (atomically)."""
    grid = units.units_for(job)
    with meter.measure(f"train {job.dataset}/{job.protocol}/{job.variant}") as energy:
        outputs = run_units(
            units.train_unit, job, grid, execution, name=lambda u: units.unit_name(job, u)
        )
    shares = units.apportion_energy(
        energy.energy_kwh, energy.emissions_kg, [o.cpu_seconds for o in outputs]
    )
    method = "; ".join(
        [energy.method, units.APPORTIONED]
        + ([] if measures_all_work(execution) else [units.OTHER_NODES])
    )
    history, predictions, costs = [], [], []
    with atomic_dir(out.folder) as tmp, atomic_path(out.cost) as cost_tmp:
        folder = RunFolder(tmp)
        for unit, r, share in zip(grid, outputs, shares, strict=True):  # fixed order
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
                "runs": [o.metrics for o in outputs],
            },
        )
        save_json(cost_tmp, {**header, "energy_method": method, "runs": costs})

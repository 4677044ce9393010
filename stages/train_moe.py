"""Train one MoE variant over the study's expert pool on every fold (and seed) of one protocol.
DVC stage: train_moe (params `train` for the protocol, `train_moe` for the MoE recipe)."""

from __future__ import annotations

import argparse
from pathlib import Path

from qmoe.cli import read_params, run_stage
from qmoe.executor import ExecutionConfig, warm_pool
from qmoe.io import ConfigError, from_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--protocol", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument(
        "--experts",
        nargs="+",
        required=True,
        help="the expert slots whose params dvc.yaml tracks (must equal study.experts)",
    )
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="the run folder (deterministic)")
    ap.add_argument("--cost", type=Path, required=True, help="time and energy per model (JSON)")
    args = ap.parse_args()

    params = read_params()
    pool = list((params.get("study") or {}).get("experts") or [])
    if pool != args.experts:
        raise ConfigError(
            f"study.experts is {pool} but dvc.yaml's train_moe stage tracks the "
            f"params of {args.experts}: give train_moe one expert slot per entry of "
            "study.experts (its --experts argument and its params list)"
        )
    execution = from_section(ExecutionConfig, params.get("execution"), "execution")
    # torch.optim imports torch._dynamo at a worker's first optimizer (1.4 s): the server does
    warm_pool(execution, ["qmoe.training.units", "torch._dynamo"])
    # torch and the training code after the pool's server has started importing them (see train)
    from qmoe.energy import EnergyConfig
    from qmoe.models import ModelConfig
    from qmoe.training.fit import MoETrainConfig, TrainConfig
    from qmoe.training.grid import RunSpec, train_variant
    from qmoe.variants import MoEConfig, resolve

    cfg = from_section(TrainConfig, params.get("train"), "train")
    variant = resolve(args.variant, params.get("variants"), experts=pool)
    if not isinstance(variant, MoEConfig):
        raise ConfigError(
            f"variants.{args.variant} is not an MoE: list it in study.variants "
            "(stage train), not study.moe_variants"
        )
    train_variant(
        RunSpec(args.dataset, args.protocol, args.variant),
        variant,
        from_section(ModelConfig, params.get("model"), "model"),
        cfg,
        from_section(MoETrainConfig, params.get("train_moe"), "train_moe"),
        args.features,
        args.out,
        args.cost,
        from_section(EnergyConfig, params.get("energy"), "energy").country_iso_code,
        execution,
    )


if __name__ == "__main__":
    run_stage(main)

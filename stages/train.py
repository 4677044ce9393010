"""Train one single-model variant on every fold (and seed) of one protocol. DVC stage: train."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from qmoe.cli import read_params, run_stage
from qmoe.energy import EnergyConfig
from qmoe.executor import ExecutionConfig
from qmoe.io import ConfigError, from_section
from qmoe.models import ModelConfig
from qmoe.training.fit import TrainConfig
from qmoe.training.grid import RunSpec, train_variant
from qmoe.variants import MoEConfig, resolve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--protocol", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    params = read_params()
    cfg = from_section(TrainConfig, params.get("train"), "train")
    torch.set_num_threads(cfg.threads)
    variant = resolve(args.variant, params.get("variants"), experts=())
    if isinstance(variant, MoEConfig):
        raise ConfigError(
            f"variants.{args.variant} is an MoE: list it in study.moe_variants "
            "(stage train_moe), not study.variants"
        )
    train_variant(
        RunSpec(args.dataset, args.protocol, args.variant),
        variant,
        from_section(ModelConfig, params.get("model"), "model"),
        cfg,
        None,
        args.features,
        args.out,
        from_section(EnergyConfig, params.get("energy"), "energy").country_iso_code,
        from_section(ExecutionConfig, params.get("execution"), "execution"),
    )


if __name__ == "__main__":
    run_stage(main)

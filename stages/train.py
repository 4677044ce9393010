"""Train every variant of the study (single models and MoEs) on every fold (and seed) of one
protocol; variants whose inputs are unchanged keep their models (qmoe.training.reuse).
DVC stage: train (params `train`; `train.moe` is the MoE recipe)."""

from __future__ import annotations

import argparse
from pathlib import Path

from qmoe.cli import forced_by_dvc, read_params, run_stage
from qmoe.contract.runs import TrainOutputs, write_protocol
from qmoe.contract.study import Study
from qmoe.executor import ExecutionConfig, warm_pool
from qmoe.io import from_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--protocol", required=True)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="run folders, one per variant")
    ap.add_argument("--cost", type=Path, required=True, help="time, energy, inputs per variant")
    ap.add_argument("--lock", type=Path, required=True, help="the pinned libraries (an input)")
    args = ap.parse_args()

    params = read_params()
    study = from_section(Study, params.get("study"), "study")  # before anything is deleted
    variants = study.configs(params.get("variants"))
    execution = from_section(ExecutionConfig, params.get("execution"), "execution")
    # torch.optim imports torch._dynamo at a worker's first optimizer (1.4 s): the server does
    warm_pool(execution, ["qmoe.training.units", "torch._dynamo"])
    # torch and the training code after the pool's server has started importing them: both
    # imports run at once (stage overhead, issue 15)
    from qmoe.energy import EnergyConfig
    from qmoe.models import ModelConfig
    from qmoe.training.fit import TrainConfig
    from qmoe.training.grid import train_protocol
    from qmoe.training.reuse import Inputs

    train_protocol(
        study.runs(args.dataset, args.protocol),
        variants,
        from_section(ModelConfig, params.get("model"), "model"),
        from_section(TrainConfig, params.get("train"), "train"),
        Inputs(args.features, Path(__file__), args.lock),
        TrainOutputs(args.out, args.cost),
        from_section(EnergyConfig, params.get("energy"), "energy").country_iso_code,
        execution,
        force=forced_by_dvc(),  # dvc repro -f: every variant is trained, none kept
    )
    _save_protocol(TrainOutputs(args.out, args.cost), args.dataset, args.protocol, params)


def _save_protocol(outputs: TrainOutputs, dataset: str, protocol: str, params: dict) -> None:
    """What the protocol does, in its own words: the report's text (it imports no training code)."""
    from qmoe.training.fit import TrainConfig
    from qmoe.training.protocols import make_protocol

    cfg = from_section(TrainConfig, params.get("train"), "train")
    write_protocol(outputs, dataset, protocol, make_protocol(protocol, cfg).describe())


if __name__ == "__main__":
    run_stage(main)

"""What one benchmark times: every variant's chosen models under every runtime, inputs prepared.

A `Target` is one (variant, model, runtime); its calls are zero-argument callables, each one
inference on a pre-built input batch (the model's own test fold, cycled), so the timer sees the
runtime's call and nothing else.

Runtimes (params `benchmark.runtimes`):
- `onnxruntime`: the artefact of the export stage (the deployment), CPU provider, 1 thread.
- `torch`: the checkpoint as `load_trained` deploys it (eager; under `faithful` the fake-quantised
  training modules, what the reference timed).
- `torch_bf16`: `half` variants only: the FP32-trained weights in bfloat16 (torch computes bf16
  on CPUs with AVX512-BF16/AMX; ONNX Runtime's CPU provider does not).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from qmoe import models
from qmoe.deploy import runtime as ort_runtime
from qmoe.io import ConfigError, InputError, load_checkpoint
from qmoe.training.artefacts import LoadedModel, load_trained, rebuild
from qmoe.training.layout import CheckpointMeta, ModelKey
from qmoe.variants import HalfConfig

RUNTIMES = ("onnxruntime", "torch", "torch_bf16")
Call = Callable[[], object]


class Target(NamedTuple):
    variant: str
    key: ModelKey
    runtime: str

    def label(self) -> str:
        return f"{self.variant}/{self.key.stem}/{self.runtime}"


class Model(NamedTuple):
    """One chosen model of a variant, loaded for every runtime."""

    variant: str
    key: ModelKey
    loaded: LoadedModel  # torch form (as the train stage deploys it)
    x: np.ndarray  # (n_test, d) raw test embeddings
    artefact: Path  # the export stage's .onnx
    checkpoint: Path  # the train stage's .pt


def check_runtimes(runtimes: tuple[str, ...]) -> None:
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise ConfigError(
            f"benchmark.runtimes: {unknown or '[]'} not supported; use one or more "
            f"of {list(RUNTIMES)}"
        )


def choose(keys: list[ModelKey], per_fold: int) -> list[ModelKey]:
    """The first `per_fold` seeds (ascending) of every fold: latency does not depend on the seed."""
    out = []
    for fold in sorted({k.fold for k in keys}):
        out += sorted((k for k in keys if k.fold == fold), key=lambda k: k.seed)[:per_fold]
    return out


def load(variant: str, key: ModelKey, runs: Path, deployed: Path, table: pd.DataFrame) -> Model:
    """The torch model runs/<variant>/<stem>.pt and its artefact deployed/<variant>/<stem>.onnx."""
    artefact = deployed / variant / f"{key.stem}.onnx"
    if not artefact.is_file():
        raise InputError(
            f"{artefact}: no ONNX artefact for {variant} {key.stem} (run the export stage)"
        )
    checkpoint = runs / variant / f"{key.stem}.pt"
    loaded = load_trained(checkpoint)
    row_of = {cid: i for i, cid in enumerate(table["clip_id"].astype(str))}
    ids = [str(c) for c in loaded.meta.test_clip_ids]
    if not ids or any(c not in row_of for c in ids):
        raise InputError(f"{checkpoint}: test clips absent from the feature table")
    emb = table[[c for c in table.columns if c.startswith("emb_")]].to_numpy(dtype=np.float32)
    return Model(variant, key, loaded, emb[[row_of[c] for c in ids]], artefact, checkpoint)


def batches(x: np.ndarray, batch: int) -> list[np.ndarray]:
    """Contiguous input batches cycling through the rows of x (n, d)."""
    n = len(x)
    return [np.ascontiguousarray(x[(i + np.arange(batch)) % n]) for i in range(0, n, batch)]


def applies(model: Model, runtime: str) -> bool:
    """torch_bf16 times `half` variants only."""
    return runtime != "torch_bf16" or isinstance(model.loaded.variant, HalfConfig)


def engine(model: Model, runtime: str, threads: int) -> object:
    """What runs the model: an ONNX Runtime session, or the torch module (eval mode)."""
    if runtime == "onnxruntime":
        return ort_runtime.session(model.artefact, threads)
    return model.loaded.model if runtime == "torch" else _bf16(model.checkpoint)


def calls(runner: object, runtime: str, x: np.ndarray, batch: int) -> list[Call]:
    """One prepared call per input batch of x (n, d) (the model's test fold, cycled)."""
    inputs = batches(x, batch)
    if runtime == "onnxruntime":
        return [functools.partial(runner.run, None, {"x": b}) for b in inputs]
    return [functools.partial(runner, torch.from_numpy(b)) for b in inputs]


def _bf16(checkpoint: Path) -> nn.Module:
    """The FP32-trained weights of a `half` checkpoint deployed in bfloat16 (not via float16)."""
    ckpt = load_checkpoint(checkpoint)
    model, _ = rebuild(CheckpointMeta.from_dict(ckpt.meta, checkpoint))
    model.load_state_dict(ckpt.state_dict)
    return models.deploy(model, HalfConfig(dtype="bfloat16"))

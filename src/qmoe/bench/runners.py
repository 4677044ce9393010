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

An MoE under ONNX Runtime is also timed in its parts (qmoe.contract.benchmarks.Form): the router
graph alone, the chosen expert's artefact alone, and both called by the host (the export stage
writes and checks them, qmoe.deploy.dispatch), so its overhead splits into router, dispatch and
expert.
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
from qmoe.contract.benchmarks import Form
from qmoe.contract.checkpoint import CheckpointMeta, load_checkpoint
from qmoe.contract.deployed import DeployedFolder
from qmoe.contract.runs import ModelKey, RunFolder
from qmoe.deploy import runtime as ort_runtime
from qmoe.io import ConfigError, InputError
from qmoe.training.artefacts import LoadedModel, load_trained, rebuild
from qmoe.variants import HalfConfig, MoEConfig

RUNTIMES = ("onnxruntime", "torch", "torch_bf16")
Call = Callable[[], object]


class Target(NamedTuple):
    variant: str
    key: ModelKey
    runtime: str
    form: Form = Form.WHOLE

    def label(self) -> str:
        return f"{self.variant}/{self.key.stem}/{self.runtime}/{self.form.value}"


class Parts(NamedTuple):
    """An MoE artefact's parts for host dispatch (the export stage's <stem>.<part>.onnx)."""

    router: Path
    experts: tuple[Path, ...]


class Model(NamedTuple):
    """One chosen model of a variant, loaded for every runtime."""

    variant: str
    key: ModelKey
    loaded: LoadedModel  # torch form (as the train stage deploys it)
    x: np.ndarray  # (n_test, d) raw test embeddings
    artefact: Path  # the export stage's .onnx
    checkpoint: Path  # the train stage's .pt
    parts: Parts | None = None  # MoE: router and expert artefacts


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
    artefact = DeployedFolder(deployed).artefact(variant, key)
    if not artefact.is_file():
        raise InputError(
            f"{artefact}: no ONNX artefact for {variant} {key.stem} (run the export stage)"
        )
    checkpoint = RunFolder(runs / variant).checkpoint(key)
    loaded = load_trained(checkpoint)
    row_of = {cid: i for i, cid in enumerate(table["clip_id"].astype(str))}
    ids = [str(c) for c in loaded.meta.test_clip_ids]
    if not ids or any(c not in row_of for c in ids):
        raise InputError(f"{checkpoint}: test clips absent from the feature table")
    emb = table[[c for c in table.columns if c.startswith("emb_")]].to_numpy(dtype=np.float32)
    x = emb[[row_of[c] for c in ids]]
    return Model(variant, key, loaded, x, artefact, checkpoint, _parts(loaded, artefact))


def _parts(loaded: LoadedModel, artefact: Path) -> Parts | None:
    if not isinstance(loaded.variant, MoEConfig):
        return None

    def name(part: str) -> Path:
        return artefact.with_name(ort_runtime.part_file(artefact.stem, part))

    experts = [name(ort_runtime.expert_part(i)) for i in range(len(loaded.variant.experts))]
    found = Parts(name(ort_runtime.ROUTER), tuple(experts))
    missing = [p.name for p in (found.router, *found.experts) if not p.is_file()]
    if missing:
        raise InputError(f"{artefact.parent}: no MoE parts {missing} (rerun the export stage)")
    return found


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


def forms(model: Model, runtime: str, threads: int, sizes: list[int]) -> dict[Form, dict]:
    """One fresh copy of every form's prepared calls, by form then batch size: `whole` at every
    size in `sizes`; an MoE's parts (ONNX Runtime) at batch 1, each call on one test clip."""
    whole = engine(model, runtime, threads)
    out = {Form.WHOLE: {b: calls(whole, runtime, model.x, b) for b in sizes}}
    if runtime != "onnxruntime" or model.parts is None:
        return out
    router = ort_runtime.session(model.parts.router, threads)
    experts = [ort_runtime.session(p, threads) for p in model.parts.experts]
    host = ort_runtime.HostDispatch(router, experts)
    rows = batches(model.x, 1)
    chosen = [int(router.run(["index"], {"x": r})[0][0, 0]) for r in rows]  # the routing, once
    out[Form.ROUTER] = {1: calls(router, runtime, model.x, 1)}
    out[Form.EXPERT] = {
        1: [functools.partial(experts[e].run, None, {"x": r}) for e, r in zip(chosen, rows)]
    }
    out[Form.HOST_DISPATCH] = {1: [functools.partial(host, r) for r in rows]}
    return out


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

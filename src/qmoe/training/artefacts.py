"""A trained classifier as deployed: z-score normaliser + network, rebuilt from a checkpoint alone.

The checkpoint's `meta` (qmoe.contract.checkpoint.CheckpointMeta) carries everything needed (variant
configs, MLP shape), as nanoGPT's checkpoints carry `model_args`, so `benchmark` never reads
params.yaml to rebuild a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from qmoe import models
from qmoe.contract.checkpoint import CheckpointMeta, load_checkpoint
from qmoe.io import InputError
from qmoe.training.protocols import protocol_class


class Standardized(nn.Module):
    """x (b, d) -> net((x - mean) / std); mean and std fitted on the training part only."""

    def __init__(self, net: nn.Module, mean: Tensor, std: Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("norm_mean", mean.detach().clone().float())
        self.register_buffer("norm_std", std.detach().clone().float())

    def forward(self, x: Tensor):
        return self.net((x - self.norm_mean) / self.norm_std)


class ZScore(NamedTuple):
    mean: Tensor  # (d,)
    std: Tensor  # (d,), constant features get 1 so they map to 0 instead of NaN


def fit_zscore(x: Tensor) -> ZScore:
    """Per-feature mean and (population) std of (n, d) training inputs."""
    std = x.std(dim=0, unbiased=False)
    return ZScore(x.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)))


class LoadedModel(NamedTuple):
    model: nn.Module  # deployed, eval mode: raw embeddings (b, d) -> logits or MoEOutput
    meta: CheckpointMeta
    variant: object  # the variant's config dataclass (= meta.variant_config)


class Rebuilt(NamedTuple):
    model: Standardized
    variant: object


def rebuild(meta: CheckpointMeta) -> Rebuilt:
    """Untrained Standardized(network) with the architecture described by a checkpoint's meta."""
    cfg = meta.variant_config
    mlp = models.MLPConfig(meta.in_dim, meta.num_classes, meta.hidden_sizes, meta.dropout)
    net = models.build(cfg, mlp)
    d = meta.in_dim
    return Rebuilt(Standardized(net, torch.zeros(d), torch.ones(d)), cfg)


def _check_shapes(meta: CheckpointMeta, state: dict, path: Path | str) -> None:
    """Refuse a meta whose shape disagrees with the weights before building anything from it
    (a checkpoint claiming in_dim 1e9 would otherwise allocate a network of that width)."""
    norm = state.get("norm_mean")
    in_dim, classes = meta.in_dim, meta.num_classes
    if not isinstance(in_dim, int) or norm is None or tuple(norm.shape) != (in_dim,):
        raise InputError(
            f"checkpoint {path}: meta in_dim {in_dim!r} does not match its "
            f"norm_mean of shape {None if norm is None else tuple(norm.shape)}"
        )
    if not isinstance(classes, int) or not 2 <= classes <= 100_000:
        raise InputError(f"checkpoint {path}: meta num_classes {classes!r} is not a class count")


def load_trained(path: Path | str, frozen: bool | None = None) -> LoadedModel:
    """Load fold{k}_seed{s}.pt and return the model as deployed (e.g. int8 for ptq_int8).

    `frozen`: quantised layers hold their quantised weights instead of re-quantising them on every
    call (identical outputs). Default: frozen under `corrected` (what a deployment stores), not
    under `faithful` (the reference timed its fake-quantised training modules).
    """
    ckpt = load_checkpoint(path)
    meta = CheckpointMeta.from_dict(ckpt.meta, path)
    _check_shapes(meta, ckpt.state_dict, path)
    model, cfg = rebuild(meta)
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as e:
        raise InputError(f"checkpoint {path} does not match its variant {meta.variant}: {e}") from e
    if frozen is None:
        frozen = protocol_class(meta.protocol).frozen_deploy
    return LoadedModel(models.deploy(model, cfg, freeze_quantized=frozen), meta, cfg)

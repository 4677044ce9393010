"""Classifier MLPs and the builder registry: a resolved variant config -> its network (layer 3).

    cfg = qmoe.variants.resolve("w4a8", params["variants"], params["study"]["experts"])
    net = build(cfg, mlp_config(model_cfg, in_dim=1536, num_classes=50))
    deployed = deploy(net, cfg)                              # as evaluated and benchmarked

Single models map (b, d) -> logits (b, c); the MoE returns qmoe.moe.layer.MoEOutput.
Architectures: reference-method.md 6.1 (FP32 MLP), 7.1-7.4 (quantised expert MLP), 8 (MoE).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from qmoe.io import ConfigError, require
from qmoe.moe import curiosity
from qmoe.moe.layer import MoE
from qmoe.moe.router import BALANCE_LOSSES, Router
from qmoe.quant import ptq
from qmoe.quant.layers import (
    BitLinear,
    BitNet158Linear,
    PreNormLinear,
    TernaryReferenceLinear,
    freeze_,
)
from qmoe.variants import (
    BitLinearConfig,
    BitNet158Config,
    CuriosityConfig,
    EntropyCuriosity,
    FP32Config,
    HalfConfig,
    KLCuriosity,
    LogCuriosity,
    MoEConfig,
    NoCuriosity,
    PTQInt8Config,
    Q16ReferenceConfig,
    RandomCuriosity,
    RouteCuriosity,
    TernaryReferenceConfig,
    VariantConfig,
    facts,
)

LinearFactory = Callable[[int, int], nn.Linear]


@dataclass(frozen=True)
class ModelConfig:
    """params.yaml `model`: the hidden widths and dropout of every classifier and MoE expert."""

    hidden_sizes: tuple[int, ...]
    dropout: float


@dataclass(frozen=True)
class MLPConfig:
    """Shape of every classifier (and MoE expert): in_dim -> hidden_sizes -> num_classes."""

    in_dim: int
    num_classes: int
    hidden_sizes: tuple[int, ...]
    dropout: float

    def __post_init__(self) -> None:
        require(self.in_dim >= 1, "model.in_dim", f"{self.in_dim} < 1")
        require(self.num_classes >= 2, "model.num_classes", f"{self.num_classes} < 2")
        require(
            len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1,
            "model.hidden_sizes",
            f"{list(self.hidden_sizes)}: need >= 1 positive width",
        )
        require(0.0 <= self.dropout < 1.0, "model.dropout", f"{self.dropout} not in [0, 1)")


class MLP(nn.Module):
    """For each hidden width h: hidden_linear(prev, h) -> LayerNorm(h) -> ReLU -> Dropout(p); then a
    plain nn.Linear head (FP32 in every variant, 7.1). hidden_linear = nn.Linear gives the FP32
    reference (6.1, PyTorch default init); a pre-LN quantised layer gives the expert MLP (7.1)."""

    def __init__(self, cfg: MLPConfig, hidden_linear: LinearFactory = nn.Linear):
        super().__init__()
        layers: list[nn.Module] = []
        prev = cfg.in_dim
        for h in cfg.hidden_sizes:
            layers += [hidden_linear(prev, h), nn.LayerNorm(h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            prev = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(prev, cfg.num_classes)
        self.compute_dtype = torch.float32  # deploy() sets float16/bfloat16 for `half`
        self.deploy_as: Any = None  # config of the post-training transform, if any

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b, d) -> logits (b, c) float32 (computed in `compute_dtype`)."""
        return self.head(self.body(x.to(self.compute_dtype))).float()


# --- registry: config class -> builder -----------------------------------------------------------


def mlp_config(model: ModelConfig, in_dim: int, num_classes: int) -> MLPConfig:
    """The classifier shape for data of `in_dim` features and `num_classes` classes."""
    return MLPConfig(in_dim, num_classes, tuple(model.hidden_sizes), model.dropout)


Builder = Callable[[Any, MLPConfig], nn.Module]
_BUILDERS: dict[type, Builder] = {}


def register(config_type: type) -> Callable[[Builder], Builder]:
    def decorator(fn: Builder) -> Builder:
        _BUILDERS[config_type] = fn
        return fn

    return decorator


def build(cfg: VariantConfig, mlp: MLPConfig) -> nn.Module:
    """Untrained network of variant `cfg` (an MoE's config holds its experts' configs)."""
    if type(cfg) not in _BUILDERS:
        raise ConfigError(f"no builder for {type(cfg).__name__}")
    return _BUILDERS[type(cfg)](cfg, mlp)


@register(FP32Config)
def _fp32(cfg: FP32Config, mlp: MLPConfig) -> nn.Module:
    return MLP(mlp)


@register(PTQInt8Config)
@register(HalfConfig)
def _post_training(cfg: PTQInt8Config | HalfConfig, mlp: MLPConfig) -> nn.Module:
    model = MLP(mlp)  # trained as the FP32 reference; deploy() converts it
    model.deploy_as = cfg
    return model


@register(Q16ReferenceConfig)
def _q16(cfg: Q16ReferenceConfig, mlp: MLPConfig) -> nn.Module:
    return MLP(mlp, PreNormLinear)


@register(BitLinearConfig)
def _bitlinear(cfg: BitLinearConfig, mlp: MLPConfig) -> nn.Module:
    return MLP(mlp, functools.partial(BitLinear, weight_bits=cfg.weight_bits))


@register(TernaryReferenceConfig)
def _ternary(cfg: TernaryReferenceConfig, mlp: MLPConfig) -> nn.Module:
    return MLP(
        mlp,
        functools.partial(
            TernaryReferenceLinear,
            act_threshold=cfg.act_threshold,
            weight_threshold=cfg.weight_threshold,
        ),
    )


@register(BitNet158Config)
def _bitnet158(cfg: BitNet158Config, mlp: MLPConfig) -> nn.Module:
    return MLP(mlp, BitNet158Linear)


@register(MoEConfig)
def _moe(cfg: MoEConfig, mlp: MLPConfig) -> nn.Module:
    bits = [facts(e.config).precision_bits for e in cfg.experts]
    cur = _curiosity(cfg.curiosity, target=bits.index(max(bits)))
    router = Router(
        mlp.in_dim, cfg.router_outputs, mlp.dropout, mc_dropout=cur.strategy is not None
    )
    return MoE(
        [build(e.config, mlp) for e in cfg.experts],
        router,
        cfg.top_k,
        BALANCE_LOSSES[cfg.balance],
        cfg.balance_alpha,
        cur.strategy,
        cur.mc_samples,
        cur.score,
        cur.draw_seed,
    )


class Curiosity(NamedTuple):
    """What an MoE's curiosity config sets up in qmoe.moe.layer.MoE."""

    strategy: nn.Module | None  # None: no MC passes at all
    mc_samples: int  # MC-dropout passes per call (0: none)
    score: str  # the uncertainty u(x) (qmoe.moe.router.UNCERTAINTY)
    draw_seed: int | None  # the placebo's per-sample draw; None: no draw


# curiosity config class -> (its config, the index of the most precise expert) -> Curiosity
CURIOSITY_SETUP: dict[type, Callable[[Any, int], Curiosity]] = {
    NoCuriosity: lambda c, target: Curiosity(None, 0, "variance", None),
    LogCuriosity: lambda c, target: Curiosity(curiosity.LogOnly(), c.mc_samples, "variance", None),
    KLCuriosity: lambda c, target: Curiosity(
        curiosity.KLRescale(c.alpha), c.mc_samples, "variance", None
    ),
    EntropyCuriosity: lambda c, target: Curiosity(
        curiosity.EntropyRescale(c.alpha), c.mc_samples, "variance", None
    ),
    RouteCuriosity: lambda c, target: Curiosity(
        curiosity.Escalate(target, c.quantile), c.mc_samples, c.score, None
    ),
    RandomCuriosity: lambda c, target: Curiosity(
        curiosity.RandomEscalate(target, c.quantile), 0, "variance", c.seed
    ),
}


def _curiosity(cfg: CuriosityConfig, target: int) -> Curiosity:
    """The MoE's curiosity set-up from its config (`target`: the expert `route` escalates to)."""
    return CURIOSITY_SETUP[type(cfg)](cfg, target)


# --- deployment ----------------------------------------------------------------------------------


def _deploy_module(module: nn.Module, cfg: Any) -> nn.Module:
    if isinstance(cfg, PTQInt8Config):
        module = ptq.dynamic_int8(module, cfg.engine)
    elif isinstance(cfg, HalfConfig):
        module = ptq.to_half(module, ptq.HALF_DTYPES[cfg.dtype])
        module.compute_dtype = ptq.HALF_DTYPES[cfg.dtype]
    else:
        raise TypeError(f"no post-training transform for {type(cfg).__name__}")
    module.deploy_as = None
    return module


def deploy(model: nn.Module, cfg: VariantConfig, freeze_quantized: bool = False) -> nn.Module:
    """The as-deployed form, in eval mode: `ptq_int8` -> dynamic int8, `half` -> half precision
    (input cast inside the MLP), MoE experts of those kinds likewise; identity for the rest, unless
    `freeze_quantized`: then quantised layers store their quantised weight once instead of
    re-quantising it on every call (outputs identical bit for bit; see qmoe.quant.layers.freeze_).

    Works on `model` wrapped in other modules (the marked MLPs are found and replaced where they
    sit). May modify `model` in place: pass a copy to keep the trained one.
    """
    marked = [
        (name, m) for name, m in model.named_modules() if getattr(m, "deploy_as", None) is not None
    ]
    single = isinstance(cfg, (PTQInt8Config, HalfConfig))
    if single and not marked:
        raise ValueError(f"deploy: the model has no module built for {cfg} (already deployed?)")
    for name, module in marked:
        # a single model follows `cfg`; MoE experts follow the config they were built from
        new = _deploy_module(module, cfg if single else module.deploy_as)
        if not name:
            model = new
        else:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, new)
    if freeze_quantized:
        model = freeze_(model)
    return model.eval()

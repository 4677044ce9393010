"""Classifier MLPs, one frozen config class per variant kind, and the registry (layer 3 of 3).

    cfg = variant_from_params("w4a8", params["variants"])   # params `kind` selects the class
    net = build(cfg, MLPConfig(in_dim=1536, num_classes=50), params["variants"])
    deployed = deploy(net, cfg)                              # as evaluated and benchmarked

Single models map (b, d) -> logits (b, c); the MoE returns qmoe.moe.layer.MoEOutput.
Architectures: reference-method.md 6.1 (FP32 MLP), 7.1-7.4 (quantised expert MLP), 8 (MoE).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from qmoe.io import ConfigError, from_section, require
from qmoe.moe.curiosity import make_strategy
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

LinearFactory = Callable[[int, int], nn.Linear]


@dataclass(frozen=True)
class MLPConfig:
    """Shape of every classifier (and MoE expert): in_dim -> hidden_sizes -> num_classes."""

    in_dim: int
    num_classes: int
    hidden_sizes: tuple[int, ...] = (640, 320)
    dropout: float = 0.1953403862875243

    def __post_init__(self) -> None:
        require(self.in_dim >= 1, "model.in_dim", f"{self.in_dim} < 1")
        require(self.num_classes >= 2, "model.num_classes", f"{self.num_classes} < 2")
        require(len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1,
                "model.hidden_sizes", f"{list(self.hidden_sizes)}: need >= 1 positive width")
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
        self.compute_dtype = torch.float32     # deploy() sets float16/bfloat16 for `half`
        self.deploy_as: Any = None             # config of the post-training transform, if any

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b, d) -> logits (b, c) float32 (computed in `compute_dtype`)."""
        return self.head(self.body(x.to(self.compute_dtype))).float()


# --- variant configs: one class per `kind` -------------------------------------------------------


@dataclass(frozen=True)
class FP32Config:
    """`fp32`: the reference FP32 MLP (6.1)."""

    precision_bits: ClassVar[float] = 32


@dataclass(frozen=True)
class PTQInt8Config:
    """`ptq_int8`: FP32 training, then torch dynamic int8 of every nn.Linear (7.5), as deployed."""

    engine: Literal["auto", "x86", "fbgemm", "qnnpack"] = "auto"
    precision_bits: ClassVar[float] = 8


@dataclass(frozen=True)
class HalfConfig:
    """`half`: FP32 training; deployed with weights and activations in `dtype`."""

    dtype: Literal["float16", "bfloat16"] = "float16"
    precision_bits: ClassVar[float] = 16


@dataclass(frozen=True)
class BitLinearConfig:
    """`bitlinear`: reference k-bit BitLinear hidden layers (7.1), 8-bit activations, FP32 head."""

    weight_bits: int

    def __post_init__(self) -> None:
        if not 1 <= self.weight_bits <= 8:
            raise ValueError(f"weight_bits={self.weight_bits} not supported; use 1..8 "
                             "(the reference's 16 is kind q16_reference)")

    @property
    def precision_bits(self) -> float:
        return self.weight_bits


@dataclass(frozen=True)
class Q16ReferenceConfig:
    """`q16_reference`: the reference's "16-bit" = pre-LayerNorm + plain FP32 Linear (7.2)."""

    precision_bits: ClassVar[float] = 32


@dataclass(frozen=True)
class TernaryReferenceConfig:
    """`ternary_reference`: the reference's threshold-ternary layers (7.4)."""

    act_threshold: float = 0.05
    weight_threshold: float = 0.15
    precision_bits: ClassVar[float] = math.log2(3)

    def __post_init__(self) -> None:
        if self.act_threshold < 0 or self.weight_threshold < 0:
            raise ValueError("act_threshold and weight_threshold must be >= 0")


@dataclass(frozen=True)
class BitNet158Config:
    """`bitnet158`: BitNet b1.58 layers (absmean ternary weights, 8-bit activations)."""

    precision_bits: ClassVar[float] = math.log2(3)


@dataclass(frozen=True)
class MoEConfig:
    """`moe`: top-k MoE over the listed variants (8), with an optional curiosity mode (9)."""

    experts: tuple[str, ...]
    router_outputs: int
    top_k: int = 1
    curiosity: Literal["off", "log", "kl", "entropy", "route"] = "off"
    mc_samples: int = 10
    balance: Literal["reference", "switch", "none"] = "reference"
    balance_alpha: float = 1.0e-3
    kl_alpha: float = 0.02
    entropy_alpha: float = 0.1
    route_quantile: float = 0.9

    def __post_init__(self) -> None:
        n = len(self.experts)
        if n != self.router_outputs:
            raise ValueError(
                f"{n} experts listed {list(self.experts)} but router_outputs is "
                f"{self.router_outputs}: they must be equal. With more experts than router "
                "outputs the extra experts can never be selected (the reference README's "
                "7-experts/3-outputs configuration, reference-method.md 8.8)")
        if not 1 <= self.top_k <= n:
            raise ValueError(f"top_k={self.top_k} not in [1, {n}]")
        if self.mc_samples < 2:
            raise ValueError(f"mc_samples={self.mc_samples}: need >= 2 for a variance")
        if self.balance_alpha < 0:
            raise ValueError(f"balance_alpha={self.balance_alpha} must be >= 0")
        if not 0.0 < self.route_quantile < 1.0:
            raise ValueError(f"route_quantile={self.route_quantile} not in (0, 1)")


VariantConfig = (FP32Config | PTQInt8Config | HalfConfig | BitLinearConfig | Q16ReferenceConfig
                 | TernaryReferenceConfig | BitNet158Config | MoEConfig)

KINDS: dict[str, type] = {
    "fp32": FP32Config, "ptq_int8": PTQInt8Config, "half": HalfConfig,
    "bitlinear": BitLinearConfig, "q16_reference": Q16ReferenceConfig,
    "ternary_reference": TernaryReferenceConfig, "bitnet158": BitNet158Config, "moe": MoEConfig,
}


def _reject_yaml_booleans(cls: type, section: Mapping[str, Any], where: str) -> dict[str, Any]:
    """YAML 1.1 reads unquoted off/on/no/yes as booleans: a string field that allows "off" takes
    False as "off" (DVC's `exp run -S` rewrites params.yaml with a bare `off`); any other boolean
    in a string field is refused with the pitfall named. Returns the section to use."""
    hints = typing.get_type_hints(cls)
    out = dict(section)
    for key, value in section.items():
        tp = hints.get(key)
        options = typing.get_args(tp) if typing.get_origin(tp) is Literal else ()
        is_str = tp is str or (options and all(isinstance(a, str) for a in options))
        if is_str and value is False and "off" in options:
            out[key] = "off"
        elif is_str and isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: got the boolean {value}; YAML reads unquoted "
                              f"off/on/no/yes as booleans, write it quoted (e.g. \"off\")")
    return out


def variant_from_params(name: str, variants: Mapping[str, Any]) -> VariantConfig:
    """The config of variant `name` from params `variants` (its `kind` selects the class)."""
    if name not in variants:
        raise ConfigError(f"unknown variant {name!r}; valid: {sorted(variants)}")
    entry, where = variants[name], f"variants.{name}"
    if not isinstance(entry, Mapping) or "kind" not in entry:
        raise ConfigError(f"{where}: expected a mapping with a `kind`; "
                          f"valid kinds: {sorted(KINDS)}")
    kind = entry["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(f"{where}.kind: unknown kind {kind!r}; valid kinds: {sorted(KINDS)}")
    cls = KINDS[kind]
    section = {k: v for k, v in entry.items() if k != "kind"}
    cfg = from_section(cls, _reject_yaml_booleans(cls, section, where), where)
    if isinstance(cfg, MoEConfig):
        for expert in cfg.experts:
            if is_moe(variant_from_params(expert, variants)):
                raise ConfigError(f"{where}.experts: {expert!r} is itself an MoE; experts must be "
                                  "single models")
    return cfg


def is_moe(cfg: VariantConfig) -> bool:
    return isinstance(cfg, MoEConfig)


# --- registry: config class -> builder -----------------------------------------------------------

Builder = Callable[[Any, MLPConfig, Mapping[str, Any]], nn.Module]
_BUILDERS: dict[type, Builder] = {}


def register(config_type: type) -> Callable[[Builder], Builder]:
    def decorator(fn: Builder) -> Builder:
        _BUILDERS[config_type] = fn
        return fn
    return decorator


def build(cfg: VariantConfig, mlp: MLPConfig, variants: Mapping[str, Any]) -> nn.Module:
    """Untrained network of variant `cfg` (`variants` resolves an MoE's expert names)."""
    if type(cfg) not in _BUILDERS:
        raise ConfigError(f"no builder for {type(cfg).__name__}; known: {sorted(KINDS)}")
    return _BUILDERS[type(cfg)](cfg, mlp, variants)


@register(FP32Config)
def _fp32(cfg: FP32Config, mlp: MLPConfig, variants: Mapping) -> nn.Module:
    return MLP(mlp)


@register(PTQInt8Config)
@register(HalfConfig)
def _post_training(cfg: PTQInt8Config | HalfConfig, mlp: MLPConfig, variants: Mapping) -> nn.Module:
    model = MLP(mlp)              # trained as the FP32 reference; deploy() converts it
    model.deploy_as = cfg
    return model


@register(Q16ReferenceConfig)
def _q16(cfg: Q16ReferenceConfig, mlp: MLPConfig, variants: Mapping) -> nn.Module:
    return MLP(mlp, PreNormLinear)


@register(BitLinearConfig)
def _bitlinear(cfg: BitLinearConfig, mlp: MLPConfig, variants: Mapping) -> nn.Module:
    return MLP(mlp, functools.partial(BitLinear, weight_bits=cfg.weight_bits))


@register(TernaryReferenceConfig)
def _ternary(cfg: TernaryReferenceConfig, mlp: MLPConfig, variants: Mapping) -> nn.Module:
    return MLP(mlp, functools.partial(TernaryReferenceLinear, act_threshold=cfg.act_threshold,
                                      weight_threshold=cfg.weight_threshold))


@register(BitNet158Config)
def _bitnet158(cfg: BitNet158Config, mlp: MLPConfig, variants: Mapping) -> nn.Module:
    return MLP(mlp, BitNet158Linear)


@register(MoEConfig)
def _moe(cfg: MoEConfig, mlp: MLPConfig, variants: Mapping) -> nn.Module:
    expert_cfgs = [variant_from_params(name, variants) for name in cfg.experts]
    bits = [c.precision_bits for c in expert_cfgs]
    strategy = make_strategy(cfg.curiosity, kl_alpha=cfg.kl_alpha, entropy_alpha=cfg.entropy_alpha,
                             target=bits.index(max(bits)), quantile=cfg.route_quantile)
    router = Router(mlp.in_dim, cfg.router_outputs, mlp.dropout, mc_dropout=strategy is not None)
    return MoE([build(c, mlp, variants) for c in expert_cfgs], router, cfg.top_k,
               BALANCE_LOSSES[cfg.balance], cfg.balance_alpha, strategy, cfg.mc_samples)


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
    marked = [(name, m) for name, m in model.named_modules()
              if getattr(m, "deploy_as", None) is not None]
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


def config_dict(cfg: VariantConfig) -> dict[str, Any]:
    """Plain dict of a variant config (with its kind), for checkpoint metadata."""
    kind = next(k for k, c in KINDS.items() if isinstance(cfg, c))
    return {"kind": kind, **dataclasses.asdict(cfg)}

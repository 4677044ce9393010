"""Variant configs: one frozen class per `kind`, resolved once from params.yaml (`variants`).

    cfg = resolve("moe_curiosity_route", params["variants"], experts=params["study"]["experts"])
    facts(cfg).weight_bits            # what figures, tables and claims read (never the name)
    from_dict(to_dict(cfg)) == cfg    # checkpoints store the resolved config and rebuild from it

No dataclass here has a default, so a deleted params key fails instead of falling back. An MoE
holds its experts' configs (`study.experts`) and a tagged curiosity config (mode + its knobs).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple, get_args

from qmoe.bits import EXPORTABLE_BITS
from qmoe.io import ConfigError, from_section, require

NAN = float("nan")


@dataclass(frozen=True)
class FP32Config:
    """`fp32`: the reference FP32 MLP (6.1)."""

    kind: ClassVar[str] = "fp32"


@dataclass(frozen=True)
class PTQInt8Config:
    """`ptq_int8`: FP32 training, then torch dynamic int8 of every nn.Linear (7.5), as deployed."""

    engine: Literal["auto", "x86", "fbgemm", "qnnpack"]
    kind: ClassVar[str] = "ptq_int8"


@dataclass(frozen=True)
class HalfConfig:
    """`half`: FP32 training; deployed with weights and activations in `dtype`."""

    dtype: Literal["float16", "bfloat16"]
    kind: ClassVar[str] = "half"


@dataclass(frozen=True)
class BitLinearConfig:
    """`bitlinear`: reference k-bit BitLinear hidden layers (7.1), 8-bit activations, FP32 head;
    only exportable widths (a study that cannot be deployed fails at load)."""

    weight_bits: int
    kind: ClassVar[str] = "bitlinear"

    def __post_init__(self) -> None:
        require(
            self.weight_bits in EXPORTABLE_BITS,
            "weight_bits",
            f"{self.weight_bits} cannot be exported (no ONNX Runtime kernel); use one of "
            f"{list(EXPORTABLE_BITS)} (the reference's 16 is kind q16_reference)",
        )


@dataclass(frozen=True)
class Q16ReferenceConfig:
    """`q16_reference`: the reference's "16-bit" = pre-LayerNorm + plain FP32 Linear (7.2)."""

    kind: ClassVar[str] = "q16_reference"


@dataclass(frozen=True)
class TernaryReferenceConfig:
    """`ternary_reference`: the reference's threshold-ternary weights and activations (7.4)."""

    act_threshold: float
    weight_threshold: float
    kind: ClassVar[str] = "ternary_reference"

    def __post_init__(self) -> None:
        require(
            self.act_threshold >= 0 and self.weight_threshold >= 0,
            "act_threshold",
            "act_threshold and weight_threshold must be >= 0",
        )


@dataclass(frozen=True)
class BitNet158Config:
    """`bitnet158`: BitNet b1.58 layers (absmean ternary weights, 8-bit activations)."""

    kind: ClassVar[str] = "bitnet158"


SingleConfig = (
    FP32Config
    | PTQInt8Config
    | HalfConfig
    | BitLinearConfig
    | Q16ReferenceConfig
    | TernaryReferenceConfig
    | BitNet158Config
)


# --- curiosity: what the MoE does with the MC-dropout uncertainty u(x) (reference 9) -------------


@dataclass(frozen=True)
class NoCuriosity:
    """Plain router: no MC passes."""

    mode: ClassVar[str] = "none"


@dataclass(frozen=True)
class LogCuriosity:
    """u(x) from `mc_samples` passes, logged only (the paper's v1 code: routing unchanged)."""

    mc_samples: int
    mode: ClassVar[str] = "log"


@dataclass(frozen=True)
class KLCuriosity:
    """The rebuttal's KL rescaling with weight `alpha` (a no-op on routing)."""

    mc_samples: int
    alpha: float
    mode: ClassVar[str] = "kl"


@dataclass(frozen=True)
class EntropyCuriosity:
    """The rebuttal's entropy rescaling with weight `alpha` (a no-op on routing)."""

    mc_samples: int
    alpha: float
    mode: ClassVar[str] = "entropy"


@dataclass(frozen=True)
class RouteCuriosity:
    """Ours: samples whose uncertainty `score` over `mc_samples` banked MC passes (summed
    variance, entropy of the mean routing, or BALD) exceeds the calibrated `quantile` escalate to
    the most precise expert."""

    mc_samples: int
    quantile: float
    score: Literal["variance", "entropy", "bald"]
    mode: ClassVar[str] = "route"

    def __post_init__(self) -> None:
        require(0.0 < self.quantile < 1.0, "quantile", f"{self.quantile} not in (0, 1)")


@dataclass(frozen=True)
class RandomCuriosity:
    """The placebo of `route`: its escalation rule on a seeded hash of each input instead of an
    uncertainty (batch-independent), so about 1 - `quantile` of the samples escalate at random."""

    quantile: float
    seed: int
    mode: ClassVar[str] = "random"

    def __post_init__(self) -> None:
        require(0.0 < self.quantile < 1.0, "quantile", f"{self.quantile} not in (0, 1)")
        require(self.seed >= 0, "seed", f"{self.seed} < 0")


CuriosityConfig = (
    NoCuriosity | LogCuriosity | KLCuriosity | EntropyCuriosity | RouteCuriosity | RandomCuriosity
)
CURIOSITY: dict[str, type] = {c.mode: c for c in get_args(CuriosityConfig)}


class Expert(NamedTuple):
    name: str  # the variant name of the expert (a params `variants` key)
    config: SingleConfig


@dataclass(frozen=True)
class MoEConfig:
    """`moe`: top-k MoE over the study's expert pool (8), with a curiosity mode (9)."""

    experts: tuple[Expert, ...]
    top_k: int
    balance: Literal["reference", "switch", "none"]
    balance_alpha: float
    curiosity: CuriosityConfig
    kind: ClassVar[str] = "moe"

    def __post_init__(self) -> None:
        n = len(self.experts)
        require(n >= 1, "experts", "the MoE needs at least one expert")
        require(1 <= self.top_k <= n, "top_k", f"{self.top_k} not in [1, {n}]")
        require(self.balance_alpha >= 0, "balance_alpha", f"{self.balance_alpha} must be >= 0")
        mc = getattr(self.curiosity, "mc_samples", None)
        require(mc is None or mc >= 2, "curiosity.mc_samples", f"{mc}: need >= 2 for a variance")

    @property
    def router_outputs(self) -> int:
        """One per expert (reference-method.md 8.8: surplus experts would never be selected)."""
        return len(self.experts)


@dataclass(frozen=True)
class _MoEKnobs:
    """The scalar keys of an MoE entry, type-checked by from_section before MoEConfig is built."""

    top_k: int
    balance: Literal["reference", "switch", "none"]
    balance_alpha: float


VariantConfig = SingleConfig | MoEConfig
KINDS: dict[str, type] = {c.kind: c for c in get_args(VariantConfig)}


def _mapping(entry: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__} {entry!r}")
    return entry


def _tagged(entry: Any, where: str, tag: str, registry: Mapping[str, type]) -> Any:
    """Build the class that `entry[tag]` selects from the rest of `entry`."""
    entry = _mapping(entry, where)
    value = entry.get(tag)
    if isinstance(value, bool):
        raise ConfigError(
            f"{where}.{tag}: got the boolean {value}; YAML reads unquoted "
            f"off/on/no/yes as booleans; valid: {sorted(registry)}"
        )
    if not isinstance(value, str) or value not in registry:
        raise ConfigError(f"{where}.{tag}: unknown {tag} {value!r}; valid: {sorted(registry)}")
    try:
        return from_section(registry[value], {k: v for k, v in entry.items() if k != tag}, where)
    except ConfigError as e:  # range checks in __post_init__ name the field only: add the entry
        if str(e).startswith(where):
            raise
        raise ConfigError(f"{where}.{e}") from None


def resolve(name: str, variants: Mapping[str, Any], experts: Sequence[str]) -> VariantConfig:
    """The config of variant `name` from params `variants`; an MoE mixes the `experts` pool
    (params `study.experts`), each of which must be a single-model variant."""
    variants = _mapping(variants, "variants")
    if name not in variants:
        raise ConfigError(f"unknown variant {name!r}; valid: {sorted(variants)}")
    where = f"variants.{name}"
    entry = _mapping(variants[name], where)
    if entry.get("kind") != MoEConfig.kind:
        return _tagged(entry, where, "kind", {k: c for k, c in KINDS.items() if c is not MoEConfig})
    pool = []
    for expert in experts:
        if expert not in variants:
            raise ConfigError(
                f"study.experts: unknown variant {expert!r}; valid: {sorted(variants)}"
            )
        if _mapping(variants[expert], f"variants.{expert}").get("kind") == MoEConfig.kind:
            raise ConfigError(
                f"study.experts: {expert!r} is itself an MoE (variants.{expert}); "
                "experts must be single models"
            )
        pool.append(Expert(expert, resolve(expert, variants, ())))
    if "curiosity" not in entry:
        raise ConfigError(f"{where}: missing required key 'curiosity'")
    curiosity = _tagged(entry["curiosity"], f"{where}.curiosity", "mode", CURIOSITY)
    knobs = from_section(
        _MoEKnobs, {k: v for k, v in entry.items() if k not in ("kind", "curiosity")}, where
    )
    try:
        return MoEConfig(tuple(pool), curiosity=curiosity, **dataclasses.asdict(knobs))
    except ConfigError as e:
        raise ConfigError(f"{where}.{e}") from None


def to_dict(cfg: VariantConfig) -> dict[str, Any]:
    """Plain JSON-able dict (with `kind`, experts and curiosity mode) for checkpoints and tables."""
    out: dict[str, Any] = {"kind": cfg.kind}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "experts":
            value = [{"name": e.name, "config": to_dict(e.config)} for e in value]
        elif f.name == "curiosity":
            value = {"mode": value.mode, **dataclasses.asdict(value)}
        out[f.name] = value
    return out


def from_dict(data: Mapping[str, Any]) -> VariantConfig:
    """Inverse of `to_dict` (what a checkpoint's `variant_config` holds)."""
    data = _mapping(data, "variant_config")
    if data.get("kind") != MoEConfig.kind:
        return _tagged(data, "variant_config", "kind", KINDS)
    variants = {e["name"]: e["config"] for e in data["experts"]}
    entry = {k: v for k, v in data.items() if k != "experts"}
    return resolve("moe", {**variants, "moe": entry}, list(variants))


class VariantFacts(NamedTuple):
    """What figures, tables and claims need to know about a variant, from its config."""

    kind: str
    weight_bits: float  # nominal bits per hidden-layer weight (log2 3 for ternary; NaN for MoE)
    activation_bits: float  # bits of the hidden layers' inputs as deployed (NaN for MoE)
    precision_bits: float  # the lower of the two: the variant's position on a bit-width axis
    is_moe: bool
    curiosity: str  # curiosity mode of an MoE ("" for a single model)


_BITS: dict[type, tuple[float, float]] = {  # (weight bits, activation bits) as deployed
    FP32Config: (32, 32),
    PTQInt8Config: (8, 8),
    HalfConfig: (16, 16),
    Q16ReferenceConfig: (32, 32),
    TernaryReferenceConfig: (math.log2(3), math.log2(3)),
    BitNet158Config: (math.log2(3), 8),
}


def facts(cfg: VariantConfig) -> VariantFacts:
    if isinstance(cfg, MoEConfig):
        return VariantFacts(cfg.kind, NAN, NAN, NAN, True, cfg.curiosity.mode)
    w, a = (cfg.weight_bits, 8) if isinstance(cfg, BitLinearConfig) else _BITS[type(cfg)]
    return VariantFacts(cfg.kind, float(w), float(a), float(min(w, a)), False, "")

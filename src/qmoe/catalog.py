"""The name the paper's tables give each study variant, and what it really is (reference-method.md
7.0).

The reference's table names promise more than its code delivers (its "16-bit" is FP32 plus a
LayerNorm, its "BitNet" is a threshold-ternary scheme, its curiosity never changes routing), so
every report row carries both names and a one-line statement of what the variant really is.
Nothing else is read from a name: bit-widths, MoE-ness and curiosity come from each run's config
(`qmoe.variants.facts`, the runs table's fact columns).
"""

from __future__ import annotations

from typing import NamedTuple


class VariantInfo(NamedTuple):
    paper_name: str  # the reference's table name, or "" when the paper has no such variant
    what: str  # what the variant really is, in one line


VARIANTS: dict[str, VariantInfo] = {
    "fp32": VariantInfo("FP32-Base", "FP32 MLP"),
    "ptq_int8": VariantInfo(
        "Q8-Base-PTQ", "FP32 training, then dynamic int8 PTQ (real int8 kernels)"
    ),
    "w1a8": VariantInfo(
        "Q1-Base", "BitLinear W1A8 (unscaled sign weights), fake-quantised, FP32 head"
    ),
    "w2a8": VariantInfo(
        "Q2-Base", "BitLinear W2A8 (effectively ternary), fake-quantised, FP32 head"
    ),
    "w4a8": VariantInfo("Q4-Base", "BitLinear W4A8, fake-quantised, FP32 head"),
    "w8a8": VariantInfo("Q8-Base", "BitLinear W8A8, fake-quantised, FP32 head"),
    "q16_reference": VariantInfo(
        "Q16-Base", "FP32 MLP with pre-LayerNorm: the reference's '16-bit' is not 16-bit"
    ),
    "fp16": VariantInfo("", "FP32 training, deployed in half precision (a true 16-bit model)"),
    "ternary_reference": VariantInfo(
        "BitNet-Base", "the reference's threshold-ternary scheme, not BitNet b1.58"
    ),
    "bitnet158": VariantInfo("", "BitNet b1.58 (absmean ternary weights, 8-bit activations)"),
    "moe": VariantInfo(
        "BitNet-Q4/8-QMoE", "top-1 MoE of [ternary_reference, w4a8, w8a8], plain router"
    ),
    "moe_curiosity_log": VariantInfo(
        "BitNet-Q4/8-QMoE-C",
        "MC-dropout router, uncertainty only logged (paper v1 code: routing unchanged)",
    ),
    "moe_curiosity_kl": VariantInfo(
        "BitNet-Q4/8-QMoE-C (rebuttal KL)",
        "rebuttal 'Equation 8' KL rescaling: an exact no-op on routing",
    ),
    "moe_curiosity_entropy": VariantInfo(
        "BitNet-Q4/8-QMoE-C (rebuttal entropy)",
        "rebuttal entropy rescaling: an exact no-op on routing",
    ),
    "moe_curiosity_route": VariantInfo(
        "", "our uncertainty-aware routing (a documented deviation)"
    ),
    "moe_route_random": VariantInfo(
        "", "placebo of our routing: the same share of samples escalates at random"
    ),
}


def info(variant: str) -> VariantInfo:
    """The registry entry; a variant unknown here still gets a row (named, not described)."""
    return VARIANTS.get(variant, VariantInfo("", "not described in qmoe.catalog"))


def paper_name(variant: str) -> str:
    """`Q4-Base`, or `(not in paper)`."""
    return info(variant).paper_name or "(not in paper)"


def order(variants: list[str] | tuple[str, ...]) -> list[str]:
    """Registry order first (the study's order), unknown names after, alphabetically."""
    known = [v for v in VARIANTS if v in variants]
    return known + sorted(set(variants) - set(known))

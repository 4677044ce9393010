"""The abstracts' claims (reference-method.md 2), each one entry: wording, the paper's statement and
value, and the criterion that judges it (`qmoe.analysis.verdict`).

Torch-free and free of the evidence machinery, so the report stage judges claims.csv against these
entries without importing what computed it: `qmoe.analysis.claims` holds each claim's extractor
and writes the evidence, `qmoe.report.claim_verdicts` judges it. Adding a claim is adding an entry
here and its extractor there. Rows the paper never claimed are `EXTENSIONS`: judged alike, shown
apart, never counted with the paper's verdicts.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from qmoe.analysis.verdict import (
    EQUIVALENT,
    NO_GAIN,
    Criterion,
    Effect,
    Rule,
    Scale,
    interval,
    significant,
    untestable,
)


class Timing(Enum):
    """How a latency claim is measured."""

    CALLS = "calls"  # batch-1 calls, the protocol's runtime, stats.latency_regime
    MOE_FORM = "moe form"  # CALLS, the plain MoE in its fastest exact form (latency_moe_forms)
    FOLD_PASS = "fold pass"  # the reference's cold whole-fold pass in torch eager


class Claim(NamedTuple):
    id: str
    claim: str  # what is claimed, in our words
    source: str  # abstract version: v1, v3 or v1+v3
    paper: str  # the paper's statement, as displayed
    judge: Criterion  # the rule, the paper's value and the tolerance
    timing: Timing | None = None  # latency claims: how the latency was measured (their scope)


_UNTESTABLE_EFF = (
    "the unit is mislabelled (F1 per training Wh printed as F1/mJ, reference 10.3), "
    "the model is unnamed, and energy depends on the machine"
)
_P = "proportion_tol"
_ARITH = "a count at fixed shapes: true by arithmetic, not an experimental finding"
# the premise, judged on the route models' own weights (qmoe.analysis.escalation)
_SAME_WEIGHTS = Criterion(
    Rule.SUPERIORITY,
    null=0.0,
    note="rule: reproduced when u beats random sets of as many test clips on the same weights "
    "(one-sided permutation test, Holm over the route variants, p < alpha) with the whole "
    "permutation range of the difference above 0; not reproduced when that range lies below 0",
)
_FALL, _RISE, _RATIO = Effect.FALL, Effect.RISE, Effect.RATIO

CLAIMS = [
    Claim(
        "f1_q4_vs_q16",
        "4-bit keeps the F1 of '16-bit'",
        "v1+v3",
        "0.858 vs 0.859 (99.9 %)",
        interval(0.999, "ratio_tol", effect=_RATIO),
    ),
    Claim(
        "compression_4x",
        "4x compression (4-bit vs 16-bit), hidden layers like with like",
        "v1+v3",
        "4x",
        interval(4.0, "rel_tol", Scale.RELATIVE, exact=True, note=_ARITH, arithmetic=True),
    ),
    Claim(
        "energy_inference_v1",
        "41 % energy saving, 4-bit vs 8-bit (inference energy)",
        "v1",
        "41 %",
        interval(0.41, _P, null=0.0, effect=_FALL),
    ),
    Claim(
        "energy_inference_v3",
        "31 % energy saving, 4-bit vs 8-bit (inference energy)",
        "v3",
        "31 %",
        interval(0.31, _P, null=0.0, effect=_FALL),
    ),
    Claim(
        "latency_q4_vs_q8",
        "4-bit faster than 8-bit on real kernels (the latency form of the "
        "41 % / 31 % energy claims; deployed latency)",
        "v1+v3",
        "41 % / 31 % (energy)",
        interval(0.41, _P, null=0.0, effect=_FALL, proxy="latency for energy"),
        Timing.CALLS,
    ),
    Claim(
        "energy_train_v1",
        "41 % energy saving, 4-bit vs 8-bit (training energy, the reference's measure)",
        "v1",
        "41 %",
        interval(0.41, _P, null=0.0, effect=_FALL),
    ),
    Claim(
        "energy_train_v3",
        "31 % energy saving, 4-bit vs 8-bit (training energy)",
        "v3",
        "31 %",
        interval(0.31, _P, null=0.0, effect=_FALL),
    ),
    Claim(
        "equiv_w4a8_fp32",
        "4-bit equivalent to full precision (FP32)",
        "v1+v3",
        "p > 0.05",
        EQUIVALENT,
    ),
    Claim(
        "equiv_w8a8_fp32",
        "8-bit equivalent to full precision (FP32)",
        "v1+v3",
        "p > 0.05",
        EQUIVALENT,
    ),
    Claim(
        "equiv_w4a8_q16",
        "4-bit equivalent to '16-bit' (q16_reference)",
        "v1",
        "p > 0.05",
        EQUIVALENT,
    ),
    Claim(
        "equiv_w8a8_q16",
        "8-bit equivalent to '16-bit' (q16_reference)",
        "v1",
        "p > 0.05",
        EQUIVALENT,
    ),
    Claim(
        "latency_variance_82",
        "curiosity cuts MoE latency variance by 82 % (per-inference latency)",
        "v1",
        "-82 %, Levene p = 0.008",
        significant(0.82, _P, null=0.0, effect=_FALL),
        Timing.CALLS,
    ),
    Claim(
        "latency_variance_82_route",
        "curiosity's 82 % cut in latency variance, judged on "
        "routing that uses u (route) against the plain MoE",
        "v1",
        "-82 %, Levene p = 0.008",
        significant(0.82, _P, null=0.0, effect=_FALL),
        Timing.CALLS,
    ),
    Claim(
        "latency_variance_82_reference",
        "the same, the reference's way (fold-pass times, 1 - std ratio)",
        "v1",
        "-82 %, Levene p = 0.008",
        significant(0.82, _P, null=0.0, effect=_FALL),
        Timing.FOLD_PASS,
    ),
    Claim(
        "latency_std_230_29",
        "MoE latency std 230 ms -> 29 ms with curiosity (std ratio)",
        "v1",
        "230 -> 29 ms (ratio 0.126)",
        interval(
            29 / 230,
            _P,
            note="absolute ms depend on the machine; the ratio is compared",
            null=1.0,
            effect=_RATIO,
        ),
        Timing.CALLS,
    ),
    Claim(
        "moe_overhead_11",
        "MoE +11 % latency vs Q8-Base",
        "v1",
        "+11 %, p < 0.001",
        significant(0.11, _P, null=0.0, effect=_RISE),
        Timing.MOE_FORM,
    ),
    Claim("moe_no_gain", "MoE brings no accuracy gain vs Q8-Base", "v1", "no gain", NO_GAIN),
    Claim(
        "params_1_2m",
        "1.2 M parameters",
        "v1+v3",
        "1.2 M",
        interval(1.2e6, "rel_tol", Scale.RELATIVE, exact=True, note=_ARITH, arithmetic=True),
    ),
    Claim("f1_per_mj", "3.87 F1/mJ", "v1", "3.87 F1/mJ", untestable(_UNTESTABLE_EFF)),
    Claim(
        "deploy_10000x",
        "deployment emissions 10,000x training beyond 1,000 inferences",
        "v1",
        "10,000x at 1,000 inferences",
        interval(1e4, "log10_tol", Scale.LOG10, effect=_RATIO),
    ),
    Claim(
        "f1_variance_85",
        "curiosity cuts cross-fold F1 variance by 85 %",
        "v3",
        "-85 %, Levene p < 0.001",
        significant(0.85, _P, null=0.0, effect=_FALL),
    ),
    Claim(
        "f1_variance_85_route",
        "curiosity's 85 % cut in cross-fold F1 variance, judged on "
        "routing that uses u (route) against the plain MoE",
        "v3",
        "-85 %, Levene p < 0.001",
        significant(0.85, _P, null=0.0, effect=_FALL),
    ),
    Claim(
        "quinn_f1",
        "curiosity raises Quinn F1 0.802 -> 0.809",
        "v3",
        "+0.007",
        interval(0.007, "f1_tol", null=0.0),
    ),
    Claim(
        "curiosity_beats_placebo",
        "uncertainty-driven routing is better than escalating the "
        "same number of test clips at random on the same trained weights (F1; the premise of "
        "'curiosity-driven', tested on route)",
        "v1+v3",
        "(the title's premise)",
        _SAME_WEIGHTS,
    ),
    Claim(
        "routing_q8_confidence",
        "the 8-bit expert gets the uncertain samples: 20 % lower gate confidence",
        "v3",
        "20 % lower, p < 0.001",
        significant(0.20, _P, null=0.0, effect=_FALL),
    ),
]
BY_ID = {c.id: c for c in CLAIMS}
# Rows the paper never claimed: our route vs the plain MoE judged against the paper's 82 % and
# 85 % (claims of logging-only curiosity). Shown in their own table, outside the paper's counts.
EXTENSIONS = frozenset({"latency_variance_82_route", "f1_variance_85_route"})


MEASURED = ("runtime", "regime", "batch")  # what a latency verdict was measured in ('' otherwise)

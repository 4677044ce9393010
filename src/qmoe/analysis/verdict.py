"""The claims table: the abstracts' claims (reference-method.md 2) and the rules that judge them.

Each claim has one rule with an explicit threshold (params.yaml `report.verdict`, fixed before any
result is seen). A rule maps our estimate, its confidence interval and, where the claim rests on a
test, the Holm-adjusted p-value to one of four verdicts, with a one-line reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from qmoe.io import require


class Verdict(Enum):
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not reproduced"
    INCONCLUSIVE = "inconclusive"
    NOT_TESTABLE = "not testable here"


class Rule(Enum):
    INTERVAL = "interval"  # value within paper +- tolerance
    INTERVAL_SIGNIFICANT = "interval_significant"  # ... and the claimed test rejects
    EQUIVALENCE = "equivalence"  # TOST within +- margin
    NO_GAIN = "no_gain"  # gain excluded beyond the margin
    NOT_TESTABLE = "not_testable"


class Scale(Enum):
    ABSOLUTE = "absolute"  # band = paper +- tol
    RELATIVE = "relative"  # band = paper x (1 +- tol)
    LOG10 = "log10"  # band = paper x 10^(+- tol)


@dataclass(frozen=True)
class VerdictConfig:
    """params.yaml `report.verdict`: how close counts as reproduced."""

    proportion_tol: float = 0.10  # savings, reductions, overheads: +- 10 percentage points
    ratio_tol: float = 0.01  # F1 ratio 4-bit / 16-bit: +- 1 percentage point
    f1_tol: float = 0.01  # an F1 difference: +- 0.01
    rel_tol: float = 0.10  # exact quantities (compression, parameters): +- 10 %
    log10_tol: float = 1.0  # orders of magnitude (deployment / training): +- 1

    def __post_init__(self) -> None:
        for name in ("proportion_tol", "ratio_tol", "f1_tol", "rel_tol", "log10_tol"):
            value = getattr(self, name)
            require(0.0 < value < 10.0, f"report.verdict.{name}", f"{value} not in (0, 10)")


@dataclass(frozen=True)
class ClaimSpec:
    id: str
    claim: str
    source: str  # abstract version: v1, v3 or v1+v3
    paper: str  # the paper's statement, as displayed
    value: float  # the number a rule compares with (nan where none)
    rule: Rule
    tolerance: str = ""  # a VerdictConfig field
    scale: Scale = Scale.ABSOLUTE
    note: str = ""  # why the claim cannot be tested here (Rule.NOT_TESTABLE), or a caveat
    exact: bool = False  # a deterministic quantity (no CI): the estimate alone decides


class Decision(NamedTuple):
    verdict: Verdict
    reason: str


def _f(x: float) -> str:
    return f"{x:.3g}"


def band(paper: float, tol: float, scale: Scale) -> tuple[float, float]:
    if scale is Scale.RELATIVE:
        return paper * (1 - tol), paper * (1 + tol)
    if scale is Scale.LOG10:
        return paper * 10**-tol, paper * 10**tol
    return paper - tol, paper + tol


def interval_verdict(
    paper: float,
    estimate: float,
    ci: tuple[float, float],
    tol: float,
    scale: Scale = Scale.ABSOLUTE,
    exact: bool = False,
) -> Decision:
    """CI inside the band: reproduced; CI clear of it: not; straddling: inconclusive. An exact
    quantity (a parameter count, a file size) has no CI: the estimate alone decides."""
    if not math.isfinite(estimate):
        return Decision(Verdict.NOT_TESTABLE, "no estimate")
    lo, hi = band(paper, tol, scale)
    where = f"paper {_f(paper)} band [{_f(lo)}, {_f(hi)}]"
    if not exact and not all(math.isfinite(c) for c in ci):
        return Decision(
            Verdict.INCONCLUSIVE,
            f"estimate {_f(estimate)} without a confidence "
            f"interval (too few models or constant data); {where}",
        )
    if exact:
        inside = lo <= estimate <= hi
        return Decision(
            Verdict.REPRODUCED if inside else Verdict.NOT_REPRODUCED,
            f"exact value {_f(estimate)} {'inside' if inside else 'outside'} {where}",
        )
    ci_txt = f"CI [{_f(ci[0])}, {_f(ci[1])}]"
    if lo <= ci[0] and ci[1] <= hi:
        return Decision(Verdict.REPRODUCED, f"{ci_txt} inside {where}")
    if ci[1] < lo or ci[0] > hi:
        return Decision(Verdict.NOT_REPRODUCED, f"{ci_txt} outside {where}")
    return Decision(Verdict.INCONCLUSIVE, f"{ci_txt} straddles {where}")


def significant_interval_verdict(
    paper: float,
    estimate: float,
    ci: tuple[float, float],
    tol: float,
    p: float,
    alpha: float,
    scale: Scale = Scale.ABSOLUTE,
) -> Decision:
    """`interval_verdict`, but a matching value without a significant test is inconclusive."""
    decision = interval_verdict(paper, estimate, ci, tol, scale)
    if decision.verdict is Verdict.REPRODUCED and not p < alpha:
        return Decision(Verdict.INCONCLUSIVE, f"{decision.reason}, but p = {_f(p)} >= {alpha}")
    if decision.verdict is Verdict.REPRODUCED:
        return Decision(Verdict.REPRODUCED, f"{decision.reason}; p = {_f(p)} < {alpha}")
    return decision


def equivalence_verdict(
    ci: tuple[float, float], margin: float, p_holm: float, alpha: float
) -> Decision:
    """TOST: Holm p < alpha -> equivalent; the (1 - 2 alpha) CI outside +-margin -> not."""
    ci_txt = f"{100 * (1 - 2 * alpha):.0f} % CI [{_f(ci[0])}, {_f(ci[1])}]"
    if not all(math.isfinite(c) for c in (*ci, p_holm)):
        return Decision(Verdict.NOT_TESTABLE, "TOST not computed")
    if p_holm < alpha:
        return Decision(
            Verdict.REPRODUCED, f"TOST Holm p = {_f(p_holm)}: {ci_txt} within +-{margin}"
        )
    if ci[1] < -margin or ci[0] > margin:
        return Decision(Verdict.NOT_REPRODUCED, f"{ci_txt} outside +-{margin}")
    return Decision(
        Verdict.INCONCLUSIVE,
        f"equivalence not shown: {ci_txt} not within +-{margin} "
        f"(TOST Holm p = {_f(p_holm)}); p > 0.05 is not parity",
    )


def no_gain_verdict(ci: tuple[float, float], margin: float) -> Decision:
    """'No accuracy gain': a significant gain refutes it; a CI below +margin supports it."""
    if not all(math.isfinite(c) for c in ci):
        return Decision(Verdict.NOT_TESTABLE, "difference not computed")
    ci_txt = f"CI of the F1 gain [{_f(ci[0])}, {_f(ci[1])}]"
    if ci[0] > 0:
        return Decision(Verdict.NOT_REPRODUCED, f"{ci_txt} above 0: a significant gain")
    if ci[1] < margin:
        return Decision(Verdict.REPRODUCED, f"{ci_txt}: any gain is below {margin}")
    return Decision(Verdict.INCONCLUSIVE, f"{ci_txt} includes gains above {margin}")


class Evidence(NamedTuple):
    """One row of reports/stats/claims.csv (numbers only; `ours` is its display)."""

    computed: bool
    reason: str
    estimate: float
    ci_low: float
    ci_high: float
    p: float
    margin: float


def decide(spec: ClaimSpec, ev: Evidence, cfg: VerdictConfig, alpha: float) -> Decision:
    """The verdict of one claim on one (dataset, protocol)."""
    if spec.rule is Rule.NOT_TESTABLE:
        return Decision(Verdict.NOT_TESTABLE, spec.note)
    if not ev.computed:
        return Decision(Verdict.NOT_TESTABLE, f"not computed: {ev.reason}")
    ci = (ev.ci_low, ev.ci_high)
    if spec.rule is Rule.EQUIVALENCE:
        return equivalence_verdict(ci, ev.margin, ev.p, alpha)
    if spec.rule is Rule.NO_GAIN:
        return no_gain_verdict(ci, ev.margin)
    tol = getattr(cfg, spec.tolerance)
    if spec.rule is Rule.INTERVAL_SIGNIFICANT:
        return significant_interval_verdict(
            spec.value, ev.estimate, ci, tol, ev.p, alpha, spec.scale
        )
    return interval_verdict(spec.value, ev.estimate, ci, tol, spec.scale, spec.exact)


_UNTESTABLE_EFF = ("the unit is mislabelled (F1 per training Wh printed as F1/mJ, reference 10.3), "
                   "the model is unnamed, and energy depends on the machine")
_P = "proportion_tol"
_I, _IS, _EQ = Rule.INTERVAL, Rule.INTERVAL_SIGNIFICANT, Rule.EQUIVALENCE

# fmt: off
CLAIMS = [
    ClaimSpec("f1_q4_vs_q16", "4-bit keeps the F1 of '16-bit'", "v1+v3", "0.858 vs 0.859 (99.9 %)",
              0.999, _I, "ratio_tol"),
    ClaimSpec("compression_4x", "4x compression (4-bit vs 16-bit)", "v1+v3", "4x", 4.0, _I,
              "rel_tol", Scale.RELATIVE, exact=True),
    ClaimSpec("energy_inference_v1", "41 % energy saving, 4-bit vs 8-bit (inference energy)", "v1",
              "41 %", 0.41, _I, _P),
    ClaimSpec("energy_inference_v3", "31 % energy saving, 4-bit vs 8-bit (inference energy)", "v3",
              "31 %", 0.31, _I, _P),
    ClaimSpec("energy_train_v1", "41 % energy saving, 4-bit vs 8-bit (training energy, the "
              "reference's measure)", "v1", "41 %", 0.41, _I, _P),
    ClaimSpec("energy_train_v3", "31 % energy saving, 4-bit vs 8-bit (training energy)", "v3",
              "31 %", 0.31, _I, _P),
    ClaimSpec("equiv_w4a8_fp32", "4-bit equivalent to full precision (FP32)", "v1+v3", "p > 0.05",
              math.nan, _EQ),
    ClaimSpec("equiv_w8a8_fp32", "8-bit equivalent to full precision (FP32)", "v1+v3", "p > 0.05",
              math.nan, _EQ),
    ClaimSpec("equiv_w4a8_q16", "4-bit equivalent to '16-bit' (q16_reference)", "v1", "p > 0.05",
              math.nan, _EQ),
    ClaimSpec("equiv_w8a8_q16", "8-bit equivalent to '16-bit' (q16_reference)", "v1", "p > 0.05",
              math.nan, _EQ),
    ClaimSpec("latency_variance_82", "curiosity cuts MoE latency variance by 82 % (per-inference "
              "latency)", "v1", "-82 %, Levene p = 0.008", 0.82, _IS, _P),
    ClaimSpec("latency_variance_82_reference", "the same, the reference's way (fold-pass times, "
              "1 - std ratio)", "v1", "-82 %, Levene p = 0.008", 0.82, _IS, _P),
    ClaimSpec("latency_std_230_29", "MoE latency std 230 ms -> 29 ms with curiosity (std ratio)",
              "v1", "230 -> 29 ms (ratio 0.126)", 29 / 230, _I, _P,
              note="absolute ms depend on the machine; the ratio is compared"),
    ClaimSpec("moe_overhead_11", "MoE +11 % latency vs Q8-Base", "v1", "+11 %, p < 0.001", 0.11,
              _IS, _P),
    ClaimSpec("moe_no_gain", "MoE brings no accuracy gain vs Q8-Base", "v1", "no gain", math.nan,
              Rule.NO_GAIN),
    ClaimSpec("params_1_2m", "1.2 M parameters", "v1+v3", "1.2 M", 1.2e6, _I, "rel_tol",
              Scale.RELATIVE, exact=True),
    ClaimSpec("f1_per_mj", "3.87 F1/mJ", "v1", "3.87 F1/mJ", 3.87, Rule.NOT_TESTABLE,
              note=_UNTESTABLE_EFF),
    ClaimSpec("deploy_10000x", "deployment emissions 10,000x training beyond 1,000 inferences",
              "v1", "10,000x at 1,000 inferences", 1e4, _I, "log10_tol", Scale.LOG10),
    ClaimSpec("f1_variance_85", "curiosity cuts cross-fold F1 variance by 85 %", "v3",
              "-85 %, Levene p < 0.001", 0.85, _IS, _P),
    ClaimSpec("quinn_f1", "curiosity raises Quinn F1 0.802 -> 0.809", "v3", "+0.007", 0.007, _I,
              "f1_tol"),
    ClaimSpec("routing_q8_confidence", "the 8-bit expert gets the uncertain samples: 20 % lower "
              "gate confidence", "v3", "20 % lower, p < 0.001", 0.20, _IS, _P),
]
# fmt: on

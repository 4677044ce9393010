"""Generic verdict rules: how an estimate, its confidence interval and a p-value are judged
against a paper's number (reference-method.md 2).

A `Criterion` names one rule and, for interval rules, the paper's value and the tolerance (a field
of params.yaml `report.verdict`, fixed before any result is seen); each rule maps our `Evidence` to
a `Decision`: a verdict with a one-line reason (`qmoe.report.judgement.decide` picks the rule
and adds an effect's direction and size). Nothing here knows a claim: the claims themselves
(wording, paper value, criterion) are entries of `qmoe.analysis.paper_claims`, their extractors
of `qmoe.analysis.claims`.
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
    NOT_TESTABLE = "not testable here"  # cannot be measured on this machine or data
    NOT_COMPUTED = "not computed"  # measurable here, but not under this protocol or study
    ARITHMETIC = "holds by arithmetic"  # a count or a ratio of nominal sizes: no experiment
    INDICATIVE = "indicative only"  # a dataset outside the paper's: no verdict either way


class Rule(Enum):
    INTERVAL = "interval"  # value within paper +- tolerance
    INTERVAL_SIGNIFICANT = "interval_significant"  # ... and the claimed test rejects
    EQUIVALENCE = "equivalence"  # TOST within +- margin
    NO_GAIN = "no_gain"  # gain excluded beyond the margin
    SUPERIORITY = "superiority"  # a significant gain over a placebo; equivalence refutes it
    NOT_TESTABLE = "not_testable"


class Effect(Enum):
    """What an estimate is, relative to a ratio of two measurements: how it is printed, and the
    scale on which its interval is symmetric (the log of the ratio; a difference as it is)."""

    DIFF = "diff"  # an additive difference (F1 points)
    RATIO = "ratio"  # a ratio
    FALL = "fall"  # 1 - ratio: a saving, a reduction
    RISE = "rise"  # ratio - 1: an overhead


class Scale(Enum):
    ABSOLUTE = "absolute"  # band = paper +- tol
    RELATIVE = "relative"  # band = paper x (1 +- tol)
    LOG10 = "log10"  # band = paper x 10^(+- tol)


@dataclass(frozen=True)
class VerdictConfig:
    """params.yaml `report.verdict`: how close counts as reproduced."""

    proportion_tol: float  # savings, reductions, overheads (a fraction: 0.1 = 10 points)
    ratio_tol: float  # the F1 ratio 4-bit / 16-bit
    f1_tol: float  # an F1 difference
    rel_tol: float  # exact quantities (compression, parameters), relative
    log10_tol: float  # orders of magnitude (deployment / training), in log10 units

    def __post_init__(self) -> None:
        for name in ("proportion_tol", "ratio_tol", "f1_tol", "rel_tol", "log10_tol"):
            value = getattr(self, name)
            require(0.0 < value < 10.0, f"report.verdict.{name}", f"{value} not in (0, 10)")


class Criterion(NamedTuple):
    """How a claim is judged: the rule, and for the interval rules the paper's value and the
    VerdictConfig field holding the tolerance."""

    rule: Rule
    value: float = math.nan  # the number the rule compares with
    tolerance: str = ""  # a VerdictConfig field
    scale: Scale = Scale.ABSOLUTE
    exact: bool = False  # a deterministic quantity (no CI): the estimate alone decides
    note: str = ""  # why the claim cannot be tested here (Rule.NOT_TESTABLE), or a caveat
    null: float = math.nan  # the no-effect value of an effect claim (NaN: a parity claim)
    arithmetic: bool = False  # holds by counting, whatever any experiment shows
    effect: Effect = Effect.DIFF  # what the estimate is (display, and the scale of its interval)
    proxy: str = ""  # judged through another measurand: which for which ("latency for energy")


def interval(value: float, tolerance: str, scale: Scale = Scale.ABSOLUTE, **more) -> Criterion:
    """Our value within the paper's value +- the tolerance; when that band contains the no-effect
    value `null`, a significant test is needed as well. `more`: Criterion fields."""
    return Criterion(Rule.INTERVAL, value, tolerance, scale, **more)


def significant(value: float, tolerance: str, scale: Scale = Scale.ABSOLUTE, **more) -> Criterion:
    """`interval`, and the claimed test rejects (Holm p < alpha) in the claimed direction."""
    return Criterion(Rule.INTERVAL_SIGNIFICANT, value, tolerance, scale, **more)


EQUIVALENT = Criterion(Rule.EQUIVALENCE)  # TOST within the stats margin
NO_GAIN = Criterion(Rule.NO_GAIN)  # a gain beyond the margin excluded
SUPERIOR = Criterion(Rule.SUPERIORITY, null=0.0)  # significantly better than a placebo


def untestable(note: str) -> Criterion:
    return Criterion(Rule.NOT_TESTABLE, note=note)


class Decision(NamedTuple):
    verdict: Verdict
    reason: str
    direction: Verdict | None = None  # an effect claim: in the paper's direction from no effect?
    size: Verdict | None = None  # ... and of the paper's size (its band)?


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
        return Decision(Verdict.NOT_COMPUTED, "no estimate")
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
    null: float = math.nan,
) -> Decision:
    """`interval_verdict`, but a matching value without a significant test (in the paper's
    direction away from `null`, where given) is inconclusive."""
    decision = interval_verdict(paper, estimate, ci, tol, scale)
    if decision.verdict is not Verdict.REPRODUCED:
        return decision
    if not p < alpha:
        return Decision(Verdict.INCONCLUSIVE, f"{decision.reason}, but p = {_f(p)} >= {alpha}")
    if math.isfinite(null) and (estimate - null) * (paper - null) <= 0:
        return Decision(
            Verdict.INCONCLUSIVE,
            f"{decision.reason}, but the effect is not in the paper's direction from {_f(null)}",
        )
    return Decision(Verdict.REPRODUCED, f"{decision.reason}; p = {_f(p)} < {alpha}")


def superiority_verdict(
    estimate: float,
    ci: tuple[float, float],
    p: float,
    p_equivalence: float,
    margin: float,
    alpha: float,
) -> Decision:
    """Better than a placebo: significant (Holm p < alpha; a one-sided p in the claimed direction
    or a two-sided one) with the CI above 0 -> reproduced; equivalent within +-margin (TOST Holm
    p < alpha) or the CI below 0 (worse) -> not reproduced."""
    if not all(math.isfinite(c) for c in (estimate, *ci, p)):
        return Decision(Verdict.NOT_COMPUTED, "difference not computed")
    ci_txt = f"diff {estimate:+.4f}, 95 % CI [{ci[0]:+.4f}, {ci[1]:+.4f}]"
    if p < alpha and ci[0] > 0:
        return Decision(Verdict.REPRODUCED, f"{ci_txt}, Holm p = {_f(p)}: better than placebo")
    if math.isfinite(p_equivalence) and p_equivalence < alpha:
        return Decision(
            Verdict.NOT_REPRODUCED,
            f"{ci_txt}: equivalent to the placebo within "
            f"+-{margin} (TOST Holm p = {_f(p_equivalence)})",
        )
    if ci[1] < 0:
        return Decision(Verdict.NOT_REPRODUCED, f"{ci_txt}: worse than the placebo")
    if not math.isfinite(p_equivalence):  # no equivalence test (a one-sided design)
        return Decision(Verdict.INCONCLUSIVE, f"{ci_txt}, Holm p = {_f(p)}: not shown better")
    return Decision(
        Verdict.INCONCLUSIVE,
        f"{ci_txt}, Holm p = {_f(p)}: neither better than the "
        f"placebo nor shown equivalent within +-{margin}",
    )


def equivalence_verdict(
    ci: tuple[float, float], margin: float, p_holm: float, alpha: float
) -> Decision:
    """TOST: Holm p < alpha -> equivalent; the CI outside +-margin -> not. `ci` is the interval
    that matches the Holm p (qmoe.analysis.comparisons.holm_matched_interval): inside the margin
    exactly when Holm p < alpha."""
    ci_txt = f"CI matching the Holm p [{_f(ci[0])}, {_f(ci[1])}]"
    if not all(math.isfinite(c) for c in (*ci, p_holm)):
        return Decision(Verdict.NOT_COMPUTED, "TOST not computed")
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
        return Decision(Verdict.NOT_COMPUTED, "difference not computed")
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
    p_equivalence: float = math.nan  # SUPERIORITY: the TOST Holm p of the same pair
    not_testable: str = ""  # no verdict can rest on it here (e.g. energy estimated, not measured)
    n: float = math.nan  # how many units the interval rests on (qmoe.analysis.power)
    unit: str = ""  # what they are: "clips", "folds"

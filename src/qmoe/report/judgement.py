"""One claim judged on one (dataset, protocol): the verdict of its rule (`qmoe.analysis.verdict`),
an effect claim's direction and size apart, and for an inconclusive verdict its power.

Direction and size: a claim of an effect away from no effect (a 41 % saving, an 11 % overhead)
holds two statements; a smaller effect in the paper's direction reproduces the first and not the
second, and is said so instead of a flat 'not reproduced'.

Power is read off the interval the verdict used. Its half-width W is taken on the scale where the
interval is symmetric (the log of a ratio, `Effect`); W* is the half-width that would decide at the
interval's centre (inside the band, or clear of it). If the interval narrows as 1/sqrt(n) (normal
approximation, the same spread per unit and the same centre), a decisive verdict needs
n* = n (W / W*)^2 units. The design could not decide at all when an interval of half-width W would
not decide even centred on the design point: the paper's own value for a band, no difference for
equivalence, no gain and superiority.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from qmoe.analysis.verdict import (
    Criterion,
    Decision,
    Effect,
    Evidence,
    Rule,
    Scale,
    Verdict,
    VerdictConfig,
    band,
    equivalence_verdict,
    interval_verdict,
    no_gain_verdict,
    significant_interval_verdict,
    superiority_verdict,
)

INF = math.inf
JUDGED = (Verdict.REPRODUCED, Verdict.NOT_REPRODUCED, Verdict.INCONCLUSIVE)
_BANDS = (Rule.INTERVAL, Rule.INTERVAL_SIGNIFICANT)


def direction_verdict(
    ci: tuple[float, float], p: float, alpha: float, null: float, paper: float
) -> Verdict:
    """Is the effect on the paper's side of `null`? The interval clear of it on that side (and
    the test significant, where it has a p) reproduces the direction; clear on the other side
    refutes it; an interval that contains `null` leaves it open."""
    sign = 1.0 if paper > null else -1.0
    lo, hi = sorted(sign * (c - null) for c in ci)
    significant = not math.isfinite(p) or p < alpha
    if lo > 0 and significant:
        return Verdict.REPRODUCED
    if hi < 0 and significant:
        return Verdict.NOT_REPRODUCED
    return Verdict.INCONCLUSIVE


def has_direction(c: Criterion) -> bool:
    """A claim of an effect of some size away from no effect (not a parity, not a count)."""
    return c.rule in _BANDS and math.isfinite(c.null) and c.value != c.null and not c.exact


def _finite(*xs: float) -> bool:
    return all(math.isfinite(x) for x in xs)


def decide(c: Criterion, ev: Evidence, cfg: VerdictConfig, alpha: float) -> Decision:
    """The verdict of one claim on one (dataset, protocol), with an effect claim's direction and
    size beside it."""
    dec = _rule_verdict(c, ev, cfg, alpha)
    ci = (ev.ci_low, ev.ci_high)
    if not (has_direction(c) and ev.computed and _finite(*ci) and dec.verdict in JUDGED):
        return dec
    size = interval_verdict(c.value, ev.estimate, ci, getattr(cfg, c.tolerance), c.scale)
    return dec._replace(
        direction=direction_verdict(ci, ev.p, alpha, c.null, c.value), size=size.verdict
    )


def _rule_verdict(c: Criterion, ev: Evidence, cfg: VerdictConfig, alpha: float) -> Decision:
    if c.rule is Rule.NOT_TESTABLE:
        return Decision(Verdict.NOT_TESTABLE, c.note)
    if ev.not_testable:
        return Decision(Verdict.NOT_TESTABLE, ev.not_testable)
    if not ev.computed:
        return Decision(Verdict.NOT_COMPUTED, ev.reason)
    ci = (ev.ci_low, ev.ci_high)
    if c.rule is Rule.EQUIVALENCE:
        return equivalence_verdict(ci, ev.margin, ev.p, alpha)
    if c.rule is Rule.NO_GAIN:
        return no_gain_verdict(ci, ev.margin)
    if c.rule is Rule.SUPERIORITY:
        return superiority_verdict(ev.estimate, ci, ev.p, ev.p_equivalence, ev.margin, alpha)
    tol = getattr(cfg, c.tolerance)
    if _needs_test(c, tol):
        dec = significant_interval_verdict(
            c.value, ev.estimate, ci, tol, ev.p, alpha, c.scale, c.null
        )
        if c.rule is Rule.INTERVAL:  # the band admits no effect at all: say why p matters
            dec = dec._replace(
                reason=f"{dec.reason} (the band contains the no-effect value "
                f"{c.null:.3g}, so a significant test is needed)"
            )
        return dec
    dec = interval_verdict(c.value, ev.estimate, ci, tol, c.scale, c.exact)
    if c.arithmetic and dec.verdict is Verdict.REPRODUCED:
        return Decision(Verdict.ARITHMETIC, f"{dec.reason} (a count, not an experimental result)")
    return dec


def _needs_test(c: Criterion, tol: float) -> bool:
    """The claimed test is part of the claim, or the band contains no effect at all."""
    lo, hi = band(c.value, tol, c.scale)
    return c.rule is Rule.INTERVAL_SIGNIFICANT or (math.isfinite(c.null) and lo <= c.null <= hi)


# --- power -------------------------------------------------------------------------------------


class Power(NamedTuple):
    """How far an inconclusive verdict's interval was from deciding (see the module docstring)."""

    showable: float  # the smallest tolerance or margin at which this interval would decide
    stated: float  # the tolerance or margin the verdict used
    half_width: float  # W, on the interval's symmetric scale
    decisive_half_width: float  # W*: the half-width that would decide at the interval's centre
    design_half_width: float  # the half-width that would decide centred on the design point
    by_design: bool  # W could not decide even centred on the design point
    n: float  # units the interval rests on (NaN: not recorded by the extractor)
    unit: str  # what they are ("clips", "folds")
    n_needed: float  # n (W / W*)^2, rounded up (inf: the centre sits on an edge)
    n_design: float  # n (W / design half-width)^2, rounded up: enough to decide at the design point


NAN = math.nan
NO_POWER = Power(NAN, NAN, NAN, NAN, NAN, False, NAN, "", NAN, NAN)  # nothing to size


def units_needed(n: float, width: float, decisive: float) -> float:
    """n (W / W*)^2 rounded up: the units an interval of half-width `width` on `n` units needs to
    narrow to `decisive` (it narrows as 1/sqrt(n)); inf when `decisive` is 0, NaN when n is."""
    if not decisive > 0:
        return INF if math.isfinite(n) else NAN
    return float(math.ceil(n * (width / decisive) ** 2 - 1e-9)) if math.isfinite(n) else NAN


def _symmetric(effect: Effect, x: float) -> float:
    """`x` on the scale where its interval is symmetric: a difference as is, else the log-ratio."""
    if effect is Effect.DIFF:
        return x
    base = {Effect.RATIO: x, Effect.FALL: 1.0 - x, Effect.RISE: 1.0 + x}[effect]
    return math.log(base) if base > 0 else -INF


def _regions(c: Criterion, ev: Evidence, tol: float) -> list[tuple[float, float]]:
    """Where the interval must lie for each decisive verdict (claim units, open intervals)."""
    if c.rule in _BANDS:
        lo, hi = band(c.value, tol, c.scale)
        inside = (lo, hi)
        if _needs_test(c, tol):  # a reproduced effect must also be clear of no effect
            inside = (max(lo, c.null), hi) if c.value > c.null else (lo, min(hi, c.null))
        return [inside, (-INF, lo), (hi, INF)]
    m = ev.margin
    if c.rule is Rule.EQUIVALENCE:
        return [(-m, m), (-INF, -m), (m, INF)]
    if c.rule is Rule.NO_GAIN:
        return [(-INF, m), (0.0, INF)]
    return [(0.0, INF), (-m, m), (-INF, 0.0)]  # SUPERIORITY: better, equivalent, worse


def _room(point: float, regions: list[tuple[float, float]]) -> float:
    """The largest half-width an interval centred at `point` can have and still decide."""
    return max((min(point - a, b - point) for a, b in regions if a < point < b), default=0.0)


def _showable(c: Criterion, lo: float, hi: float) -> float:
    """The smallest tolerance (in the criterion's scale) or margin at which [lo, hi] decides."""
    if c.rule in _BANDS:
        if c.scale is Scale.RELATIVE:
            return max(abs(lo / c.value - 1), abs(hi / c.value - 1))
        if c.scale is Scale.LOG10:
            return max(abs(math.log10(lo / c.value)), abs(math.log10(hi / c.value)))
        return max(abs(lo - c.value), abs(hi - c.value))
    if c.rule is Rule.NO_GAIN:
        return max(hi, 0.0)
    return max(abs(lo), abs(hi))


def power(c: Criterion, ev: Evidence, cfg: VerdictConfig) -> Power | None:
    """The power of the interval behind a verdict; None where there is no interval to size."""
    lo, hi = ev.ci_low, ev.ci_high
    sized = c.rule in (*_BANDS, Rule.EQUIVALENCE, Rule.NO_GAIN, Rule.SUPERIORITY)
    if not (sized and ev.computed and not c.exact and _finite(lo, hi, ev.estimate)):
        return None
    tol = getattr(cfg, c.tolerance) if c.rule in _BANDS else ev.margin
    ends = sorted(_symmetric(c.effect, x) for x in (lo, hi))
    width, centre = (ends[1] - ends[0]) / 2, (ends[0] + ends[1]) / 2
    regions = [tuple(sorted(_symmetric(c.effect, x) for x in r)) for r in _regions(c, ev, tol)]
    design = _room(_symmetric(c.effect, c.value if c.rule in _BANDS else 0.0), regions)
    needed = _room(centre, regions)
    return Power(
        _showable(c, lo, hi),
        tol,
        width,
        needed,
        design,
        width >= design,
        ev.n,
        ev.unit,
        units_needed(ev.n, width, needed),
        units_needed(ev.n, width, design),
    )


# reference-method.md 4: the paper's datasets; ESC-10 is a 10-class subset of its ESC-50
PAPER_DATASETS = ("esc50", "quinn", "urbansound8k")
SUBSETS = {"esc10": "on ESC-10"}


def scoped(dec: Decision, dataset: str) -> tuple[Decision, str]:
    """A verdict as it may be stated on `dataset`, and its scope note: on a subset of the paper's
    data the verdict stands, labelled ('on ESC-10'; absolute F1 values are indicative); on a
    dataset outside the paper's, comparisons are indicative and no verdict is given either way."""
    if dataset in PAPER_DATASETS or dec.verdict not in JUDGED:
        return dec, ""
    if dataset in SUBSETS:
        return dec, SUBSETS[dataset]
    return Decision(
        Verdict.INDICATIVE,
        f"{dataset} is not one of the paper's datasets "
        f"({', '.join(PAPER_DATASETS)}): would be '{dec.verdict.value}': "
        f"{dec.reason}",
    ), ""

"""One claim judged (qmoe.report.judgement): an effect's direction and size apart, and the power
of an inconclusive verdict, on constructed intervals with hand-computed answers."""

import math

import pytest
from repo_params import config

from qmoe.analysis.verdict import (
    EQUIVALENT,
    NO_GAIN,
    SUPERIOR,
    Effect,
    Evidence,
    Verdict,
    VerdictConfig,
    interval,
)
from qmoe.report.judgement import decide, direction_verdict, power, units_needed

NAN = math.nan
CFG = config(VerdictConfig, "report.verdict", proportion_tol=0.1)


def _ev(lo: float, hi: float, est: float | None = None, p: float = 0.5, **kw) -> Evidence:
    est = (lo + hi) / 2 if est is None else est
    return Evidence(True, "", est, lo, hi, p, kw.pop("margin", NAN), **kw)


@pytest.mark.parametrize(
    "ci, p, expected",
    [
        ((0.09, 0.19), 0.003, Verdict.REPRODUCED),  # a saving, significant
        ((-0.19, -0.09), 0.003, Verdict.NOT_REPRODUCED),  # a significant loss
        ((-0.05, 0.19), 0.3, Verdict.INCONCLUSIVE),  # the interval contains no effect
        ((0.09, 0.19), 0.2, Verdict.INCONCLUSIVE),  # clear of 0, but the claimed test is not
    ],
)
def test_direction_is_the_side_of_no_effect_the_interval_lies_on(ci, p, expected):
    assert direction_verdict(ci, p, 0.05, 0.0, 0.41) is expected
    flipped = (-ci[1], -ci[0])  # a claimed reduction below no effect reads the same way
    assert direction_verdict(flipped, p, 0.05, 0.0, -0.41) is expected


def test_a_smaller_saving_in_the_papers_direction_keeps_its_direction():
    rule = interval(0.41, "proportion_tol", null=0.0, effect=Effect.FALL)
    dec = decide(rule, _ev(0.09, 0.19, 0.154, p=0.003), CFG, 0.05)
    assert (dec.verdict, dec.direction, dec.size) == (
        Verdict.NOT_REPRODUCED,
        Verdict.REPRODUCED,
        Verdict.NOT_REPRODUCED,
    )
    parity = decide(interval(0.999, "ratio_tol"), _ev(0.98, 1.02), CFG, 0.05)
    assert parity.direction is parity.size is None  # no effect claimed: no parts


def test_units_needed_is_n_times_the_squared_width_ratio_rounded_up():
    assert units_needed(400, 0.025, 0.005) == 10_000
    assert units_needed(5, 0.08, 0.05) == 13  # 5 x 2.56 = 12.8
    assert units_needed(5, 0.08, 0.0) == math.inf  # the centre on an edge: never decides
    assert math.isnan(units_needed(NAN, 0.08, 0.05))


def test_power_of_a_band_claim_on_a_difference():
    """Band 0.5 +- 0.1; CI [0.35, 0.75] on 5 folds: W = 0.2, centre 0.55 is 0.05 from the edge
    0.6 (x16 = 80 folds); centred on 0.5 it would need W < 0.1 (x4 = 20 folds); the band that
    would hold the whole interval is +-0.25."""
    got = power(interval(0.5, "proportion_tol"), _ev(0.35, 0.75, n=5, unit="folds"), CFG)
    assert got.showable == pytest.approx(0.25) and got.stated == 0.1
    assert got.half_width == pytest.approx(0.2)
    assert got.decisive_half_width == pytest.approx(0.05)
    assert got.design_half_width == pytest.approx(0.1)
    assert got.by_design and (got.n_needed, got.n_design) == (80, 20)
    narrow = power(interval(0.5, "proportion_tol"), _ev(0.47, 0.63, n=5, unit="folds"), CFG)
    assert not narrow.by_design and narrow.n_needed == 13  # W 0.08 vs W* 0.05: x2.56


def test_power_of_a_saving_is_sized_on_the_log_of_its_ratio():
    """A saving of [0.2, 0.5] is a ratio of [0.5, 0.8]: W = (ln 0.8 - ln 0.5) / 2; the band
    0.41 +- 0.1 is a ratio of [0.49, 0.69]."""
    rule = interval(0.41, "proportion_tol", null=0.0, effect=Effect.FALL)
    got = power(rule, _ev(0.2, 0.5, n=5, unit="folds"), CFG)
    width = (math.log(0.8) - math.log(0.5)) / 2
    centre = (math.log(0.8) + math.log(0.5)) / 2
    room = min(centre - math.log(0.49), math.log(0.69) - centre)
    design = min(math.log(0.59) - math.log(0.49), math.log(0.69) - math.log(0.59))
    assert got.half_width == pytest.approx(width)
    assert got.decisive_half_width == pytest.approx(room)
    assert got.design_half_width == pytest.approx(design)
    assert got.n_needed == math.ceil(5 * (width / room) ** 2)
    assert got.showable == pytest.approx(0.21)  # 0.41 - 0.2


@pytest.mark.parametrize(
    "rule, ci, showable, needed, design",
    [
        # TOST at +-0.01: centre -0.005 is 0.005 inside; centred on 0, 0.01
        (EQUIVALENT, (-0.03, 0.02), 0.03, 0.005, 0.01),
        # no gain below 0.01 / a gain above 0: centre 0.005 is 0.005 from both
        (NO_GAIN, (-0.02, 0.03), 0.03, 0.005, 0.01),
        # better than placebo (above 0) or equivalent (+-0.01): centre 0.01 is 0.01 above 0
        (SUPERIOR, (-0.01, 0.03), 0.03, 0.01, 0.01),
    ],
)
def test_power_of_margin_rules(rule, ci, showable, needed, design):
    got = power(rule, _ev(*ci, margin=0.01, n=400, unit="clips"), CFG)
    width = (ci[1] - ci[0]) / 2
    assert got.showable == pytest.approx(showable) and got.stated == 0.01
    assert got.decisive_half_width == pytest.approx(needed)
    assert got.design_half_width == pytest.approx(design)
    assert got.by_design is (width >= design)
    assert got.n_needed == math.ceil(400 * (width / needed) ** 2 - 1e-9)
    assert got.n_design == math.ceil(400 * (width / design) ** 2 - 1e-9)


def test_no_power_without_an_interval():
    assert power(EQUIVALENT, _ev(NAN, NAN, 0.0, margin=0.01), CFG) is None
    exact = interval(4.0, "rel_tol", exact=True)
    assert power(exact, _ev(3.8, 3.8), CFG) is None
    missing = Evidence(False, "no runs", NAN, NAN, NAN, NAN, NAN)
    assert power(interval(0.5, "proportion_tol"), missing, CFG) is None

"""Generic verdict rules (qmoe.analysis.verdict): bands, intervals, TOST, no-gain; and decide
(qmoe.report.judgement), which picks the rule."""

import math

import pytest
from repo_params import config, section

from qmoe.analysis.verdict import (
    EQUIVALENT,
    Evidence,
    Scale,
    Verdict,
    VerdictConfig,
    band,
    equivalence_verdict,
    interval,
    interval_verdict,
    no_gain_verdict,
    significant,
    significant_interval_verdict,
    untestable,
)
from qmoe.io import ConfigError, from_section
from qmoe.report.judgement import decide

NAN = math.nan


@pytest.mark.parametrize(
    "ci, expected",
    [
        ((0.78, 0.86), Verdict.REPRODUCED),  # inside 0.82 +- 0.10
        ((0.50, 0.60), Verdict.NOT_REPRODUCED),  # clear below
        ((0.95, 0.99), Verdict.NOT_REPRODUCED),  # clear above
        ((0.60, 0.80), Verdict.INCONCLUSIVE),  # straddles the lower edge
    ],
)
def test_interval_verdict(ci, expected):
    assert interval_verdict(0.82, sum(ci) / 2, ci, 0.10).verdict is expected


def test_interval_without_ci_is_inconclusive_unless_exact():
    no_ci = interval_verdict(4.0, 4.1, (NAN, NAN), 0.1, Scale.RELATIVE)
    assert no_ci.verdict is Verdict.INCONCLUSIVE
    exact = interval_verdict(4.0, 3.43, (NAN, NAN), 0.1, Scale.RELATIVE, exact=True)
    assert exact.verdict is Verdict.NOT_REPRODUCED and "3.43" in exact.reason
    assert (
        interval_verdict(1.2e6, 1.19e6, (NAN, NAN), 0.1, Scale.RELATIVE, exact=True).verdict
        is Verdict.REPRODUCED
    )
    assert interval_verdict(0.5, NAN, (NAN, NAN), 0.1).verdict is Verdict.NOT_COMPUTED


def test_bands_by_scale():
    assert band(0.41, 0.1, Scale.ABSOLUTE) == pytest.approx((0.31, 0.51))
    assert band(4.0, 0.1, Scale.RELATIVE) == pytest.approx((3.6, 4.4))
    assert band(1e4, 1.0, Scale.LOG10) == pytest.approx((1e3, 1e5))


def test_a_matching_value_needs_a_significant_test():
    ok = significant_interval_verdict(0.82, 0.8, (0.78, 0.85), 0.1, p=0.001, alpha=0.05)
    weak = significant_interval_verdict(0.82, 0.8, (0.78, 0.85), 0.1, p=0.2, alpha=0.05)
    off = significant_interval_verdict(0.82, 0.2, (0.1, 0.3), 0.1, p=0.001, alpha=0.05)
    assert ok.verdict is Verdict.REPRODUCED
    assert weak.verdict is Verdict.INCONCLUSIVE and "0.2 >= 0.05" in weak.reason
    assert off.verdict is Verdict.NOT_REPRODUCED


def test_equivalence_verdict():
    assert equivalence_verdict((-0.005, 0.004), 0.01, 0.01, 0.05).verdict is Verdict.REPRODUCED
    assert equivalence_verdict((-0.05, -0.02), 0.01, 0.99, 0.05).verdict is Verdict.NOT_REPRODUCED
    undecided = equivalence_verdict((-0.02, 0.005), 0.01, 0.4, 0.05)
    assert undecided.verdict is Verdict.INCONCLUSIVE and "not parity" in undecided.reason
    assert equivalence_verdict((NAN, NAN), 0.01, NAN, 0.05).verdict is Verdict.NOT_COMPUTED


def test_no_gain_verdict():
    assert no_gain_verdict((0.01, 0.03), 0.01).verdict is Verdict.NOT_REPRODUCED
    assert no_gain_verdict((-0.02, 0.005), 0.01).verdict is Verdict.REPRODUCED
    assert no_gain_verdict((-0.02, 0.03), 0.01).verdict is Verdict.INCONCLUSIVE


def test_decide_routes_each_rule_and_reports_missing_evidence():
    cfg, ratio_rule = config(VerdictConfig, "report.verdict"), interval(0.999, "ratio_tol")
    missing = Evidence(False, "no runs of w4a8", NAN, NAN, NAN, NAN, NAN)
    d = decide(ratio_rule, missing, cfg, 0.05)
    assert d[:2] == (Verdict.NOT_COMPUTED, "no runs of w4a8")
    unmeasurable = missing._replace(not_testable="energy is estimated")
    assert decide(ratio_rule, unmeasurable, cfg, 0.05)[:2] == (
        Verdict.NOT_TESTABLE,
        "energy is estimated",
    )
    assert decide(untestable("unit mislabelled"), missing, cfg, 0.05)[:2] == (
        Verdict.NOT_TESTABLE,
        "unit mislabelled",
    )
    ratio = Evidence(True, "", 0.998, 0.995, 1.001, 0.3, NAN)
    assert decide(ratio_rule, ratio, cfg, 0.05).verdict is Verdict.REPRODUCED
    tight = config(
        VerdictConfig, "report.verdict", ratio_tol=0.002
    )  # 0.999 +- 0.002 excludes 0.995
    assert decide(ratio_rule, ratio, tight, 0.05).verdict is Verdict.INCONCLUSIVE
    equiv = Evidence(True, "", 0.001, -0.004, 0.006, 0.01, 0.01)
    assert decide(EQUIVALENT, equiv, cfg, 0.05).verdict is Verdict.REPRODUCED
    weak = Evidence(True, "", 0.8, 0.78, 0.85, 0.2, NAN)
    assert decide(significant(0.82, "proportion_tol"), weak, cfg, 0.05).reason.endswith(
        "but p = 0.2 >= 0.05"
    )


@pytest.mark.parametrize("field", ["proportion_tol", "ratio_tol", "f1_tol", "rel_tol", "log10_tol"])
def test_verdict_config_range(field):
    with pytest.raises(ConfigError, match=f"report.verdict.{field}"):
        from_section(VerdictConfig, {**section("report.verdict"), field: 0.0}, "report.verdict")

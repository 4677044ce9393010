"""Verdict rules (qmoe.analysis.verdict) and the claims evidence that feeds them (qmoe.analysis.claims)."""

import math

import numpy as np
import pandas as pd
import pytest

from qmoe.analysis import claims
from qmoe.analysis.stats import StatsConfig
from qmoe.analysis.verdict import (
    CLAIMS,
    Evidence,
    Rule,
    Scale,
    Verdict,
    VerdictConfig,
    band,
    decide,
    equivalence_verdict,
    interval_verdict,
    no_gain_verdict,
    significant_interval_verdict,
)
from qmoe.io import ConfigError, from_section

NAN = math.nan


@pytest.mark.parametrize("ci, expected", [
    ((0.78, 0.86), Verdict.REPRODUCED),        # inside 0.82 +- 0.10
    ((0.50, 0.60), Verdict.NOT_REPRODUCED),    # clear below
    ((0.95, 0.99), Verdict.NOT_REPRODUCED),    # clear above
    ((0.60, 0.80), Verdict.INCONCLUSIVE),      # straddles the lower edge
])
def test_interval_verdict(ci, expected):
    assert interval_verdict(0.82, sum(ci) / 2, ci, 0.10).verdict is expected


def test_interval_without_ci_is_inconclusive_unless_exact():
    no_ci = interval_verdict(4.0, 4.1, (NAN, NAN), 0.1, Scale.RELATIVE)
    assert no_ci.verdict is Verdict.INCONCLUSIVE
    exact = interval_verdict(4.0, 3.43, (NAN, NAN), 0.1, Scale.RELATIVE, exact=True)
    assert exact.verdict is Verdict.NOT_REPRODUCED and "3.43" in exact.reason
    assert interval_verdict(1.2e6, 1.19e6, (NAN, NAN), 0.1, Scale.RELATIVE,
                            exact=True).verdict is Verdict.REPRODUCED
    assert interval_verdict(0.5, NAN, (NAN, NAN), 0.1).verdict is Verdict.NOT_TESTABLE


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
    assert equivalence_verdict((NAN, NAN), 0.01, NAN, 0.05).verdict is Verdict.NOT_TESTABLE


def test_no_gain_verdict():
    assert no_gain_verdict((0.01, 0.03), 0.01).verdict is Verdict.NOT_REPRODUCED
    assert no_gain_verdict((-0.02, 0.005), 0.01).verdict is Verdict.REPRODUCED
    assert no_gain_verdict((-0.02, 0.03), 0.01).verdict is Verdict.INCONCLUSIVE


def test_decide_routes_each_rule_and_reports_missing_evidence():
    cfg = VerdictConfig()
    spec = {s.id: s for s in CLAIMS}
    missing = Evidence(False, "no runs of w4a8", NAN, NAN, NAN, NAN, NAN)
    d = decide(spec["f1_q4_vs_q16"], missing, cfg, 0.05)
    assert d.verdict is Verdict.NOT_TESTABLE and "no runs of w4a8" in d.reason
    assert decide(spec["f1_per_mj"], missing, cfg, 0.05).verdict is Verdict.NOT_TESTABLE
    ratio = Evidence(True, "", 0.998, 0.995, 1.001, 0.3, NAN)
    assert decide(spec["f1_q4_vs_q16"], ratio, cfg, 0.05).verdict is Verdict.REPRODUCED
    tight = VerdictConfig(ratio_tol=0.002)     # 0.999 +- 0.002 excludes 0.995
    assert decide(spec["f1_q4_vs_q16"], ratio, tight, 0.05).verdict is Verdict.INCONCLUSIVE
    equiv = Evidence(True, "", 0.001, -0.004, 0.006, 0.01, 0.01)
    assert decide(spec["equiv_w4a8_fp32"], equiv, cfg, 0.05).verdict is Verdict.REPRODUCED


def test_every_claim_has_an_extractor_and_a_valid_tolerance():
    ids = [s.id for s in CLAIMS]
    assert len(ids) == len(set(ids)) and set(ids) == set(claims.EXTRACTORS)
    cfg = VerdictConfig()
    for spec in CLAIMS:
        if spec.rule in (Rule.INTERVAL, Rule.INTERVAL_SIGNIFICANT):
            assert hasattr(cfg, spec.tolerance) and math.isfinite(spec.value), spec.id


def test_abstract_claims_are_all_present():
    text = " ".join(s.claim + " " + s.paper for s in CLAIMS)
    for fragment in ("0.858 vs 0.859", "4x", "41 %", "31 %", "equivalent", "82 %", "230 -> 29 ms",
                     "+11 %", "no accuracy gain", "1.2 M", "3.87 F1/mJ", "10,000x"):
        assert fragment in text


@pytest.mark.parametrize("field", ["proportion_tol", "ratio_tol", "f1_tol", "rel_tol", "log10_tol"])
def test_verdict_config_range(field):
    with pytest.raises(ConfigError, match=f"report.verdict.{field}"):
        from_section(VerdictConfig, {field: 0.0}, "report.verdict")


# --- evidence from stats tables ---------------------------------------------------------------


def _family_row(**kw) -> dict:
    base = {"family": "f1_vs_q16_reference", "dataset": "d", "protocol": "corrected",
            "variant": "w4a8", "baseline": "q16_reference", "status": "computed", "reason": ""}
    return {**base, **kw}


def _context(families: dict, runs: pd.DataFrame | None = None, routing=None) -> claims.Context:
    runs = runs if runs is not None else pd.DataFrame(
        {"dataset": ["d"], "protocol": ["corrected"], "variant": ["fp32"], "n_params": [1.2e6]})
    cols = ["family", "dataset", "protocol", "variant", "baseline", "status", "reason"]
    tables = {name: pd.DataFrame(columns=cols)
              for name in ("f1_paired", "tost_f1", "latency_levene", "latency_paired",
                           "energy_inference_paired", "energy_train_paired", "f1_variance_levene",
                           "fold_latency_levene")}
    return claims.Context({**tables, **families}, runs, routing, StatsConfig(n_resamples=200))


def test_f1_ratio_evidence_is_read_from_the_family_row():
    row = _family_row(ratio=0.97, ratio_ci_low=0.95, ratio_ci_high=0.99, p_holm=0.2,
                      mean_variant=0.8, mean_baseline=0.825)
    ev, ours = claims.f1_ratio(_context({"f1_paired": pd.DataFrame([row])}), "d", "corrected")
    assert ev == Evidence(True, "", 0.97, 0.95, 0.99, 0.2, ev.margin) and "97.0 %" in ours


def test_a_not_computed_family_row_passes_its_reason_on():
    row = _family_row(status="not computed", reason="incomplete pairs: w4a8 lacks fold 2")
    ev, ours = claims.f1_ratio(_context({"f1_paired": pd.DataFrame([row])}), "d", "corrected")
    assert not ev.computed and "incomplete pairs: w4a8 lacks fold 2" in ev.reason
    assert ours == "not computed"


def test_evidence_has_one_row_per_claim_and_scope():
    ev = claims.evidence(_context({}))
    assert ev["claim"].tolist() == [s.id for s in CLAIMS]
    # counted at the paper's input width (1,536) and 50 classes, whatever our backbone (6.2)
    assert ev.loc[ev["claim"] == "params_1_2m", "estimate"].item() == 1_206_770
    assert not ev.loc[ev["claim"] == "quinn_f1", "computed"].item()


def test_routing_confidence_evidence():
    rng = np.random.default_rng(0)
    rows = []
    for fold in (1, 2, 3):
        for expert in ("ternary_reference", "w4a8", "w8a8"):
            conf = 0.5 if expert == "w8a8" else 0.7
            rows.append(pd.DataFrame({"dataset": "d", "protocol": "corrected", "fold": fold,
                                      "seed": 0, "expert_name": expert,
                                      "gate_prob": conf + 0.01 * rng.standard_normal(40)}))
    routing = pd.concat(rows, ignore_index=True)
    ev, _ = claims.routing_confidence(_context({}, routing=routing), "d", "corrected")
    is8 = routing["expert_name"] == "w8a8"
    expected = 1 - routing.loc[is8, "gate_prob"].mean() / routing.loc[~is8, "gate_prob"].mean()
    assert ev.computed and ev.estimate == pytest.approx(expected)
    assert ev.ci_low < expected < ev.ci_high and ev.p < 1e-10

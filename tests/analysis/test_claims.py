"""The claims registry (qmoe.analysis.paper_claims, qmoe.analysis.claims): one entry and one
extractor per claim, evidence per scope, verdicts over every protocol (qmoe.report.claim_verdicts).
"""

import math

import pandas as pd
import pytest
from repo_params import config

from qmoe.analysis import claims, paper_claims
from qmoe.analysis.stats import StatsConfig
from qmoe.analysis.verdict import Rule, Verdict, VerdictConfig
from qmoe.report import claim_verdicts
from qmoe.report.judgement import decide

FAMILIES = (
    "f1_paired",
    "tost_f1",
    "latency_levene",
    "latency_paired",
    "energy_inference_paired",
    "energy_train_paired",
    "f1_variance_levene",
    "fold_latency_levene",
)


def test_each_claim_is_one_entry_with_a_valid_criterion():
    ids = [c.id for c in paper_claims.CLAIMS]
    assert len(ids) == len(set(ids)) == 25 and list(paper_claims.BY_ID) == ids
    assert list(claims.EXTRACTORS) == ids  # one extractor per claim, in the same order
    cfg = config(VerdictConfig, "report.verdict")
    for c in paper_claims.CLAIMS:
        assert callable(claims.EXTRACTORS[c.id]) and c.source in ("v1", "v3", "v1+v3"), c.id
        if c.judge.rule in (Rule.INTERVAL, Rule.INTERVAL_SIGNIFICANT):
            assert hasattr(cfg, c.judge.tolerance) and math.isfinite(c.judge.value), c.id
        if c.judge.rule is Rule.NOT_TESTABLE:
            assert c.judge.note, c.id


def test_abstract_claims_are_all_present():
    text = " ".join(c.claim + " " + c.paper for c in paper_claims.CLAIMS)
    for fragment in (
        "0.858 vs 0.859",
        "4x",
        "41 %",
        "31 %",
        "equivalent",
        "82 %",
        "230 -> 29 ms",
        "+11 %",
        "no accuracy gain",
        "1.2 M",
        "3.87 F1/mJ",
        "10,000x",
    ):
        assert fragment in text


def _context(runs: pd.DataFrame) -> claims.Context:
    cols = ["family", "dataset", "protocol", "variant", "baseline", "status", "reason"]
    empty = {name: pd.DataFrame(columns=cols) for name in FAMILIES}
    return claims.Context(empty, runs, None, config(StatsConfig, "stats", n_resamples=200))


def test_evidence_has_one_row_per_claim_and_scope(with_facts):
    runs = with_facts(
        pd.DataFrame(
            {
                "dataset": ["d", "d"],
                "protocol": ["corrected", "faithful"],
                "variant": ["fp32", "fp32"],
                "n_params": [1.2e6, 1.2e6],
            }
        )
    )
    ev = claims.evidence(_context(runs))
    assert ev[["claim", "protocol"]].apply(tuple, axis=1).tolist() == [
        (c.id, p) for c in paper_claims.CLAIMS for p in ("corrected", "faithful")
    ]
    params = ev[ev["claim"] == "params_1_2m"].iloc[0]
    # counted at the paper's input width (1,536) and 50 classes, whatever our backbone (6.2)
    assert params["computed"] and params["estimate"] == 1_206_770
    q4 = ev[(ev["claim"] == "f1_q4_vs_q16") & (ev["protocol"] == "corrected")].iloc[0]
    assert q4["reason"] == "no runs of 4-bit BitLinear (variant not in the study)"
    quinn = ev[ev["claim"] == "quinn_f1"].iloc[0]
    assert not quinn["computed"] and quinn["not_testable"] == (
        "Quinn (ABGQI) is another dataset, obtainable only from its authors"
    )


def _found(claim: str, protocol: str, **kw) -> dict:
    row = {
        "claim": claim,
        "dataset": "esc50",
        "protocol": protocol,
        "ours": "x",
        "computed": False,
        "reason": "no data",
        "estimate": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p": math.nan,
        "margin": math.nan,
    }
    return {**row, **kw}


def test_judge_covers_every_protocol_and_applies_each_claims_criterion():
    found = pd.DataFrame(
        [
            _found(
                "f1_q4_vs_q16",
                "corrected",
                computed=True,
                reason="",
                estimate=0.998,
                ci_low=0.995,
                ci_high=1.001,
                p=0.3,
            ),
            _found("compression_4x", "corrected", computed=True, reason="", estimate=3.43),
        ]
    )
    rows = claim_verdicts.judge(
        found, config(VerdictConfig, "report.verdict"), 0.05, ("corrected", "faithful")
    )
    assert len(rows) == 2 * len(paper_claims.CLAIMS)
    got = rows.set_index(["claim", "protocol"])
    assert got.loc[("f1_q4_vs_q16", "corrected"), "verdict"] == Verdict.REPRODUCED.value
    assert got.loc[("compression_4x", "corrected"), "reason"] == (
        "exact value 3.43 outside paper 4 band [3.6, 4.4]"
    )
    assert got.loc[("f1_q4_vs_q16", "faithful"), "ours"] == "not run"
    assert got.loc[("f1_q4_vs_q16", "faithful"), "verdict"] == Verdict.NOT_COMPUTED.value
    assert got.loc[("f1_q4_vs_q16", "faithful"), "reason"] == "protocol faithful not in the study"
    assert (
        got.loc[("f1_per_mj", "corrected"), "reason"] == paper_claims.BY_ID["f1_per_mj"].judge.note
    )


@pytest.mark.parametrize("tol, verdict", [(0.01, "reproduced"), (0.002, "inconclusive")])
def test_judge_reads_the_tolerance_from_the_verdict_config(tol, verdict):
    found = pd.DataFrame(
        [
            _found(
                "f1_q4_vs_q16",
                "corrected",
                computed=True,
                reason="",
                estimate=0.998,
                ci_low=0.995,
                ci_high=1.001,
                p=0.3,
            )
        ]
    )
    rows = claim_verdicts.judge(
        found, config(VerdictConfig, "report.verdict", ratio_tol=tol), 0.05, ("corrected",)
    )
    assert rows.set_index("claim").loc["f1_q4_vs_q16", "verdict"] == verdict


def test_energy_claims_are_not_testable_where_energy_is_a_power_model_times_time():
    from qmoe.analysis import evidence as ex

    def found(ctx, d, p):
        return ex.Evidence(True, "", 0.3, 0.2, 0.4, 0.01, float("nan")), "30 %"

    runs = pd.DataFrame(
        {
            "dataset": ["d", "d", "e"],
            "protocol": ["c", "c", "c"],
            "bench_energy_method": [
                "estimated: power model x time (codecarbon CPU estimated ...)",
                "estimated: power model x time (codecarbon CPU estimated ...)",
                "measured: RAPL package counters, idle baseline subtracted",
            ],
        }
    )
    ctx = ex.Context({}, runs, None, None)
    wrapped = ex.measured_energy("bench_energy_method", found)
    ev, ours = wrapped(ctx, "d", "c")
    assert not ev.computed and ours == "not measured here"
    assert ev.not_testable == ev.reason
    assert ev.reason.startswith("energy is estimated: power model x time")
    assert wrapped(ctx, "e", "c")[0].computed  # measured: judged
    d = decide(
        paper_claims.BY_ID["energy_inference_v1"].judge,
        ev,
        config(VerdictConfig, "report.verdict"),
        0.05,
    )
    assert d.verdict is Verdict.NOT_TESTABLE and "power model x time" in d.reason


# --- an honest verdict table (issue 12 item 5) ---------------------------------------------------


def _one(claim: str, dataset: str = "esc50", **kw) -> pd.Series:
    found = pd.DataFrame([_found(claim, "corrected", computed=True, reason="", **kw)])
    found["dataset"] = dataset
    return (
        claim_verdicts.judge(found, config(VerdictConfig, "report.verdict"), 0.05, ("corrected",))
        .set_index("claim")
        .loc[claim]
    )


def test_a_band_containing_no_effect_needs_a_significant_test():
    """Quinn's +0.007 +- 0.01 contains 0: a null result is not 'reproduced'."""
    null = _one("quinn_f1", "quinn", estimate=0.001, ci_low=-0.002, ci_high=0.004, p=0.6)
    assert null["verdict"] == "inconclusive" and "contains the no-effect value 0" in null["reason"]
    shown = _one("quinn_f1", "quinn", estimate=0.006, ci_low=0.004, ci_high=0.008, p=0.001)
    assert shown["verdict"] == "reproduced"


def test_arithmetic_claims_are_labelled_not_reproduced_by_experiment():
    row = _one("params_1_2m", estimate=1_206_770)
    assert row["verdict"] == Verdict.ARITHMETIC.value and "not an experimental" in row["reason"]
    assert _one("compression_4x", estimate=3.81)["verdict"] == Verdict.ARITHMETIC.value
    assert _one("compression_4x", estimate=3.43)["verdict"] == Verdict.NOT_REPRODUCED.value


def test_verdicts_on_esc10_are_labelled_and_outside_the_papers_data_only_indicative():
    kw = {"estimate": 0.998, "ci_low": 0.995, "ci_high": 1.001, "p": 0.3}
    esc10 = _one("f1_q4_vs_q16", "esc10", **kw)
    assert (esc10["verdict"], esc10["scope"]) == ("reproduced", "on ESC-10")
    digits = _one("f1_q4_vs_q16", "audiofolder", **kw)
    assert digits["verdict"] == Verdict.INDICATIVE.value and digits["scope"] == ""
    assert "audiofolder is not one of the paper's datasets" in digits["reason"]
    assert "would be 'reproduced'" in digits["reason"]


def test_curiosity_is_judged_against_random_escalation_on_the_same_weights():
    """One-sided permutation p (u better) and the permutation range of the difference: better,
    worse (the range below 0, whatever the one-sided p) and unsure; the rule is stated."""
    kw = {"margin": float("nan"), "p_equivalence": float("nan")}
    better = _one("curiosity_beats_placebo", estimate=0.03, ci_low=0.02, ci_high=0.04, p=1e-4, **kw)
    worse = _one("curiosity_beats_placebo", estimate=-0.03, ci_low=-0.04, ci_high=-0.02, p=1, **kw)
    unsure = _one("curiosity_beats_placebo", estimate=0.01, ci_low=-0.01, ci_high=0.03, p=0.2, **kw)
    # significant but the range reaches 0: not shown better
    edge = _one("curiosity_beats_placebo", estimate=0.01, ci_low=0.0, ci_high=0.02, p=0.01, **kw)
    assert [r["verdict"] for r in (better, worse, unsure, edge)] == [
        "reproduced",
        "not reproduced",
        "inconclusive",
        "inconclusive",
    ]
    assert "worse than the placebo" in worse["reason"]
    assert unsure["reason"].endswith("Holm p = 0.2: not shown better")  # no equivalence tested
    rule = paper_claims.BY_ID["curiosity_beats_placebo"].judge
    note = rule.note  # the rule, shown beside reasons
    assert "one-sided permutation test" in note and "Holm" in note

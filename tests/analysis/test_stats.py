"""qmoe.analysis.stats / comparisons / families / reference_tables against scipy and statsmodels
on fixed inputs."""

import numpy as np
import pandas as pd
import pytest
from repo_params import config, section
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from qmoe.analysis import comparisons, families, reference_tables, results, variances
from qmoe.analysis.comparisons import Method, Pair
from qmoe.analysis.pairing import Scope, pair_folds, pair_up
from qmoe.analysis.stats import (
    Alternative,
    StatsConfig,
    add_holm,
    bootstrap_ci,
    cohens_dz,
    holm,
    levene_median,
    log_ratio_test,
    min_equivalence_margin,
    nadeau_bengio_ci,
    nadeau_bengio_ttest,
    tost_nadeau_bengio,
    tost_paired,
)
from qmoe.io import ConfigError, from_section

CFG = config(StatsConfig, "stats", n_resamples=300)
A = np.array([0.81, 0.79, 0.84, 0.80, 0.83])
B = np.array([0.80, 0.80, 0.82, 0.78, 0.81])


def runs_frame(values: dict[str, list[float]], protocol="corrected", dataset="d", seeds=(0,)):
    """A runs table: one row per variant x fold x seed with the given F1 values (fold-major)."""
    rows = []
    for variant, vals in values.items():
        keys = [(f, s) for f in range(1, len(vals) // len(seeds) + 1) for s in seeds]
        for (fold, seed), v in zip(keys, vals):
            rows.append(
                {
                    "dataset": dataset,
                    "protocol": protocol,
                    "variant": variant,
                    "fold": fold,
                    "seed": seed,
                    "macro_f1": v,
                    "n_train": 80,
                    "n_test": 20,
                }
            )
    return pd.DataFrame(rows)


# --- primitives -----------------------------------------------------------------------------


def test_nadeau_bengio_t_matches_the_hand_formula():
    d, ratio = A - B, 20 / 80
    se = np.sqrt((1 / d.size + ratio) * d.var(ddof=1))
    t = d.mean() / se
    res = nadeau_bengio_ttest(d, ratio)
    assert res.t == pytest.approx(t) and res.df == d.size - 1
    assert res.p == pytest.approx(2 * sps.t.sf(abs(t), d.size - 1))
    greater = nadeau_bengio_ttest(d, ratio, Alternative.GREATER)
    assert greater.p == pytest.approx(sps.t.sf(t, d.size - 1))


def test_nadeau_bengio_without_correction_is_the_paired_t_test():
    ref = sps.ttest_rel(A, B)
    res = nadeau_bengio_ttest(A - B, 0.0)
    assert res.t == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    lo, hi = nadeau_bengio_ci(A - B, 0.0, 0.95)
    ci = ref.confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_the_correction_widens_the_interval_and_raises_p():
    plain, corrected = nadeau_bengio_ttest(A - B, 0.0), nadeau_bengio_ttest(A - B, 0.25)
    assert corrected.p > plain.p
    assert np.ptp(nadeau_bengio_ci(A - B, 0.25, 0.95)) > np.ptp(nadeau_bengio_ci(A - B, 0.0, 0.95))


def test_tost_paired_is_statsmodels_ttost_paired():
    p, (_, p1, _), (_, p2, _) = ttost_paired(A, B, -0.02, 0.02)
    assert tost_paired(A, B, 0.02) == pytest.approx((p, p1, p2))
    assert tost_nadeau_bengio(A - B, 0.0, 0.02) == pytest.approx((p, p1, p2))


def test_levene_is_scipy_median_centred():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0, 0.5, 200), rng.lognormal(0, 0.3, 200)
    ref = sps.levene(a, b, center="median")
    assert levene_median(a, b) == pytest.approx((ref.statistic, ref.pvalue))
    assert levene_median(a, b)[1] != pytest.approx(sps.levene(a, b, center="mean").pvalue)


def test_cohens_dz():
    d = A - B
    assert cohens_dz(d) == pytest.approx(d.mean() / d.std(ddof=1))


def test_holm_adjusts_in_order_and_keeps_nan():
    p = pd.Series([0.01, 0.04, np.nan, 0.03])
    adjusted, reject = holm(p, 0.05)
    expected = multipletests([0.01, 0.04, 0.03], alpha=0.05, method="holm")[1]
    assert adjusted[[0, 1, 3]].to_numpy() == pytest.approx(expected)
    # by hand: sorted 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; max(0.04 x 1, 0.06) = 0.06
    assert adjusted[[0, 3, 1]].to_numpy() == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(adjusted[2]) and pd.isna(reject[2]) and bool(reject[0])


def test_holm_equals_statsmodels_on_random_p_values():
    rng = np.random.default_rng(9)
    for m in (1, 2, 7, 30):
        p = pd.Series(rng.random(m) ** 3)
        adjusted, reject = holm(p, 0.05)
        ref_reject, ref, _, _ = multipletests(p.to_numpy(), alpha=0.05, method="holm")
        assert adjusted.to_numpy() == pytest.approx(ref) and reject.tolist() == ref_reject.tolist()


def test_add_holm_adjusts_within_each_family_and_protocol():
    frame = pd.DataFrame(
        {
            "family": ["a", "a", "b", "a"],
            "protocol": ["x", "x", "x", "y"],
            "p": [0.01, 0.02, 0.01, 0.01],
        }
    )
    out = add_holm(frame, "p", 0.05)
    assert out["p_holm"].tolist() == pytest.approx([0.02, 0.02, 0.01, 0.01])


def test_bootstrap_ci_is_seeded_and_degenerate_data_gives_nan():
    stat = lambda x, axis=-1: np.mean(x, axis=axis)  # noqa: E731
    first, second = bootstrap_ci((A,), stat, CFG), bootstrap_ci((A,), stat, CFG)
    assert first == second and first[0] < A.mean() < first[1]
    ref = sps.bootstrap((A,), np.mean, n_resamples=300, rng=np.random.default_rng(0))
    assert first == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert all(np.isnan(bootstrap_ci((np.ones(5),), stat, CFG)))


@pytest.mark.parametrize(
    "field, value",
    [
        ("alpha", 0.0),
        ("alpha", 0.6),
        ("tost_margin", 0.0),
        ("tost_margin", 1.5),
        ("f1_metric", "f2"),
        ("confidence", 1.0),
        ("n_resamples", 10),
    ],
)
def test_config_out_of_range_names_the_field(field, value):
    with pytest.raises(ConfigError, match=f"stats.{field}"):
        from_section(StatsConfig, {**section("stats"), field: value}, "stats")


# --- pairing by key -------------------------------------------------------------------------


def test_pairing_is_by_key_not_by_row_order():
    runs = runs_frame({"w4a8": list(A), "fp32": list(B)})
    shuffled = runs.sample(frac=1.0, random_state=3)
    p1 = pair_up(runs, Scope("d", "corrected"), "w4a8", "fp32", "macro_f1")
    p2 = pair_up(shuffled, Scope("d", "corrected"), "w4a8", "fp32", "macro_f1")
    assert p1.reason is None and p1.a.tolist() == list(A) and p1.b.tolist() == list(B)
    assert p2.keys == p1.keys and p2.a.tolist() == p1.a.tolist() and p2.b.tolist() == p1.b.tolist()
    assert p1.test_train_ratio == pytest.approx(0.25)


def test_incomplete_pairs_name_the_missing_keys():
    runs = runs_frame({"w4a8": list(A), "fp32": list(B)})
    runs = runs[~((runs["variant"] == "w4a8") & (runs["fold"] == 3))]
    paired = pair_up(runs, Scope("d", "corrected"), "w4a8", "fp32", "macro_f1")
    assert paired.reason == "incomplete pairs: w4a8 lacks macro_f1 for fold 3 seed 0"


def test_compare_reports_every_planned_pair_and_why_not():
    runs = runs_frame({"w4a8": list(A), "fp32": list(B), "w8a8": list(A[:4])})
    pairs = [Pair("f", "w4a8", "fp32"), Pair("f", "w8a8", "fp32"), Pair("f", "w2a8", "fp32")]
    out = comparisons.compare(runs, pairs, "macro_f1", CFG, Method.NADEAU_BENGIO)
    assert out["status"].tolist() == ["computed", "not computed", "not computed"]
    assert out.loc[1, "reason"] == "incomplete pairs: w8a8 lacks macro_f1 for fold 5 seed 0"
    assert out.loc[0, "n_pairs"] == 5 and out.loc[0, "df"] == 4
    assert out.loc[2, "reason"] == "no runs of w2a8 (variant not in the study)"
    res = nadeau_bengio_ttest(A - B, 0.25)
    assert out.loc[0, "t"] == pytest.approx(res.t) and out.loc[0, "p"] == pytest.approx(res.p)
    assert out.loc[0, "p_holm"] == pytest.approx(res.p)  # the only computed test of its family
    assert np.isnan(out.loc[1, "p_holm"])


def test_equal_scores_are_not_computed_rather_than_dividing_by_zero():
    runs = runs_frame({"w4a8": list(A), "fp32": list(A - 0.01)})
    out = comparisons.compare(
        runs, [Pair("f", "w4a8", "fp32")], "macro_f1", CFG, Method.NADEAU_BENGIO
    )
    assert out.loc[0, "status"] == "not computed" and "zero variance" in out.loc[0, "reason"]


def test_tost_verdict_flips_with_the_margin():
    runs = runs_frame({"w4a8": list(A), "fp32": list(B)})
    pair = [Pair("tost_f1", "w4a8", "fp32")]
    d = A - B
    lo, hi = nadeau_bengio_ci(d, 0.25, 1 - 2 * 0.05)  # the 90 % interval TOST inverts
    narrow = comparisons.equivalence(
        runs, pair, "macro_f1", config(StatsConfig, "stats", tost_margin=0.5 * hi)
    )
    assert narrow.loc[0, "ci_holm_low"] == pytest.approx(lo)  # the only test: Holm p = p
    wide_margin = config(StatsConfig, "stats", tost_margin=1.01 * max(-lo, hi))
    wide = comparisons.equivalence(runs, pair, "macro_f1", wide_margin)
    assert not bool(narrow.loc[0, "equivalent"]) and bool(wide.loc[0, "equivalent"])
    assert wide.loc[0, "p_tost"] == pytest.approx(
        ttost_paired(A, B, -wide.loc[0, "margin"], wide.loc[0, "margin"])[0]
    )
    assert (wide.loc[0, "ci_tost_low"], wide.loc[0, "ci_tost_high"]) == pytest.approx((lo, hi))


def _samples(sd_moe: float, sd_cur: float, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for variant, sd in (("moe", sd_moe), ("moe_curiosity_log", sd_cur)):
        for fold in (1, 2, 3, 4):
            rows.append(
                pd.DataFrame(
                    {
                        "dataset": "d",
                        "protocol": "corrected",
                        "variant": variant,
                        "fold": fold,
                        "seed": 0,
                        "latency_ms": 1 + sd * rng.standard_normal(n),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_seeds_are_averaged_within_each_fold_before_the_test():
    """3 seeds x 5 folds: the test runs on the 5 fold means (df = 4), not on 15 'resamples'."""
    rng = np.random.default_rng(5)
    a, b = 0.8 + 0.02 * rng.standard_normal(15), 0.8 + 0.02 * rng.standard_normal(15)
    runs = runs_frame({"w4a8": list(a), "fp32": list(b)}, seeds=(0, 1, 2))
    paired = pair_folds(runs, Scope("d", "corrected"), "w4a8", "fp32", "macro_f1")
    assert paired.keys == [(1,), (2,), (3,), (4,), (5,)] and paired.n_models == 15
    assert paired.a == pytest.approx(a.reshape(5, 3).mean(axis=1))
    out = comparisons.compare(
        runs, [Pair("f", "w4a8", "fp32")], "macro_f1", CFG, Method.NADEAU_BENGIO
    )
    d = a.reshape(5, 3).mean(axis=1) - b.reshape(5, 3).mean(axis=1)
    ref = nadeau_bengio_ttest(d, 0.25)
    row = out.iloc[0]
    assert (row["n_pairs"], row["n_models"], row["df"]) == (5, 15, 4)
    assert row["t"] == pytest.approx(ref.t) and row["p"] == pytest.approx(ref.p)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(nadeau_bengio_ci(d, 0.25, 0.95))


def test_ratio_interval_comes_from_per_fold_log_ratios():
    runs = runs_frame({"w4a8": list(A), "fp32": list(B)})
    out = comparisons.compare(
        runs, [Pair("f", "w4a8", "fp32")], "macro_f1", CFG, Method.NADEAU_BENGIO
    ).iloc[0]
    r = np.log(A / B)
    half = sps.t.ppf(0.975, 4) * np.sqrt((1 / 5 + 0.25) * r.var(ddof=1))
    assert out["ratio"] == pytest.approx(np.exp(r.mean()))
    assert (out["ratio_ci_low"], out["ratio_ci_high"]) == pytest.approx(
        (np.exp(r.mean() - half), np.exp(r.mean() + half))
    )
    assert out["p_ratio"] == pytest.approx(nadeau_bengio_ttest(r, 0.25).p)
    plain = log_ratio_test(A, B, 0.0, 0.95)  # measurements: plain paired t on the log-ratios
    ref = sps.ttest_1samp(r, 0.0)
    assert plain.p == pytest.approx(ref.pvalue)
    assert np.isnan(log_ratio_test(A, -B, 0.0, 0.95).ratio)  # a non-positive value: no ratio


def test_tost_interval_matches_the_holm_p_it_prints():
    """Two TOST rows in one family: each row's interval lies inside +-margin exactly when its
    Holm p < alpha (the unadjusted 90 % interval would disagree with the Holm p)."""
    rng = np.random.default_rng(11)
    base = 0.8 + 0.01 * rng.standard_normal(5)
    runs = runs_frame(
        {
            "fp32": list(base),
            "w4a8": list(base + 0.002 + 0.002 * rng.standard_normal(5)),
            "w8a8": list(base + 0.001 + 0.002 * rng.standard_normal(5)),
        }
    )
    pairs = [Pair("tost_f1", "w4a8", "fp32"), Pair("tost_f1", "w8a8", "fp32")]
    for margin in np.linspace(0.003, 0.02, 12):
        out = comparisons.equivalence(
            runs, pairs, "macro_f1", config(StatsConfig, "stats", tost_margin=margin)
        )
        for _, row in out.iterrows():
            inside = -margin < row["ci_holm_low"] and row["ci_holm_high"] < margin
            assert inside == (row["p_holm"] < 0.05), (margin, row.to_dict())
            assert row["holm_level"] >= 0.9 - 1e-12  # wider than the unadjusted 90 %


def test_smallest_showable_margin_is_where_tost_starts_to_reject():
    d, ratio = A - B, 0.25
    m = min_equivalence_margin(d, ratio, 0.05)
    assert (
        tost_nadeau_bengio(d, ratio, m * 1.001).p < 0.05 < tost_nadeau_bengio(d, ratio, m * 0.999).p
    )
    runs = runs_frame({"w4a8": list(A), "fp32": list(B)})
    row = comparisons.equivalence(runs, [Pair("t", "w4a8", "fp32")], "macro_f1", CFG).iloc[0]
    assert row["min_margin"] == pytest.approx(m) and row["resolution"] == pytest.approx(1 / 20)


def test_dispersion_compares_each_models_own_spread_at_the_fold_level():
    rng = np.random.default_rng(3)
    rows = []
    for variant, sd in (("moe", 0.2), ("moe_curiosity_log", 0.4)):
        for fold in (1, 2, 3, 4):
            for seed in (0, 1):
                level = 1 + 0.5 * fold  # model levels differ: pooling would add their spread
                rows.append(
                    pd.DataFrame(
                        {
                            "dataset": "d",
                            "protocol": "corrected",
                            "variant": variant,
                            "fold": fold,
                            "seed": seed,
                            "latency_ms": level + sd * rng.standard_normal(400),
                        }
                    )
                )
    samples = pd.concat(rows, ignore_index=True)
    out = variances.dispersion(
        samples, [Pair("v", "moe_curiosity_log", "moe")], "latency_ms", CFG
    ).iloc[0]
    var = samples.groupby(["variant", "fold", "seed"])["latency_ms"].var()
    logs = np.log(var).groupby(level=["variant", "fold"]).mean()
    r = logs["moe_curiosity_log"] - logs["moe"]
    assert out["variance_ratio"] == pytest.approx(np.exp(r.mean()))
    assert 3.2 < out["variance_ratio"] < 4.8 and out["df"] == 3 and out["n_models"] == 8
    assert out["p"] == pytest.approx(sps.ttest_1samp(r, 0.0).pvalue)
    assert 1.6 < out["iqr_ratio"] < 2.4 and 1.6 < out["mad_ratio"] < 2.4


def test_levene_family_on_pooled_samples_matches_scipy():
    samples = _samples(0.3, 0.1)
    out = variances.levene(samples, [Pair("v", "moe_curiosity_log", "moe")], "latency_ms", CFG)
    a = samples.loc[samples["variant"] == "moe_curiosity_log", "latency_ms"]
    b = samples.loc[samples["variant"] == "moe", "latency_ms"]
    ref = sps.levene(a, b, center="median")
    row = out.iloc[0]
    assert row["statistic"] == pytest.approx(ref.statistic)
    assert row["p"] == pytest.approx(ref.pvalue)
    ratio = a.var(ddof=1) / b.var(ddof=1)
    assert row["variance_ratio"] == pytest.approx(ratio)
    assert row["variance_reduction"] == pytest.approx(1 - ratio)
    assert row["std_reduction_reference"] == pytest.approx(1 - a.std(ddof=1) / b.std(ddof=1))
    assert row["variance_ratio_ci_low"] < ratio < row["variance_ratio_ci_high"]


def test_pooled_variance_from_moments_equals_numpy():
    x = np.random.default_rng(2).normal(size=(3, 50))
    n, s1, s2 = np.full(3, 50.0), x.sum(1), (x**2).sum(1)
    assert variances._pooled_var(n, s1, s2) == pytest.approx(x.ravel().var(ddof=1))


# --- the planned families and the reference's tables -----------------------------------------


@pytest.fixture
def study_runs(with_facts) -> pd.DataFrame:
    return with_facts(_study_runs())


def _study_runs() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for protocol, seeds in (("corrected", (0, 1)), ("faithful", (42,))):
        for variant in ("fp32", "w4a8", "w8a8", "q16_reference", "moe", "moe_curiosity_log"):
            for fold in (1, 2, 3):
                for seed in seeds:
                    rows.append(
                        {
                            "dataset": "d",
                            "protocol": protocol,
                            "variant": variant,
                            "fold": fold,
                            "seed": seed,
                            "macro_f1": 0.8 + 0.02 * rng.random(),
                            "n_train": 80,
                            "n_test": 20,
                            "n_params": 1.19e6,
                            "latency_median_ms": 0.2 + 0.01 * rng.random(),
                            "reference_fold_pass_s": 0.01 + 0.001 * rng.random(),
                            "energy_per_inference_mj": 0.3 + 0.1 * rng.random(),
                            "train_energy_kwh": 1e-5 * (1 + rng.random()),
                            "train_emissions_kg": 3e-6,
                            "train_seconds": 3.0,
                            "size_packed_bytes": 1000,
                        }
                    )
    return pd.DataFrame(rows)


def test_families_cover_every_planned_pair_for_every_scope(study_runs):
    runs = study_runs
    latency = runs[["dataset", "protocol", "variant", "fold", "seed"]].assign(
        runtime="onnxruntime", regime="warm"
    )  # qmoe.contract.benchmarks.load_samples' frame
    latency = pd.concat([latency.assign(latency_ms=1.0 + 0.1 * i) for i in range(3)])
    out = families.run_families(runs, latency, CFG)
    assert set(out["latency_dispersion"]["regime"]) == {"warm"}
    plan = families.plan(results.variant_facts(runs))
    assert len(out["f1_paired"]) == 2 * len(plan.f1)
    assert len(out["tost_f1"]) == 2 * len(plan.tost)
    computed = out["f1_paired"][out["f1_paired"]["status"] == "computed"]
    assert set(computed["variant"]) == {"w4a8", "w8a8", "q16_reference", "moe", "moe_curiosity_log"}


def test_the_plan_chooses_variants_by_their_facts(study_runs, config_of, with_facts):
    plan = families.plan(results.variant_facts(study_runs))
    assert [(p.variant, p.baseline) for p in plan.f1 if p.family == "f1_vs_q16_reference"] == [
        ("w4a8", "q16_reference"),
        ("w8a8", "q16_reference"),
    ]
    assert [(p.variant, p.baseline) for p in plan.tost] == [
        ("w4a8", "fp32"),
        ("w8a8", "fp32"),
        ("w4a8", "q16_reference"),
        ("w8a8", "q16_reference"),
    ]
    assert [p.variant for p in plan.f1_variance] == ["moe_curiosity_log"]
    assert [p.variant for p in plan.latency if p.family == "latency_moe_vs_w8a8"] == [
        "moe",
        "moe_curiosity_log",
    ]
    # w4a8 retrained at 2 bits: no 4-bit variant; the 4-bit vs 8-bit test names the missing role
    three = with_facts(_study_runs(), {"w4a8": config_of("w4a8", weight_bits=2)})
    plan3 = families.plan(results.variant_facts(three))
    assert plan3.energy[-1] == Pair("energy_w4a8_vs_w8a8", "4-bit BitLinear", "w8a8")
    out = comparisons.compare(
        three, plan3.energy[-1:], "energy_per_inference_mj", CFG, Method.PAIRED_T
    )
    assert set(out["reason"]) == {"no runs of 4-bit BitLinear (variant not in the study)"}


def test_reference_tables_fix_units_and_keep_both_variance_definitions(study_runs):
    runs = study_runs
    sig = reference_tables.significance_tables(runs, CFG)
    assert set(sig) == {
        "ref_table1_f1_significance",
        "ref_table2_f1_significance",
        "ref_table3_f1_significance",
        "ref_table4_latency_significance",
        "ref_table3_energy_significance",
        "ref_latency_variance_reduction",
    }
    t1 = sig["ref_table1_f1_significance"].set_index(["protocol", "variant"])
    sub = runs[runs["protocol"] == "corrected"].groupby(["variant", "fold"])["macro_f1"].mean()
    ref = sps.ttest_rel(sub["w4a8"], sub["fp32"], alternative="greater")  # on fold means
    assert t1.loc[("corrected", "w4a8"), "p"] == pytest.approx(ref.pvalue)
    assert sorted(t1.index.get_level_values("variant").unique()) == [
        "q16_reference",
        "w4a8",
        "w8a8",
    ]  # single models; not the fp32 baseline, no MoE
    energy = sig["ref_table3_energy_significance"]
    assert set(energy["metric"]) == {"train_energy_wh"}
    t6 = sig["ref_latency_variance_reduction"]
    row = t6[(t6["protocol"] == "corrected") & (t6["variant"] == "w4a8")].iloc[0]
    std_ratio = row["sd_variant"] / row["sd_baseline"]
    assert row["variance_reduction"] == pytest.approx(1 - std_ratio**2)
    assert row["std_reduction_reference"] == pytest.approx(1 - std_ratio)


def test_levene_with_a_constant_baseline_is_not_computed_with_a_reason():
    import pandas as pd

    from qmoe.analysis.comparisons import Pair
    from qmoe.analysis.stats import StatsConfig
    from qmoe.analysis.variances import levene

    rows = [
        {
            "dataset": "d",
            "protocol": "faithful",
            "variant": v,
            "fold": f,
            "seed": 42,
            "macro_f1": (1.0 if v == "fp32" else 0.8 + 0.01 * f),
        }
        for v in ("fp32", "w4a8")
        for f in range(1, 6)
    ]
    out = levene(
        pd.DataFrame(rows),
        [Pair("f1_variance", "w4a8", "fp32")],
        "macro_f1",
        config(StatsConfig, "stats"),
    )
    assert (out["status"] == "not computed").all()
    assert out["reason"].str.contains("fp32 values are all equal").all()

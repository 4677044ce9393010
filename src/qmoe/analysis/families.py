"""The planned test families of the `stats` stage (fixed here, before any result is seen).

Each family is a list of (variant, baseline) pairs over every known variant; pairs whose runs are
absent come back as "not computed" rows, so a smaller study shows what it did not test.
"""

from __future__ import annotations

import pandas as pd

from qmoe.analysis.comparisons import Method, Pair, compare, equivalence, levene
from qmoe.analysis.stats import StatsConfig
from qmoe.catalog import BITLINEAR_VARIANTS, CURIOSITY_VARIANTS, MOE_VARIANTS, VARIANTS

NON_BASE = [v for v in VARIANTS if v != "fp32"]

# fmt: off
METHODS = {
    "cv_scores": "Nadeau-Bengio corrected resampled t-test (Nadeau & Bengio 2003, Machine Learning "
                 "52:239-281), df = J - 1, paired by (dataset, fold, seed). Caveat: under the "
                 "corrected protocol the seeds share the official folds, so the J = folds x seeds "
                 "differences are not independent resamples; the correction is a heuristic",
    "equivalence": "TOST (Schuirmann 1987): statsmodels ttost_paired (plain paired t) and the same "
                   "two one-sided tests with the Nadeau-Bengio variance; equivalence is decided on "
                   "the corrected one, Holm-adjusted, with the margin fixed in params.yaml",
    "variance": "Brown-Forsythe test (scipy.stats.levene, center='median') on all per-inference "
                "latencies of the paired models; samples of one model are not independent, so "
                "the variance-ratio CI is a cluster bootstrap over models and p is optimistic",
    "measurements": "paired t-test (scipy.stats.ttest_rel) on per-model median latency and energy",
    "multiplicity": "Holm (statsmodels multipletests, method='holm') within each family x protocol",
    "intervals": "scipy.stats.bootstrap, BCa, seeded (stats.bootstrap_seed); t intervals for means",
}
# fmt: on


def _pairs(family: str, variants, baseline: str) -> list[Pair]:
    return [Pair(family, v, baseline) for v in variants if v != baseline]


F1_PAIRS = [
    *_pairs("f1_vs_fp32", NON_BASE, "fp32"),
    *_pairs("f1_vs_q16_reference", (*BITLINEAR_VARIANTS, "fp16"), "q16_reference"),
    *_pairs("f1_curiosity_vs_moe", CURIOSITY_VARIANTS, "moe"),
    *_pairs("f1_moe_vs_w8a8", MOE_VARIANTS, "w8a8"),  # the "no accuracy gain" claim
]
TOST_PAIRS = [Pair("tost_f1", v, b) for b in ("fp32", "q16_reference") for v in ("w4a8", "w8a8")]
LATENCY_LEVENE_PAIRS = [
    *_pairs("latency_levene_curiosity_vs_moe", CURIOSITY_VARIANTS, "moe"),
    *_pairs("latency_levene_vs_fp32", NON_BASE, "fp32"),
]
LATENCY_PAIRS = [
    *_pairs("latency_vs_fp32", NON_BASE, "fp32"),
    *_pairs("latency_moe_vs_w8a8", MOE_VARIANTS, "w8a8"),  # the "+11 % MoE overhead" claim
    *_pairs("latency_curiosity_vs_moe", CURIOSITY_VARIANTS, "moe"),
]
ENERGY_PAIRS = [
    *_pairs("energy_vs_fp32", NON_BASE, "fp32"),
    Pair("energy_w4a8_vs_w8a8", "w4a8", "w8a8"),  # the "41 % / 31 % saving" claim
]
F1_VARIANCE_PAIRS = _pairs("f1_variance_curiosity_vs_moe", CURIOSITY_VARIANTS, "moe")
FOLD_LATENCY_PAIRS = [
    *_pairs(
        "fold_latency_levene_vs_fp32", (*BITLINEAR_VARIANTS, "q16_reference", *MOE_VARIANTS), "fp32"
    ),
    *_pairs("fold_latency_levene_curiosity_vs_moe", CURIOSITY_VARIANTS, "moe"),
]


def fold_samples(runs: pd.DataFrame, value: str) -> pd.DataFrame:
    """One 'sample' per model: the runs table's `value` as a samples frame for `levene`."""
    return runs[["dataset", "protocol", "variant", "fold", "seed", value]].dropna(subset=[value])


def run_families(
    runs: pd.DataFrame, latency: pd.DataFrame, cfg: StatsConfig
) -> dict[str, pd.DataFrame]:
    """Every family's table, by output name (reports/stats/<name>.csv)."""
    f1 = cfg.f1_metric
    fold_pass = runs.assign(reference_fold_pass_ms=runs["reference_fold_pass_s"] * 1e3)
    return {
        "f1_paired": compare(runs, F1_PAIRS, f1, cfg, Method.NADEAU_BENGIO),
        "tost_f1": equivalence(runs, TOST_PAIRS, f1, cfg),
        "latency_levene": levene(latency, LATENCY_LEVENE_PAIRS, "latency_ms", cfg),
        "latency_paired": compare(runs, LATENCY_PAIRS, "latency_median_ms", cfg, Method.PAIRED_T),
        "energy_inference_paired": compare(
            runs, ENERGY_PAIRS, "energy_per_inference_mj", cfg, Method.PAIRED_T
        ),
        "energy_train_paired": compare(
            runs, ENERGY_PAIRS, "train_energy_kwh", cfg, Method.PAIRED_T
        ),
        "f1_variance_levene": levene(fold_samples(runs, f1), F1_VARIANCE_PAIRS, f1, cfg),
        "fold_latency_levene": levene(
            fold_samples(fold_pass, "reference_fold_pass_ms"),
            FOLD_LATENCY_PAIRS,
            "reference_fold_pass_ms",
            cfg,
        ),
    }

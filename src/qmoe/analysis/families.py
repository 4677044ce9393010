"""The planned test families of the `stats` stage (fixed here, before any result is seen).

Each family is a list of (variant, baseline) pairs over the study's variants, chosen by their
facts (`qmoe.analysis.roles`: kind, bit-width, MoE-ness, curiosity from each run's config, never
the name). A baseline no variant of the study plays is named by its role, and pairs whose runs
are absent or incomplete come back as "not computed" rows, so a smaller study shows what it did
not test.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from qmoe.analysis import roles
from qmoe.analysis.comparisons import Method, Pair, compare, equivalence, levene
from qmoe.analysis.results import variant_facts
from qmoe.analysis.stats import StatsConfig

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


class Plan(NamedTuple):
    """The pairs of each family, for one study (its variants' facts)."""

    f1: list[Pair]
    tost: list[Pair]
    latency_levene: list[Pair]
    latency: list[Pair]
    energy: list[Pair]
    f1_variance: list[Pair]
    fold_latency: list[Pair]


def plan(facts: pd.DataFrame) -> Plan:
    """Every family's pairs; facts: `results.variant_facts` of the runs table."""
    fp32, q16, q4, q8, moe = (roles.resolve(r, facts) for r in
                              (roles.FP32, roles.Q16, roles.Q4, roles.Q8, roles.PLAIN_MOE))
    others = [v for v in roles.members(facts) if v != fp32]
    bitlinear = roles.members(facts, kind="bitlinear")
    mixtures, curious = roles.members(facts, moe=True), roles.members(facts, curious=True)
    return Plan(
        f1=[*_pairs("f1_vs_fp32", others, fp32),
            *_pairs("f1_vs_q16_reference", (*bitlinear, *roles.members(facts, kind="half")), q16),
            *_pairs("f1_curiosity_vs_moe", curious, moe),
            *_pairs("f1_moe_vs_w8a8", mixtures, q8)],  # the "no accuracy gain" claim
        tost=[Pair("tost_f1", v, b) for b in (fp32, q16) for v in (q4, q8)],
        latency_levene=[*_pairs("latency_levene_curiosity_vs_moe", curious, moe),
                        *_pairs("latency_levene_vs_fp32", others, fp32)],
        latency=[*_pairs("latency_vs_fp32", others, fp32),
                 *_pairs("latency_moe_vs_w8a8", mixtures, q8),  # the "+11 % MoE overhead" claim
                 *_pairs("latency_curiosity_vs_moe", curious, moe)],
        energy=[*_pairs("energy_vs_fp32", others, fp32),
                Pair("energy_w4a8_vs_w8a8", q4, q8)],  # the "41 % / 31 % saving" claim
        f1_variance=_pairs("f1_variance_curiosity_vs_moe", curious, moe),
        fold_latency=[*_pairs("fold_latency_levene_vs_fp32",
                              (*bitlinear, *roles.members(facts, kind="q16_reference"),
                               *mixtures), fp32),
                      *_pairs("fold_latency_levene_curiosity_vs_moe", curious, moe)],
    )


def fold_samples(runs: pd.DataFrame, value: str) -> pd.DataFrame:
    """One 'sample' per model: the runs table's `value` as a samples frame for `levene`."""
    return runs[["dataset", "protocol", "variant", "fold", "seed", value]].dropna(subset=[value])


def run_families(
    runs: pd.DataFrame, latency: pd.DataFrame, cfg: StatsConfig
) -> dict[str, pd.DataFrame]:
    """Every family's table, by output name (reports/stats/<name>.csv)."""
    f1, pairs = cfg.f1_metric, plan(variant_facts(runs))
    fold_pass = runs.assign(reference_fold_pass_ms=runs["reference_fold_pass_s"] * 1e3)
    return {
        "f1_paired": compare(runs, pairs.f1, f1, cfg, Method.NADEAU_BENGIO),
        "tost_f1": equivalence(runs, pairs.tost, f1, cfg),
        "latency_levene": levene(latency, pairs.latency_levene, "latency_ms", cfg),
        "latency_paired": compare(runs, pairs.latency, "latency_median_ms", cfg, Method.PAIRED_T),
        "energy_inference_paired": compare(
            runs, pairs.energy, "energy_per_inference_mj", cfg, Method.PAIRED_T
        ),
        "energy_train_paired": compare(
            runs, pairs.energy, "train_energy_kwh", cfg, Method.PAIRED_T
        ),
        "f1_variance_levene": levene(fold_samples(runs, f1), pairs.f1_variance, f1, cfg),
        "fold_latency_levene": levene(
            fold_samples(fold_pass, "reference_fold_pass_ms"),
            pairs.fold_latency,
            "reference_fold_pass_ms",
            cfg,
        ),
    }

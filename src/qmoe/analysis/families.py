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
from qmoe.analysis.comparisons import Method, Pair, compare, equivalence
from qmoe.analysis.latency import TEST as ROUND_TEST
from qmoe.analysis.latency import compare_rounds
from qmoe.analysis.moe_forms import decompose
from qmoe.analysis.names import Family, Table, twin
from qmoe.analysis.results import variant_facts
from qmoe.analysis.stats import StatsConfig
from qmoe.analysis.variances import dispersion, levene

# fmt: off
METHODS = {
    "units": "the fold is the unit of every between-variant test: models are paired by (dataset, "
             "fold, seed), then the seeds are averaged within each fold (they share its test "
             "clips and training part), so J = K folds and df = K - 1",
    "cv_scores": "Nadeau-Bengio corrected resampled t-test (Nadeau & Bengio 2003, Machine Learning "
                 "52:239-281) on the K fold means: se = sqrt((1/K + n_test/n_train) s^2), df = "
                 "K - 1; a seeded simulation (tests/analysis/test_simulation.py) checks its type-I "
                 "error and coverage for within-fold seed correlations 0 to 0.9",
    "equivalence": "TOST (Schuirmann 1987) on fold means: statsmodels ttost_paired (plain paired "
                   "t) and the same two one-sided tests with the Nadeau-Bengio variance; "
                   "equivalence is decided on the corrected one, Holm-adjusted, with the margin "
                   "fixed in params.yaml. The interval shown is the one matching the Holm p "
                   "(level 1 - 2 alpha p / p_holm); min_margin is the smallest margin the data "
                   "could have shown at alpha (unadjusted), resolution = 1 / test clips",
    "ratios": "ratios and savings: exp of the mean per-fold log-ratio, with the t interval of "
              "that mean (corrected variance for F1); no bootstrap over 5 folds (BCa on 5 values "
              "under-covers)",
    "dispersion": "variance claims compare per-model dispersions: each model's own variance, "
                  "IQR and MAD of its per-inference latencies, averaged on the log scale within "
                  "each fold, paired t on per-fold log-ratios (no pooling of autocorrelated "
                  "samples across models)",
    "variance": "Brown-Forsythe test (scipy.stats.levene, center='median'): on fold means (one "
                "value per fold, F interval for the ratio) for cross-fold F1 and fold-pass time; "
                "on pooled per-inference samples only in the reference-style table (cluster "
                "bootstrap over models; p optimistic)",
    "measurements": "paired t-test on fold means of per-model energy; the log-ratio test for "
                    "ratios",
    "latency": "median latency ratios " + ROUND_TEST + ": each timed block's median (the "
               "benchmark's rounds.csv), per round the log-ratio of variant to baseline on the "
               "same fold, averaged over folds; ratio = exp(median over rounds), order-statistic "
               "interval of the median, sign test (the benchmark interleaves every variant in "
               "each round, so slow drift cancels; the median resists a round that ran one "
               "variant at another speed); every latency test is computed in each cache regime "
               "timed (warm, after_backbone), under the protocol's runtime (faithful: torch eager "
               "on the fake-quantised training modules, as the reference timed them; corrected: "
               "the ONNX Runtime artefacts)",
    "multiplicity": "Holm (statsmodels multipletests, method='holm') within each family x protocol "
                    "(x cache regime for latency)",
    "same_weights": "uncertainty routing on each route model's own weights: F1 escalating the "
                    "clips u picks against random sets of as many test clips (a one-sided "
                    "permutation test on the mean over models; p = (1 + hits) / (1 + draws), "
                    "exact where every set can be enumerated; Holm over the route variants), "
                    "against none, and u's AUROC for the unescalated model's errors "
                    "(qmoe.analysis.escalation); conditional on the trained weights, so it says "
                    "whether u picks better clips, not how route trains",
}
# fmt: on


def _pairs(family: str, variants, baseline: str) -> list[Pair]:
    return [Pair(family, v, baseline) for v in variants if v != baseline]


class Plan(NamedTuple):
    """The pairs of each family, for one study (its variants' facts)."""

    f1: list[Pair]
    tost: list[Pair]
    latency_levene: list[Pair]
    latency_dispersion: list[Pair]
    latency: list[Pair]
    moe_forms: list[Pair]
    energy: list[Pair]
    f1_variance: list[Pair]
    fold_latency: list[Pair]


class _Cast(NamedTuple):
    """The study's variants by the part they play (`qmoe.analysis.roles`)."""

    fp32: str
    q16: str
    q4: str
    q8: str
    moe: str
    others: list[str]  # every variant but the FP32 baseline
    bitlinear: list[str]
    half: list[str]
    q16_kind: list[str]
    mixtures: list[str]
    curious: list[str]


def _cast(facts: pd.DataFrame) -> _Cast:
    fp32, q16, q4, q8, moe = (
        roles.resolve(r, facts)
        for r in (roles.FP32, roles.Q16, roles.Q4, roles.Q8, roles.PLAIN_MOE)
    )
    return _Cast(
        *(fp32, q16, q4, q8, moe),
        others=[v for v in roles.members(facts) if v != fp32],
        bitlinear=roles.members(facts, kind="bitlinear"),
        half=roles.members(facts, kind="half"),
        q16_kind=roles.members(facts, kind="q16_reference"),
        mixtures=roles.members(facts, moe=True),
        curious=roles.members(facts, curious=True),
    )


def plan(facts: pd.DataFrame) -> Plan:
    """Every family's pairs; facts: `results.variant_facts` of the runs table. Route is judged
    against random escalation on its own weights (qmoe.analysis.escalation), and against the
    plain MoE with the other curiosity modes here."""
    c, F = _cast(facts), Family
    return Plan(
        f1=[
            *_pairs(F.F1_VS_FP32, c.others, c.fp32),
            *_pairs(F.F1_VS_Q16, (*c.bitlinear, *c.half), c.q16),
            *_pairs(F.F1_CURIOSITY_VS_MOE, c.curious, c.moe),
            *_pairs(F.F1_MOE_VS_W8A8, c.mixtures, c.q8),  # the "no accuracy gain" claim
        ],
        tost=[Pair(F.TOST_F1, v, b) for b in (c.fp32, c.q16) for v in (c.q4, c.q8)],
        latency_levene=[
            *_pairs(F.LATENCY_LEVENE_CURIOSITY_VS_MOE, c.curious, c.moe),
            *_pairs(F.LATENCY_LEVENE_VS_FP32, c.others, c.fp32),
        ],
        latency_dispersion=[
            *_pairs(F.LATENCY_DISPERSION_CURIOSITY_VS_MOE, c.curious, c.moe),
            *_pairs(F.LATENCY_DISPERSION_VS_FP32, c.others, c.fp32),
        ],
        latency=[
            *_pairs(F.LATENCY_VS_FP32, c.others, c.fp32),
            *_pairs(F.LATENCY_MOE_VS_W8A8, c.mixtures, c.q8),  # the "+11 % MoE overhead" claim
            Pair(F.LATENCY_W4A8_VS_W8A8, c.q4, c.q8),  # the latency form of the energy claims
            *_pairs(F.LATENCY_CURIOSITY_VS_MOE, c.curious, c.moe),
        ],
        moe_forms=_pairs(F.LATENCY_MOE_FORMS_VS_W8A8, c.mixtures, c.q8),  # overhead, decomposed
        energy=[  # the "41 % / 31 % saving" claim
            *_pairs(F.ENERGY_VS_FP32, c.others, c.fp32),
            Pair(F.ENERGY_W4A8_VS_W8A8, c.q4, c.q8),
        ],
        f1_variance=_pairs(F.F1_VARIANCE_CURIOSITY_VS_MOE, c.curious, c.moe),
        fold_latency=[
            *_pairs(
                F.FOLD_LATENCY_LEVENE_VS_FP32, (*c.bitlinear, *c.q16_kind, *c.mixtures), c.fp32
            ),
            *_pairs(F.FOLD_LATENCY_LEVENE_CURIOSITY_VS_MOE, c.curious, c.moe),
        ],
    )


def fold_samples(runs: pd.DataFrame, value: str) -> pd.DataFrame:
    """One 'sample' per fold: the mean of `value` over the fold's seeds, as a samples frame for
    `levene` (seed column 0: all seeds). A fold with fewer seeds than its (dataset, protocol)
    trains is left out, so the comparison names it as missing instead of averaging fewer."""
    keys = ["dataset", "protocol", "variant", "fold"]
    have = runs[[*keys, "seed", value]].dropna(subset=[value])
    grouped = have.groupby(keys, as_index=False).agg(
        **{value: (value, "mean"), "_n": ("seed", "nunique")}
    )
    full = runs.groupby(["dataset", "protocol"])["seed"].nunique().rename("_full").reset_index()
    grouped = grouped.merge(full, on=["dataset", "protocol"])
    kept = grouped[grouped["_n"] == grouped["_full"]]
    return kept.assign(seed=0)[[*keys, "seed", value]].reset_index(drop=True)


def per_regime(samples: pd.DataFrame, test) -> pd.DataFrame:
    """`test(samples of one regime)` for every cache regime of `samples` (qmoe.analysis.latency
    .load_samples), with `runtime` and `regime` columns; Holm then runs within each regime."""
    parts = []
    for (runtime, regime), part in samples.groupby(["runtime", "regime"], sort=True):
        found = test(part.drop(columns=["runtime", "regime"]))
        parts.append(found.assign(runtime=runtime, regime=regime))
    return pd.concat(parts, ignore_index=True) if parts else test(samples)


def run_families(
    runs: pd.DataFrame,
    latency: pd.DataFrame,
    cfg: StatsConfig,
    rounds: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Every family's table, by output name (reports/stats/<name>.csv). `latency`: per-inference
    samples (qmoe.contract.benchmarks.load_samples); `rounds`: the benchmarks' rounds.csv
    (qmoe.analysis.latency.load_bench_table): latency ratios are paired by round with it, by fold
    means of per-model medians without it."""
    f1, pairs = cfg.f1_metric, plan(variant_facts(runs))
    fold_pass = runs.assign(reference_fold_pass_ms=runs["reference_fold_pass_s"] * 1e3)
    energy = lambda v: compare(runs, pairs.energy, v, cfg, Method.PAIRED_T)  # noqa: E731
    out = deployed_twins(runs, pairs, cfg) | {
        Table.F1_PAIRED: compare(runs, pairs.f1, f1, cfg, Method.NADEAU_BENGIO),
        Table.TOST_F1: equivalence(runs, pairs.tost, f1, cfg),
        **_latency_tables(runs, latency, rounds, pairs, cfg),
        Table.ENERGY_INFERENCE_PAIRED: energy("energy_per_inference_mj"),
        Table.ENERGY_TRAIN_PAIRED: energy("train_energy_kwh"),
        Table.F1_VARIANCE_LEVENE: levene(fold_samples(runs, f1), pairs.f1_variance, f1, cfg),
        Table.FOLD_LATENCY_LEVENE: levene(
            fold_samples(fold_pass, "reference_fold_pass_ms"),
            pairs.fold_latency,
            "reference_fold_pass_ms",
            cfg,
        ),
    }
    if rounds is not None:
        out[Table.LATENCY_MOE_FORMS] = decompose(rounds, runs, pairs.moe_forms, cfg)
    return out


def _latency_tables(
    runs: pd.DataFrame,
    latency: pd.DataFrame,
    rounds: pd.DataFrame | None,
    pairs: Plan,
    cfg: StatsConfig,
) -> dict[str, pd.DataFrame]:
    """The per-inference spread families, per cache regime, and the paired latency ratios."""
    value = "latency_ms"
    return {
        Table.LATENCY_DISPERSION: per_regime(
            latency, lambda s: dispersion(s, pairs.latency_dispersion, value, cfg)
        ),
        Table.LATENCY_LEVENE: per_regime(
            latency, lambda s: levene(s, pairs.latency_levene, value, cfg)
        ),
        Table.LATENCY_PAIRED: (
            compare_rounds(rounds, runs, pairs.latency, cfg)
            if rounds is not None
            else compare(runs, pairs.latency, "latency_median_ms", cfg, Method.PAIRED_T)
        ),
    }


def deployed_twins(runs: pd.DataFrame, pairs: Plan, cfg: StatsConfig) -> dict[str, pd.DataFrame]:
    """The F1 families again on the deployed artefacts' F1 (`deployed_<f1_metric>`, one call per
    test clip), each its own table (its own Holm): shown beside the training form's, which the
    claims are judged on. None where the runs table has no such column."""
    col = f"deployed_{cfg.f1_metric}"
    if col not in runs or runs[col].isna().all():
        return {}
    return {
        twin(Table.F1_PAIRED): compare(runs, pairs.f1, col, cfg, Method.NADEAU_BENGIO),
        twin(Table.TOST_F1): equivalence(runs, pairs.tost, col, cfg),
        twin(Table.F1_VARIANCE_LEVENE): levene(
            fold_samples(runs, col), pairs.f1_variance, col, cfg
        ),
    }

"""Families of paired comparisons on the runs table and on latency samples, one row per test.

Every planned comparison yields a row, computed or not (with the reason); Holm adjusts the
p-values within each family and protocol. The families themselves (who is compared with whom)
are listed in `qmoe.analysis.families`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from qmoe.analysis.stats import (
    COMPUTED,
    NOT_COMPUTED,
    Alternative,
    Paired,
    Scope,
    StatsConfig,
    add_holm,
    bootstrap_ci,
    cohens_dz,
    levene_median,
    nadeau_bengio_ci,
    nadeau_bengio_ttest,
    pair_up,
    scopes,
    tost_nadeau_bengio,
    tost_paired,
)


class Method(Enum):
    NADEAU_BENGIO = "nadeau_bengio_corrected_t"  # scores from cross-validation
    PAIRED_T = "paired_t"  # measurements of fixed models (latency, energy)


class Pair(NamedTuple):
    family: str
    variant: str
    baseline: str


def _mean_diff(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(d, axis=axis)


def _ratio_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) / np.mean(b, axis=axis)


def _base_row(pair: Pair, scope: Scope, value: str) -> dict:
    return {
        "family": pair.family,
        "dataset": scope.dataset or "all",
        "protocol": scope.protocol,
        "metric": value,
        "variant": pair.variant,
        "baseline": pair.baseline,
    }


def _unusable(paired: Paired) -> str | None:
    if paired.reason:
        return paired.reason
    if len(paired.keys) < 2:
        return f"only {len(paired.keys)} pair(s); a paired test needs 2 or more"
    if np.ptp(paired.a - paired.b) == 0:
        return "the paired differences are all equal (zero variance): t is undefined"
    return None


def _paired_stats(paired: Paired, test: Method, alternative: Alternative, cfg: StatsConfig) -> dict:
    d = paired.a - paired.b
    if test is Method.NADEAU_BENGIO:
        t, df, p = nadeau_bengio_ttest(d, paired.test_train_ratio, alternative)
        low, high = nadeau_bengio_ci(d, paired.test_train_ratio, cfg.confidence)
    else:
        res = sps.ttest_rel(paired.a, paired.b, alternative=alternative.value)
        t, df, p = float(res.statistic), int(res.df), float(res.pvalue)
        ci = sps.ttest_rel(paired.a, paired.b).confidence_interval(cfg.confidence)
        low, high = float(ci.low), float(ci.high)
    boot = bootstrap_ci((d,), _mean_diff, cfg)
    ratio = bootstrap_ci((paired.a, paired.b), _ratio_of_means, cfg)
    return {
        "mean_diff": float(d.mean()),
        "ci_low": low,
        "ci_high": high,
        "boot_ci_low": boot[0],
        "boot_ci_high": boot[1],
        "ratio": float(paired.a.mean() / paired.b.mean()),
        "ratio_ci_low": ratio[0],
        "ratio_ci_high": ratio[1],
        "t": t,
        "df": df,
        "p": p,
        "cohens_dz": cohens_dz(d),
        "test_train_ratio": paired.test_train_ratio,
    }


def compare(
    table: pd.DataFrame,
    pairs: Iterable[Pair],
    value: str,
    cfg: StatsConfig,
    test: Method,
    alternative: Alternative = Alternative.TWO_SIDED,
    pooled: bool = False,
) -> pd.DataFrame:
    """Paired test of `value` for each pair in each (dataset, protocol) scope, Holm-adjusted."""
    rows = []
    for scope in scopes(table, pooled):
        for pair in pairs:
            paired = pair_up(table, scope, pair.variant, pair.baseline, value)
            row = {
                **_base_row(pair, scope, value),
                "test": test.value,
                "alternative": alternative.value,
                "n_pairs": len(paired.keys),
            }
            if not paired.reason:
                row.update(
                    mean_variant=float(paired.a.mean()),
                    mean_baseline=float(paired.b.mean()),
                    sd_variant=float(np.std(paired.a, ddof=1)) if len(paired.a) > 1 else np.nan,
                    sd_baseline=float(np.std(paired.b, ddof=1)) if len(paired.b) > 1 else np.nan,
                )
            reason = _unusable(paired)
            row.update(status=NOT_COMPUTED if reason else COMPUTED, reason=reason or "")
            if not reason:
                row.update(_paired_stats(paired, test, alternative, cfg))
            rows.append(row)
    return add_holm(pd.DataFrame(rows).reindex(columns=_COMPARE_COLUMNS), "p", cfg.alpha)


_COMPARE_COLUMNS = ["family", "dataset", "protocol", "metric", "variant", "baseline", "test",
    "alternative", "status", "reason", "n_pairs", "mean_variant", "mean_baseline", "sd_variant",
    "sd_baseline", "mean_diff", "ci_low", "ci_high", "boot_ci_low", "boot_ci_high", "ratio",
    "ratio_ci_low", "ratio_ci_high", "t", "df", "p", "cohens_dz", "test_train_ratio"]


def equivalence(
    table: pd.DataFrame, pairs: Iterable[Pair], value: str, cfg: StatsConfig
) -> pd.DataFrame:
    """TOST of |mean(variant - baseline)| < margin: statsmodels' plain paired version and the
    Nadeau-Bengio corrected one, each Holm-adjusted; `equivalent` uses the corrected one."""
    rows = []
    for scope in scopes(table):
        for pair in pairs:
            paired = pair_up(table, scope, pair.variant, pair.baseline, value)
            reason = _unusable(paired)
            row = {
                **_base_row(pair, scope, value),
                "margin": cfg.tost_margin,
                "n_pairs": len(paired.keys),
                "status": NOT_COMPUTED if reason else COMPUTED,
                "reason": reason or "",
            }
            if not reason:
                d = paired.a - paired.b
                low, high = nadeau_bengio_ci(d, paired.test_train_ratio, 1 - 2 * cfg.alpha)
                row.update(
                    mean_variant=float(paired.a.mean()),
                    mean_baseline=float(paired.b.mean()),
                    mean_diff=float(d.mean()),
                    ci_tost_low=low,
                    ci_tost_high=high,
                    p_tost=tost_paired(paired.a, paired.b, cfg.tost_margin).p,
                    p_tost_nb=tost_nadeau_bengio(d, paired.test_train_ratio, cfg.tost_margin).p,
                    test_train_ratio=paired.test_train_ratio,
                )
            rows.append(row)
    cols = ["family", "dataset", "protocol", "metric", "variant", "baseline", "margin", "status",
        "reason", "n_pairs", "mean_variant", "mean_baseline", "mean_diff", "ci_tost_low",
        "ci_tost_high", "p_tost", "p_tost_nb", "test_train_ratio"]
    frame = add_holm(pd.DataFrame(rows).reindex(columns=cols), "p_tost", cfg.alpha, "plain_")
    frame = add_holm(frame, "p_tost_nb", cfg.alpha)
    frame["equivalent"] = frame["reject_holm"]
    return frame


# --- variances: Levene on samples, cluster bootstrap over models ----------------------------


def _pooled_var(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, axis: int = -1) -> np.ndarray:
    """Variance (ddof 1) of all samples of the chosen models, from per-model n, sum, sum of squares
    (arrays (..., n_models))."""
    big_n, total, total_sq = n.sum(axis), s1.sum(axis), s2.sum(axis)
    return (total_sq - total**2 / big_n) / (big_n - 1)


def _variance_ratio(na, s1a, s2a, nb, s1b, s2b, axis: int = -1) -> np.ndarray:
    return _pooled_var(na, s1a, s2a, axis) / _pooled_var(nb, s1b, s2b, axis)


def _moments(
    samples: pd.DataFrame, keys: list[tuple], cols: list[str], value: str
) -> list[np.ndarray]:
    grouped = samples.groupby(cols)[value]
    n, s1 = grouped.count(), grouped.sum()
    s2 = grouped.apply(lambda x: float(np.sum(np.square(x))))
    return [s.loc[keys].to_numpy(float) for s in (n, s1, s2)]


def variance_ratio_ci(
    samples: pd.DataFrame,
    keys: list[tuple],
    cols: list[str],
    variant: str,
    baseline: str,
    value: str,
    cfg: StatsConfig,
) -> tuple[float, float]:
    """Cluster (model-level) bootstrap CI of var(variant) / var(baseline): models are resampled
    as paired units, because samples of one model are not independent of each other."""
    a = _moments(samples[samples["variant"] == variant], keys, cols, value)
    b = _moments(samples[samples["variant"] == baseline], keys, cols, value)
    return bootstrap_ci((*a, *b), _variance_ratio, cfg)


def levene(
    samples: pd.DataFrame, pairs: Iterable[Pair], value: str, cfg: StatsConfig, pooled: bool = False
) -> pd.DataFrame:
    """Brown-Forsythe test of var(variant) = var(baseline) on all samples of the common models
    (samples: rows of dataset, protocol, variant, fold, seed, `value`), Holm-adjusted."""
    rows = []
    for scope in scopes(samples, pooled):
        present = (
            scope.select(samples)
            .groupby(["dataset", "variant", "fold", "seed"], as_index=False)[value]
            .count()
        )
        present = present.assign(protocol=scope.protocol, n=present[value])
        for pair in pairs:
            paired = pair_up(present, scope, pair.variant, pair.baseline, "n")
            row = {
                **_base_row(pair, scope, value),
                "test": "levene_median",
                "n_models": len(paired.keys),
            }
            reason = paired.reason or (
                None
                if len(paired.keys) >= 2
                else f"only {len(paired.keys)} model(s); need 2 or more"
            )
            if not reason:
                stats = _levene_stats(
                    scope.select(samples), paired.keys, scope.key_cols, pair, value, cfg
                )
                if stats is None:
                    reason = (f"{pair.baseline} values are all equal: the variance ratio is "
                              "undefined")
                else:
                    row.update(stats)
            row.update(status=NOT_COMPUTED if reason else COMPUTED, reason=reason or "")
            rows.append(row)
    cols = ["family", "dataset", "protocol", "metric", "variant", "baseline", "test", "status",
        "reason", "n_models", "n_variant", "n_baseline", "sd_variant", "sd_baseline",
        "variance_ratio", "variance_ratio_ci_low", "variance_ratio_ci_high", "variance_reduction",
        "std_reduction_reference", "statistic", "p"]
    return add_holm(pd.DataFrame(rows).reindex(columns=cols), "p", cfg.alpha)


def _levene_stats(
    samples: pd.DataFrame,
    keys: list[tuple],
    cols: list[str],
    pair: Pair,
    value: str,
    cfg: StatsConfig,
) -> dict | None:
    """Brown-Forsythe statistics, or None when the baseline has zero variance."""
    chosen = samples.merge(pd.DataFrame(keys, columns=cols), on=cols, how="inner")
    a = chosen.loc[chosen["variant"] == pair.variant, value].dropna().to_numpy(float)
    b = chosen.loc[chosen["variant"] == pair.baseline, value].dropna().to_numpy(float)
    sd_a, sd_b = float(np.std(a, ddof=1)), float(np.std(b, ddof=1))
    if not sd_b > 0:
        return None
    stat, p = levene_median(a, b)
    low, high = variance_ratio_ci(samples, keys, cols, pair.variant, pair.baseline, value, cfg)
    ratio = sd_a**2 / sd_b**2
    return {
        "n_variant": a.size,
        "n_baseline": b.size,
        "sd_variant": sd_a,
        "sd_baseline": sd_b,
        "variance_ratio": ratio,
        "variance_ratio_ci_low": low,
        "variance_ratio_ci_high": high,
        # the reference's "variance reduction" is 1 - a ratio of standard deviations (11.2)
        "variance_reduction": 1 - ratio,
        "std_reduction_reference": 1 - sd_a / sd_b,
        "statistic": stat,
        "p": p,
    }

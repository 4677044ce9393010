"""The variance families: per-model dispersion and Brown-Forsythe (Levene) tests of
var(variant) = var(baseline), one row per test (`qmoe.analysis.comparisons.family_rows`).

A model's latency samples are autocorrelated and models differ in level, so dispersion compares
each model's own spread at the fold level; Levene on pooled samples is kept for the
reference-style tables (cluster bootstrap over models for its interval).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats as sps

from qmoe.analysis.comparisons import BASE_COLUMNS, Pair, family_rows, status, unusable
from qmoe.analysis.pairing import Paired, Scope, pair_folds, pair_up, scopes
from qmoe.analysis.stats import (
    StatsConfig,
    add_holm,
    bootstrap_ci,
    levene_median,
    nadeau_bengio_ci,
    nadeau_bengio_ttest,
)

_RATIOS = [f"{m}_ratio{s}" for m in ("variance", "iqr", "mad") for s in ("", "_ci_low", "_ci_high")]
_DISPERSION_COLUMNS = [
    *BASE_COLUMNS,
    *"test status reason n_pairs n_models sd_variant sd_baseline".split(),
    *_RATIOS,
    *"variance_reduction std_reduction_reference t df p".split(),
]
_LEVENE_COLUMNS = [
    *BASE_COLUMNS,
    *"test status reason n_models n_variant n_baseline sd_variant sd_baseline variance_ratio "
    "variance_ratio_ci_low variance_ratio_ci_high variance_reduction std_reduction_reference "
    "statistic p".split(),
]


# --- dispersion: per-model spreads compared at the fold level ------------------------------


def _model_spreads(samples: pd.DataFrame, value: str) -> pd.DataFrame:
    """One row per model: variance (ddof 1), IQR and MAD of its own samples (never pooled across
    models: a model's samples are autocorrelated, and models differ in level)."""

    def spread(x: pd.Series) -> pd.Series:
        v = x.to_numpy(float)
        q75, q25 = np.percentile(v, [75, 25])
        return pd.Series(
            {
                "var": np.var(v, ddof=1) if v.size > 1 else np.nan,
                "iqr": q75 - q25,
                "mad": float(np.median(np.abs(v - np.median(v)))),
                "n": v.size,
            }
        )

    keys = ["dataset", "protocol", "variant", "fold", "seed"]
    return samples.groupby(keys)[value].apply(spread).unstack().reset_index()


def dispersion(
    samples: pd.DataFrame, pairs: Iterable[Pair], value: str, cfg: StatsConfig
) -> pd.DataFrame:
    """Per-model variance, IQR and MAD of `value` (samples: dataset, protocol, variant, fold, seed,
    value); variant / baseline as the exp of the mean per-fold log-ratio (seeds' spreads averaged
    on the log scale within each fold), with a paired t interval over the folds and its p."""
    logs = _log_spreads(samples, value)

    def row(scope: Scope, pair: Pair) -> dict:
        per = {
            m: pair_folds(logs, scope, pair.variant, pair.baseline, f"log_{m}") for m in _SPREADS
        }
        reason = unusable(per["var"])
        out = {
            "test": "per-model dispersion, paired t on per-fold log-ratios",
            "n_pairs": len(per["var"].keys),
            "n_models": per["var"].n_models,
            **status(reason),
        }
        return out if reason else out | _dispersion_stats(per, cfg)

    frame = family_rows(samples, pairs, value, row, _DISPERSION_COLUMNS)
    return add_holm(frame, "p", cfg.alpha)


_SPREADS = ("var", "iqr", "mad")


def _log_spreads(samples: pd.DataFrame, value: str) -> pd.DataFrame:
    """Each model's spreads and their logs (`log_var`, ...; NaN where a spread is 0)."""
    spreads = (
        _model_spreads(samples, value)
        if not samples.empty
        else pd.DataFrame(
            columns=["dataset", "protocol", "variant", "fold", "seed", *_SPREADS, "n"]
        )
    )
    return spreads.assign(
        **{
            f"log_{m}": np.log(spreads[m].astype(float).where(spreads[m].astype(float) > 0))
            for m in _SPREADS
        }
    )


def _dispersion_stats(per: dict[str, Paired], cfg: StatsConfig) -> dict:
    out = {}
    for m, paired in per.items():
        ok = not unusable(paired)
        ci = nadeau_bengio_ci(paired.a - paired.b, 0.0, cfg.confidence) if ok else (np.nan,) * 2
        name = "variance" if m == "var" else m
        out |= {
            f"{name}_ratio": float(np.exp(np.mean(paired.a - paired.b))),
            f"{name}_ratio_ci_low": float(np.exp(ci[0])),
            f"{name}_ratio_ci_high": float(np.exp(ci[1])),
        }
    v = per["var"]
    t, df, p = nadeau_bengio_ttest(v.a - v.b, 0.0)
    ratio = out["variance_ratio"]
    return out | {
        "sd_variant": float(np.exp(v.a.mean() / 2)),  # geometric mean of model sds
        "sd_baseline": float(np.exp(v.b.mean() / 2)),
        "variance_reduction": 1 - ratio,
        "std_reduction_reference": 1 - np.sqrt(ratio),
        "t": t,
        "df": df,
        "p": p,
    }


# --- variances of one value per unit: Levene (Brown-Forsythe) ------------------------------


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


def f_ratio_ci(ratio: float, n_a: int, n_b: int, confidence: float) -> tuple[float, float]:
    """Interval of var(a) / var(b) from the F distribution (independent normal samples)."""
    q = (1 - confidence) / 2
    return (
        float(ratio / sps.f.ppf(1 - q, n_a - 1, n_b - 1)),
        float(ratio / sps.f.ppf(q, n_a - 1, n_b - 1)),
    )


def levene(
    samples: pd.DataFrame, pairs: Iterable[Pair], value: str, cfg: StatsConfig, pooled: bool = False
) -> pd.DataFrame:
    """Brown-Forsythe test of var(variant) = var(baseline) on all samples of the common models
    (samples: rows of dataset, protocol, variant, fold, seed, `value`), Holm-adjusted. With one
    value per model (fold means: `fold_samples`) the variance-ratio CI is the F interval; with
    many per model, a cluster bootstrap over models (and p is optimistic: pooled samples)."""
    present = {s: _present(samples, s, value) for s in scopes(samples, pooled)}

    def row(scope: Scope, pair: Pair) -> dict:
        paired = pair_up(present[scope], scope, pair.variant, pair.baseline, "n")
        out = {"test": "levene_median", "n_models": len(paired.keys)}
        reason = paired.reason or (
            None if len(paired.keys) >= 2 else f"only {len(paired.keys)} model(s); need 2 or more"
        )
        if not reason:
            chosen = scope.select(samples)
            stats = _levene_stats(chosen, paired.keys, scope.key_cols, pair, value, cfg)
            if stats is None:
                reason = f"{pair.baseline} values are all equal: the variance ratio is undefined"
            else:
                out.update(stats)
        return out | status(reason)

    frame = family_rows(samples, pairs, value, row, _LEVENE_COLUMNS, pooled)
    return add_holm(frame, "p", cfg.alpha)


def _present(samples: pd.DataFrame, scope: Scope, value: str) -> pd.DataFrame:
    """Each model of `scope` with its sample count `n`: the keys `pair_up` pairs."""
    present = (
        scope.select(samples)
        .groupby(["dataset", "variant", "fold", "seed"], as_index=False)[value]
        .count()
    )
    return present.assign(protocol=scope.protocol, n=present[value])


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
    ratio = sd_a**2 / sd_b**2
    if a.size == len(keys) and b.size == len(keys):  # one value per unit
        low, high = f_ratio_ci(ratio, a.size, b.size, cfg.confidence)
    else:
        low, high = variance_ratio_ci(samples, keys, cols, pair.variant, pair.baseline, value, cfg)
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

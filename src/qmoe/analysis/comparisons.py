"""Families of paired comparisons on the runs table and on latency samples, one row per test.

Every planned comparison yields a row, computed or not (with the reason); Holm adjusts the
p-values within each family and protocol. The unit of every test is the fold: seeds are averaged
within each fold first (`qmoe.analysis.pairing.pair_folds`), so J = K folds and df = K - 1. The
families themselves (who is compared with whom) are listed in `qmoe.analysis.families`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from qmoe.analysis.pairing import Paired, Scope, pair_folds, pair_up, scopes
from qmoe.analysis.stats import (
    COMPUTED,
    NOT_COMPUTED,
    Alternative,
    StatsConfig,
    add_holm,
    bootstrap_ci,
    cohens_dz,
    levene_median,
    log_ratio_test,
    min_equivalence_margin,
    nadeau_bengio_ci,
    nadeau_bengio_ttest,
    nb_standard_error,
    t_quantile,
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
        return f"only {len(paired.keys)} fold(s); a paired test needs 2 or more"
    if np.ptp(paired.a - paired.b) == 0:
        return "the paired differences are all equal (zero variance): t is undefined"
    return None


def _ratio(test: Method, paired: Paired) -> float:
    """The overlap correction n_test / n_train for cross-validated scores, 0 for measurements."""
    return paired.test_train_ratio if test is Method.NADEAU_BENGIO else 0.0


def _paired_stats(paired: Paired, test: Method, alternative: Alternative, cfg: StatsConfig) -> dict:
    """Difference and log-ratio tests on the J fold means (plain paired t = ratio 0)."""
    d, ratio = paired.a - paired.b, _ratio(test, paired)
    t, df, p = nadeau_bengio_ttest(d, ratio, alternative)
    low, high = nadeau_bengio_ci(d, ratio, cfg.confidence)
    rt = log_ratio_test(paired.a, paired.b, ratio, cfg.confidence, alternative)
    return {
        "mean_diff": float(d.mean()),
        "se": nb_standard_error(d, ratio),
        "ci_low": low,
        "ci_high": high,
        "ratio": rt.ratio,
        "ratio_ci_low": rt.low,
        "ratio_ci_high": rt.high,
        "p_ratio": rt.p,
        "t": t,
        "df": df,
        "p": p,
        "cohens_dz": cohens_dz(d),
        "test_train_ratio": ratio,
    }


def _sizes(paired: Paired) -> dict:
    return {"n_pairs": len(paired.keys), "n_models": paired.n_models}


def compare(
    table: pd.DataFrame,
    pairs: Iterable[Pair],
    value: str,
    cfg: StatsConfig,
    test: Method,
    alternative: Alternative = Alternative.TWO_SIDED,
    pooled: bool = False,
) -> pd.DataFrame:
    """Paired test of `value` on fold means for each pair in each (dataset, protocol) scope,
    Holm-adjusted (`p_holm` for the difference, `ratio_p_holm` for the log-ratio)."""
    rows = []
    for scope in scopes(table, pooled):
        for pair in pairs:
            paired = pair_folds(table, scope, pair.variant, pair.baseline, value)
            row = {
                **_base_row(pair, scope, value),
                "test": test.value,
                "alternative": alternative.value,
                **_sizes(paired),
            }
            if not paired.reason:
                row.update(
                    mean_variant=float(paired.a.mean()),
                    mean_baseline=float(paired.b.mean()),
                    sd_variant=_sd(paired.a),
                    sd_baseline=_sd(paired.b),
                )
            reason = _unusable(paired)
            row.update(status=NOT_COMPUTED if reason else COMPUTED, reason=reason or "")
            if not reason:
                row.update(_paired_stats(paired, test, alternative, cfg))
            rows.append(row)
    frame = add_holm(pd.DataFrame(rows).reindex(columns=_COMPARE_COLUMNS), "p", cfg.alpha)
    return add_holm(frame, "p_ratio", cfg.alpha, prefix="ratio_")


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else np.nan


_COMPARE_COLUMNS = [
    "family",
    "dataset",
    "protocol",
    "metric",
    "variant",
    "baseline",
    "test",
    "alternative",
    "status",
    "reason",
    "n_pairs",
    "n_models",
    "mean_variant",
    "mean_baseline",
    "sd_variant",
    "sd_baseline",
    "mean_diff",
    "se",
    "ci_low",
    "ci_high",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "p_ratio",
    "t",
    "df",
    "p",
    "cohens_dz",
    "test_train_ratio",
]


def equivalence(
    table: pd.DataFrame, pairs: Iterable[Pair], value: str, cfg: StatsConfig
) -> pd.DataFrame:
    """TOST of |mean(variant - baseline)| < margin on fold means: statsmodels' plain paired
    version and the Nadeau-Bengio corrected one, each Holm-adjusted; `equivalent` uses the
    corrected one. `ci_holm_*` is the interval that matches the Holm p printed beside it (inside
    +-margin exactly when Holm p < alpha); `min_margin` is the smallest margin these data could
    have shown at alpha (unadjusted); `resolution` = 1 / test clips per model (one clip's
    weight)."""
    rows = []
    for scope in scopes(table):
        for pair in pairs:
            paired = pair_folds(table, scope, pair.variant, pair.baseline, value)
            reason = _unusable(paired)
            row = {
                **_base_row(pair, scope, value),
                "margin": cfg.tost_margin,
                **_sizes(paired),
                "status": NOT_COMPUTED if reason else COMPUTED,
                "reason": reason or "",
            }
            if not reason:
                d, ratio = paired.a - paired.b, paired.test_train_ratio
                low, high = nadeau_bengio_ci(d, ratio, 1 - 2 * cfg.alpha)
                row.update(
                    mean_variant=float(paired.a.mean()),
                    mean_baseline=float(paired.b.mean()),
                    mean_diff=float(d.mean()),
                    se=nb_standard_error(d, ratio),
                    df=d.size - 1,
                    ci_tost_low=low,
                    ci_tost_high=high,
                    p_tost=tost_paired(paired.a, paired.b, cfg.tost_margin).p,
                    p_tost_nb=tost_nadeau_bengio(d, ratio, cfg.tost_margin).p,
                    min_margin=min_equivalence_margin(d, ratio, cfg.alpha),
                    resolution=1.0 / paired.n_test,
                    test_train_ratio=ratio,
                )
            rows.append(row)
    cols = [
        "family",
        "dataset",
        "protocol",
        "metric",
        "variant",
        "baseline",
        "margin",
        "status",
        "reason",
        "n_pairs",
        "n_models",
        "mean_variant",
        "mean_baseline",
        "mean_diff",
        "se",
        "df",
        "ci_tost_low",
        "ci_tost_high",
        "p_tost",
        "p_tost_nb",
        "min_margin",
        "resolution",
        "test_train_ratio",
    ]
    frame = add_holm(pd.DataFrame(rows).reindex(columns=cols), "p_tost", cfg.alpha, "plain_")
    frame = add_holm(frame, "p_tost_nb", cfg.alpha)
    frame["equivalent"] = frame["reject_holm"]
    return holm_matched_interval(frame, cfg.alpha)


def holm_matched_interval(frame: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """`holm_level`, `ci_holm_low/high`: the two-sided t interval at level 1 - 2 alpha p / p_holm.
    TOST's p < a exactly when its (1 - 2a) interval lies inside +-margin, and Holm p < alpha
    exactly when p < alpha p / p_holm, so this interval lies inside the margin exactly when the
    Holm p printed beside it is below alpha."""
    frame = frame.copy()
    ok = frame["status"] == COMPUTED
    # p = p_holm = 0 (underflow): the plain (1 - 2 alpha) interval
    scale = (frame.loc[ok, "p_tost_nb"] / frame.loc[ok, "p_holm"]).fillna(1.0).clip(upper=1.0)
    level = 1 - 2 * alpha * scale
    half = [
        t_quantile(c, int(df)) * se
        for c, df, se in zip(level, frame.loc[ok, "df"], frame.loc[ok, "se"])
    ]
    frame["holm_level"] = np.nan
    frame.loc[ok, "holm_level"] = level
    frame["ci_holm_low"], frame["ci_holm_high"] = np.nan, np.nan
    frame.loc[ok, "ci_holm_low"] = frame.loc[ok, "mean_diff"] - half
    frame.loc[ok, "ci_holm_high"] = frame.loc[ok, "mean_diff"] + half
    return frame


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
    spreads = (
        _model_spreads(samples, value)
        if not samples.empty
        else pd.DataFrame(
            columns=["dataset", "protocol", "variant", "fold", "seed", "var", "iqr", "mad", "n"]
        )
    )
    logs = spreads.assign(
        **{
            f"log_{m}": np.log(spreads[m].astype(float).where(spreads[m].astype(float) > 0))
            for m in ("var", "iqr", "mad")
        }
    )
    rows = []
    for scope in scopes(samples):
        for pair in pairs:
            row = {
                **_base_row(pair, scope, value),
                "test": "per-model dispersion, paired t on per-fold log-ratios",
            }
            per = {
                m: pair_folds(logs, scope, pair.variant, pair.baseline, f"log_{m}")
                for m in ("var", "iqr", "mad")
            }
            reason = _unusable(per["var"])
            row.update(
                n_pairs=len(per["var"].keys),
                n_models=per["var"].n_models,
                status=NOT_COMPUTED if reason else COMPUTED,
                reason=reason or "",
            )
            if not reason:
                row.update(_dispersion_stats(per, cfg))
            rows.append(row)
    cols = [
        "family",
        "dataset",
        "protocol",
        "metric",
        "variant",
        "baseline",
        "test",
        "status",
        "reason",
        "n_pairs",
        "n_models",
        "sd_variant",
        "sd_baseline",
        "variance_ratio",
        "variance_ratio_ci_low",
        "variance_ratio_ci_high",
        "iqr_ratio",
        "iqr_ratio_ci_low",
        "iqr_ratio_ci_high",
        "mad_ratio",
        "mad_ratio_ci_low",
        "mad_ratio_ci_high",
        "variance_reduction",
        "std_reduction_reference",
        "t",
        "df",
        "p",
    ]
    return add_holm(pd.DataFrame(rows).reindex(columns=cols), "p", cfg.alpha)


def _dispersion_stats(per: dict[str, Paired], cfg: StatsConfig) -> dict:
    out = {}
    for m, paired in per.items():
        ok = not _unusable(paired)
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
                    reason = (
                        f"{pair.baseline} values are all equal: the variance ratio is undefined"
                    )
                else:
                    row.update(stats)
            row.update(status=NOT_COMPUTED if reason else COMPUTED, reason=reason or "")
            rows.append(row)
    cols = [
        "family",
        "dataset",
        "protocol",
        "metric",
        "variant",
        "baseline",
        "test",
        "status",
        "reason",
        "n_models",
        "n_variant",
        "n_baseline",
        "sd_variant",
        "sd_baseline",
        "variance_ratio",
        "variance_ratio_ci_low",
        "variance_ratio_ci_high",
        "variance_reduction",
        "std_reduction_reference",
        "statistic",
        "p",
    ]
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

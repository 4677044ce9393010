"""Families of paired comparisons on the runs table and on latency samples, one row per test.

Every planned comparison yields a row, computed or not (with the reason); Holm adjusts the
p-values within each family and protocol. The unit of every test is the fold: seeds are averaged
within each fold first (`qmoe.analysis.pairing.pair_folds`), so J = K folds and df = K - 1. The
families themselves (who is compared with whom) are listed in `qmoe.analysis.families`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.analysis.names import COMPUTED, NOT_COMPUTED
from qmoe.analysis.pairing import Paired, Scope, pair_folds, scopes
from qmoe.analysis.stats import (
    Alternative,
    StatsConfig,
    add_holm,
    cohens_dz,
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


BASE_COLUMNS = ["family", "dataset", "protocol", "metric", "variant", "baseline"]
_COMPARE_COLUMNS = [
    *BASE_COLUMNS,
    *"test alternative status reason n_pairs n_models mean_variant mean_baseline sd_variant "
    "sd_baseline mean_diff se ci_low ci_high ratio ratio_ci_low ratio_ci_high p_ratio t df p "
    "cohens_dz test_train_ratio".split(),
]
_EQUIVALENCE_COLUMNS = [
    *BASE_COLUMNS,
    *"margin status reason n_pairs n_models mean_variant mean_baseline mean_diff se df "
    "ci_tost_low ci_tost_high p_tost p_tost_nb min_margin resolution test_train_ratio".split(),
]


def family_rows(
    table: pd.DataFrame,
    pairs: Iterable[Pair],
    value: str,
    row: Callable[[Scope, Pair], dict],
    columns: list[str],
    pooled: bool = False,
) -> pd.DataFrame:
    """The loop every family shares: for each (dataset, protocol) scope of `table` (each protocol
    when `pooled`) and each pair, the pair's identity and `row(scope, pair)`, in `columns`."""
    rows = [
        _base_row(pair, scope, value) | row(scope, pair)
        for scope in scopes(table, pooled)
        for pair in pairs
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def _base_row(pair: Pair, scope: Scope, value: str) -> dict:
    return {
        "family": pair.family,
        "dataset": scope.dataset or "all",
        "protocol": scope.protocol,
        "metric": value,
        "variant": pair.variant,
        "baseline": pair.baseline,
    }


def status(reason: str | None) -> dict:
    """A row's `status` and `reason` columns: computed exactly when there is no reason."""
    return {"status": NOT_COMPUTED if reason else COMPUTED, "reason": reason or ""}


def unusable(paired: Paired) -> str | None:
    """Why a paired t cannot be computed on `paired` (None when it can)."""
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

    def row(scope: Scope, pair: Pair) -> dict:
        paired = pair_folds(table, scope, pair.variant, pair.baseline, value)
        reason = unusable(paired)
        out = {"test": test.value, "alternative": alternative.value, **_sizes(paired)}
        if not paired.reason:
            out.update(
                mean_variant=float(paired.a.mean()),
                mean_baseline=float(paired.b.mean()),
                sd_variant=_sd(paired.a),
                sd_baseline=_sd(paired.b),
            )
        out.update(status(reason))
        return out if reason else out | _paired_stats(paired, test, alternative, cfg)

    frame = family_rows(table, pairs, value, row, _COMPARE_COLUMNS, pooled)
    return add_holm(add_holm(frame, "p", cfg.alpha), "p_ratio", cfg.alpha, prefix="ratio_")


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else np.nan


def equivalence(
    table: pd.DataFrame, pairs: Iterable[Pair], value: str, cfg: StatsConfig
) -> pd.DataFrame:
    """TOST of |mean(variant - baseline)| < margin on fold means: statsmodels' plain paired
    version and the Nadeau-Bengio corrected one, each Holm-adjusted; `equivalent` uses the
    corrected one. `ci_holm_*` is the interval that matches the Holm p printed beside it (inside
    +-margin exactly when Holm p < alpha); `min_margin` is the smallest margin these data could
    have shown at alpha (unadjusted); `resolution` = 1 / test clips per model (one clip's
    weight)."""

    def row(scope: Scope, pair: Pair) -> dict:
        paired = pair_folds(table, scope, pair.variant, pair.baseline, value)
        reason = unusable(paired)
        out = {"margin": cfg.tost_margin, **_sizes(paired), **status(reason)}
        return out if reason else out | _tost_stats(paired, cfg)

    frame = family_rows(table, pairs, value, row, _EQUIVALENCE_COLUMNS)
    frame = add_holm(add_holm(frame, "p_tost", cfg.alpha, "plain_"), "p_tost_nb", cfg.alpha)
    frame["equivalent"] = frame["reject_holm"]
    return holm_matched_interval(frame, cfg.alpha)


def _tost_stats(paired: Paired, cfg: StatsConfig) -> dict:
    d, ratio = paired.a - paired.b, paired.test_train_ratio
    low, high = nadeau_bengio_ci(d, ratio, 1 - 2 * cfg.alpha)
    return {
        "mean_variant": float(paired.a.mean()),
        "mean_baseline": float(paired.b.mean()),
        "mean_diff": float(d.mean()),
        "se": nb_standard_error(d, ratio),
        "df": d.size - 1,
        "ci_tost_low": low,
        "ci_tost_high": high,
        "p_tost": tost_paired(paired.a, paired.b, cfg.tost_margin).p,
        "p_tost_nb": tost_nadeau_bengio(d, ratio, cfg.tost_margin).p,
        "min_margin": min_equivalence_margin(d, ratio, cfg.alpha),
        "resolution": 1.0 / paired.n_test,
        "test_train_ratio": ratio,
    }


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

"""Paired tests on tidy tables: corrected resampled t, TOST, Levene (median), Holm, bootstrap CIs.

Every comparison is keyed by (dataset, fold, seed), never by position. A comparison whose pairs
are incomplete comes back as a row with status "not computed" and the missing keys as its reason.

- Nadeau & Bengio (2003), "Inference for the Generalization Error", Machine Learning 52:239-281:
  t = mean(d) / sqrt((1/J + n_test/n_train) s^2), df = J - 1, for J paired resampled scores.
- TOST (Schuirmann 1987): statsmodels `ttost_paired`, plus the same two one-sided tests with the
  Nadeau-Bengio variance (the plain paired t ignores the overlap of CV training sets).
- Brown & Forsythe (1974): `scipy.stats.levene(center="median")`.
- Holm (1979): `statsmodels multipletests(method="holm")`, per family and protocol.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from qmoe.io import require

SCORE_METRICS = ("macro_f1", "weighted_f1", "accuracy")
COMPUTED, NOT_COMPUTED = "computed", "not computed"


@dataclass(frozen=True)
class StatsConfig:
    """params.yaml `stats`; the margin and alpha are fixed before any result is seen."""

    alpha: float = 0.05
    tost_margin: float = 0.01  # equivalence margin, in F1 units (0.01 = one F1 point)
    f1_metric: str = "macro_f1"  # the score every F1 test and claim uses
    confidence: float = 0.95  # bootstrap and t confidence intervals
    n_resamples: int = 9999
    bootstrap_seed: int = 0

    def __post_init__(self) -> None:
        require(0.0 < self.alpha < 0.5, "stats.alpha", f"{self.alpha} not in (0, 0.5)")
        require(
            0.0 < self.tost_margin < 1.0,
            "stats.tost_margin",
            f"{self.tost_margin} not in (0, 1) (F1 units)",
        )
        require(
            self.f1_metric in SCORE_METRICS,
            "stats.f1_metric",
            f"{self.f1_metric!r} is not one of {list(SCORE_METRICS)}",
        )
        require(
            0.5 < self.confidence < 1.0, "stats.confidence", f"{self.confidence} not in (0.5, 1)"
        )
        require(self.n_resamples >= 100, "stats.n_resamples", f"{self.n_resamples} < 100")


class Alternative(Enum):
    TWO_SIDED = "two-sided"
    GREATER = "greater"  # variant (first sample) greater than baseline
    LESS = "less"


class TTest(NamedTuple):
    t: float
    df: int
    p: float


class Tost(NamedTuple):
    p: float  # max of the two one-sided p-values
    p_lower: float  # H0: mean(d) <= -margin
    p_upper: float  # H0: mean(d) >= +margin


# --- primitives ------------------------------------------------------------------------------


def pval(p: float) -> str:
    """A p-value in 3 significant digits; one that underflowed to 0 as '< 1e-300'."""
    if not (isinstance(p, (int, float)) and np.isfinite(p)):
        return "n/a"
    return "< 1e-300" if p == 0 else f"{p:.3g}"


def _t_pvalue(t: float, df: int, alternative: Alternative) -> float:
    if alternative is Alternative.GREATER:
        return float(sps.t.sf(t, df))
    if alternative is Alternative.LESS:
        return float(sps.t.cdf(t, df))
    return float(2 * sps.t.sf(abs(t), df))


def nb_standard_error(diff: np.ndarray, test_train_ratio: float) -> float:
    """sqrt((1/J + n_test/n_train) * s^2), s^2 the sample variance (ddof 1) of J differences."""
    diff = np.asarray(diff, dtype=float)
    return float(np.sqrt((1.0 / diff.size + test_train_ratio) * np.var(diff, ddof=1)))


def nadeau_bengio_ttest(
    diff: np.ndarray, test_train_ratio: float, alternative: Alternative = Alternative.TWO_SIDED
) -> TTest:
    """Corrected resampled t-test of J paired score differences (df = J - 1)."""
    diff = np.asarray(diff, dtype=float)
    t = float(np.mean(diff) / nb_standard_error(diff, test_train_ratio))
    df = diff.size - 1
    return TTest(t, df, _t_pvalue(t, df, alternative))


def nadeau_bengio_ci(
    diff: np.ndarray, test_train_ratio: float, confidence: float
) -> tuple[float, float]:
    """Two-sided t interval of mean(d) with the corrected standard error."""
    diff = np.asarray(diff, dtype=float)
    half = sps.t.ppf(0.5 + confidence / 2, diff.size - 1) * nb_standard_error(
        diff, test_train_ratio
    )
    return float(np.mean(diff) - half), float(np.mean(diff) + half)


def tost_nadeau_bengio(diff: np.ndarray, test_train_ratio: float, margin: float) -> Tost:
    """Two one-sided corrected t-tests of -margin < mean(d) < margin."""
    diff = np.asarray(diff, dtype=float)
    se, df = nb_standard_error(diff, test_train_ratio), diff.size - 1
    p_lower = float(sps.t.sf((np.mean(diff) + margin) / se, df))
    p_upper = float(sps.t.cdf((np.mean(diff) - margin) / se, df))
    return Tost(max(p_lower, p_upper), p_lower, p_upper)


def tost_paired(a: np.ndarray, b: np.ndarray, margin: float) -> Tost:
    """statsmodels `ttost_paired` of -margin < mean(a - b) < margin (plain paired t)."""
    p, (_, p_lower, _), (_, p_upper, _) = ttost_paired(
        np.asarray(a, float), np.asarray(b, float), -margin, margin
    )
    return Tost(float(p), float(p_lower), float(p_upper))


def cohens_dz(diff: np.ndarray) -> float:
    """Standardised mean of paired differences: mean(d) / sd(d) (ddof 1)."""
    diff = np.asarray(diff, dtype=float)
    return float(np.mean(diff) / np.std(diff, ddof=1))


def levene_median(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Brown-Forsythe test of equal variances: (statistic, p)."""
    result = sps.levene(np.asarray(a, float), np.asarray(b, float), center="median")
    return float(result.statistic), float(result.pvalue)


def bootstrap_ci(
    data: tuple[np.ndarray, ...], statistic: Callable, cfg: StatsConfig, paired: bool = True
) -> tuple[float, float]:
    """BCa interval from `scipy.stats.bootstrap`, seeded; (nan, nan) for degenerate data."""
    if min(len(d) for d in data) < 2:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (constant) data -> nan, reported as such
        result = sps.bootstrap(
            data,
            statistic,
            n_resamples=cfg.n_resamples,
            paired=paired,
            vectorized=True,
            confidence_level=cfg.confidence,
            method="BCa",
            rng=np.random.default_rng(cfg.bootstrap_seed),
        )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def holm(pvalues: pd.Series, alpha: float) -> tuple[pd.Series, pd.Series]:
    """Holm-adjusted p-values and rejections; NaN p-values (tests not computed) stay NaN."""
    adjusted = pd.Series(np.nan, index=pvalues.index)
    reject = pd.Series(pd.NA, index=pvalues.index, dtype="boolean")
    ok = pvalues.notna()
    if ok.any():
        rej, p_adj, _, _ = multipletests(pvalues[ok].to_numpy(float), alpha=alpha, method="holm")
        adjusted[ok], reject[ok] = p_adj, rej
    return adjusted, reject


def add_holm(
    frame: pd.DataFrame,
    p_col: str,
    alpha: float,
    prefix: str = "",
    by: tuple[str, ...] = ("family", "protocol"),
) -> pd.DataFrame:
    """Columns `<prefix>p_holm` and `<prefix>reject_holm`, Holm within each `by` group."""
    frame = frame.copy()
    frame[prefix + "p_holm"] = np.nan
    frame[prefix + "reject_holm"] = pd.Series(pd.NA, index=frame.index, dtype="boolean")
    for _, idx in frame.groupby(list(by), sort=False).groups.items():
        adjusted, reject = holm(frame.loc[idx, p_col].astype(float), alpha)
        frame.loc[idx, prefix + "p_holm"] = adjusted
        frame.loc[idx, prefix + "reject_holm"] = reject
    return frame


# --- pairing by key --------------------------------------------------------------------------


class Scope(NamedTuple):
    dataset: str | None  # None: pooled over datasets (keys then include the dataset)
    protocol: str

    def select(self, table: pd.DataFrame) -> pd.DataFrame:
        sub = table[table["protocol"] == self.protocol]
        return sub if self.dataset is None else sub[sub["dataset"] == self.dataset]

    @property
    def key_cols(self) -> list[str]:
        return ["fold", "seed"] if self.dataset is not None else ["dataset", "fold", "seed"]


class Paired(NamedTuple):
    keys: list[tuple]
    a: np.ndarray  # variant values, one per key
    b: np.ndarray  # baseline values, same keys
    test_train_ratio: float  # mean n_test / n_train over the keys (nan when unknown)
    reason: str | None  # why the comparison cannot be computed; None when it can


def format_keys(keys: list[tuple], cols: list[str]) -> str:
    shown = [" ".join(f"{c} {v}" for c, v in zip(cols, k)) for k in keys[:8]]
    more = f" and {len(keys) - 8} more" if len(keys) > 8 else ""
    return ", ".join(shown) + more


def scopes(table: pd.DataFrame, pooled: bool = False) -> list[Scope]:
    if pooled:
        return [Scope(None, p) for p in sorted(table["protocol"].unique())]
    pairs = table[["dataset", "protocol"]].drop_duplicates().sort_values(["dataset", "protocol"])
    return [Scope(d, p) for d, p in pairs.itertuples(index=False)]


def pair_up(table: pd.DataFrame, scope: Scope, variant: str, baseline: str, value: str) -> Paired:
    """Values of `variant` and `baseline` on the same keys; the reason names any missing key."""
    sub, cols = scope.select(table), scope.key_cols
    empty = Paired([], np.array([]), np.array([]), float("nan"), None)
    if value not in table.columns:
        return empty._replace(reason=f"no column {value!r} in the runs table")
    expected = set(map(tuple, sub[cols].drop_duplicates().to_numpy().tolist()))
    frames = {}
    for name in (variant, baseline):
        rows = sub[sub["variant"] == name]
        if rows.empty:
            return empty._replace(reason=f"no runs of {name} (variant not in the study)")
        frames[name] = rows.set_index(cols)
    gaps = []
    for name, rows in frames.items():
        present = set(map(tuple, rows[rows[value].notna()].index.to_frame().to_numpy().tolist()))
        if missing := sorted(expected - present):
            gaps.append(f"{name} lacks {value} for {format_keys(missing, cols)}")
    if gaps:
        return empty._replace(reason="incomplete pairs: " + "; ".join(gaps))
    keys = sorted(expected)
    a, b = (frames[n].loc[keys] for n in (variant, baseline))
    ratio = (
        (a["n_test"] / a["n_train"]).mean() if {"n_test", "n_train"} <= set(a.columns) else np.nan
    )
    return Paired(keys, a[value].to_numpy(float), b[value].to_numpy(float), float(ratio), None)

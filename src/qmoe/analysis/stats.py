"""Paired tests on tidy tables: corrected resampled t, TOST, Levene (median), Holm, intervals.

Every comparison is keyed by (dataset, fold, seed), never by position. A comparison whose pairs
are incomplete comes back as a row with status "not computed" and the missing keys as its reason.
The unit of every between-variant test is the FOLD: models of one fold share its test clips (and,
for one variant, its training part), so their seeds are averaged within the fold first and the
test runs on J = K fold means (df = K - 1). Treating the K x S (fold, seed) models as J = K x S
independent resamples is pseudo-replication (tests/analysis/test_simulation.py measures it).

- Nadeau & Bengio (2003), "Inference for the Generalization Error", Machine Learning 52:239-281:
  t = mean(d) / sqrt((1/J + n_test/n_train) s^2), df = J - 1, for J paired resampled scores.
- Ratios (4-bit / 16-bit F1, latency overheads, energy savings): t interval of the mean per-fold
  log-ratio, exponentiated (corrected variance for cross-validated scores); intervals over 5
  folds are t intervals, never BCa (a bootstrap of 5 values under-covers).
- TOST (Schuirmann 1987): statsmodels `ttost_paired`, plus the same two one-sided tests with the
  Nadeau-Bengio variance (the plain paired t ignores the overlap of CV training sets).
- Brown & Forsythe (1974): `scipy.stats.levene(center="median")`.
- Holm (1979), per family and protocol: the step-down adjustment, equal to statsmodels
  `multipletests(method="holm")` (tests/analysis/test_stats.py) without its gc.collect() per call
  (80 ms each with torch loaded: most of the stats stage's time).
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
from statsmodels.stats.weightstats import ttost_paired

from qmoe.contract.benchmarks import Regime
from qmoe.io import require

SCORE_METRICS = ("macro_f1", "weighted_f1", "accuracy")


@dataclass(frozen=True)
class StatsConfig:
    """params.yaml `stats`; the margin and alpha are fixed before any result is seen."""

    alpha: float
    tost_margin: float  # equivalence margin, in F1 units (0.01 = one F1 point)
    f1_metric: str  # the score every F1 test and claim uses
    confidence: float  # bootstrap and t confidence intervals
    n_resamples: int
    bootstrap_seed: int
    latency_regime: str  # the cache regime latency claims are judged in (qmoe.bench.regimes)
    permutation_draws: int  # random escalation sets per route model (qmoe.analysis.escalation)
    permutation_seed: int

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
        regimes = [r.value for r in Regime]
        require(
            self.latency_regime in regimes,
            "stats.latency_regime",
            f"{self.latency_regime!r} is not one of {regimes}",
        )
        require(
            self.permutation_draws >= 1000,
            "stats.permutation_draws",
            f"{self.permutation_draws} < 1000",
        )


class Alternative(Enum):
    TWO_SIDED = "two-sided"
    GREATER = "greater"  # variant (first sample) greater than baseline
    LESS = "less"


class TTest(NamedTuple):
    t: float
    df: int
    p: float


class RatioTest(NamedTuple):
    """exp(mean per-fold log-ratio) with its t interval and the test of log-ratio = 0."""

    ratio: float
    low: float
    high: float
    p: float


class Tost(NamedTuple):
    p: float  # max of the two one-sided p-values
    p_lower: float  # H0: mean(d) <= -margin
    p_upper: float  # H0: mean(d) >= +margin


# --- primitives ------------------------------------------------------------------------------


def _scalar(x):
    """A 0-d result as a float; a batch stays an array."""
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def _t_pvalue(t, df: int, alternative: Alternative):
    if alternative is Alternative.GREATER:
        return _scalar(sps.t.sf(t, df))
    if alternative is Alternative.LESS:
        return _scalar(sps.t.cdf(t, df))
    return _scalar(2 * sps.t.sf(np.abs(t), df))


# The three functions below work on the last axis: (J,) -> floats, (..., J) -> arrays (the
# simulation in tests/analysis/test_simulation.py runs thousands of replications at once).


def nb_standard_error(diff: np.ndarray, test_train_ratio: float):
    """sqrt((1/J + n_test/n_train) * s^2), s^2 the sample variance (ddof 1) of J differences."""
    diff = np.asarray(diff, dtype=float)
    return _scalar(
        np.sqrt((1.0 / diff.shape[-1] + test_train_ratio) * np.var(diff, ddof=1, axis=-1))
    )


def nadeau_bengio_ttest(
    diff: np.ndarray, test_train_ratio: float, alternative: Alternative = Alternative.TWO_SIDED
) -> TTest:
    """Corrected resampled t-test of J paired score differences (df = J - 1)."""
    diff = np.asarray(diff, dtype=float)
    t = _scalar(np.mean(diff, axis=-1) / nb_standard_error(diff, test_train_ratio))
    df = diff.shape[-1] - 1
    return TTest(t, df, _t_pvalue(t, df, alternative))


def nadeau_bengio_ci(diff: np.ndarray, test_train_ratio: float, confidence: float) -> tuple:
    """Two-sided t interval of mean(d) with the corrected standard error."""
    diff = np.asarray(diff, dtype=float)
    half = sps.t.ppf(0.5 + confidence / 2, diff.shape[-1] - 1) * nb_standard_error(
        diff, test_train_ratio
    )
    mean = np.mean(diff, axis=-1)
    return _scalar(mean - half), _scalar(mean + half)


def t_quantile(confidence: float, df: int) -> float:
    """Two-sided t critical value of a `confidence` interval."""
    return float(sps.t.ppf(0.5 + confidence / 2, df))


def log_ratio_test(
    a: np.ndarray,
    b: np.ndarray,
    test_train_ratio: float,
    confidence: float,
    alternative: Alternative = Alternative.TWO_SIDED,
) -> RatioTest:
    """Per-unit log(a / b) (J fold means each): exp of its mean, the exponentiated (corrected, when
    `test_train_ratio` > 0) t interval, and the p of log-ratio = 0. NaN where a value is <= 0."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or not (np.all(a > 0) and np.all(b > 0)):
        return RatioTest(*[float("nan")] * 4)
    r = np.log(a / b)
    if np.ptp(r) == 0:
        return RatioTest(float(np.exp(r[0])), float("nan"), float("nan"), float("nan"))
    lo, hi = nadeau_bengio_ci(r, test_train_ratio, confidence)
    p = nadeau_bengio_ttest(r, test_train_ratio, alternative).p
    return RatioTest(float(np.exp(r.mean())), float(np.exp(lo)), float(np.exp(hi)), p)


def min_equivalence_margin(diff: np.ndarray, test_train_ratio: float, alpha: float) -> float:
    """The smallest margin m for which TOST (corrected t, level alpha, no multiplicity
    adjustment) would have shown -m < mean(d) < m with these data: |mean| + t_{1-alpha} se."""
    diff = np.asarray(diff, dtype=float)
    se = nb_standard_error(diff, test_train_ratio)
    return float(abs(diff.mean()) + sps.t.ppf(1 - alpha, diff.size - 1) * se)


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
        p = pvalues[ok].to_numpy(float)
        order = np.argsort(p, kind="stable")
        steps = (len(p) - np.arange(len(p))) * p[order]  # (m - i) p_(i), i = 0..m-1
        p_adj = np.empty_like(p)
        p_adj[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
        adjusted[ok], reject[ok] = p_adj, p_adj < alpha
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

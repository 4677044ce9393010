"""Latency ratios paired by interleaved timing round: the statistics over the benchmark's
rounds.csv (qmoe.bench.rounds writes it: one median per timed block).

The pairing unit of a latency comparison is the round: per round the log-ratio of the variant's
median to the baseline's on the same fold, averaged over folds; the ratio is the exp of the
median of those per-round values, with the distribution-free interval of a median (order
statistics, binomial) and a sign test. Drift of the machine that is slow against a round
cancels in each log-ratio; a pooled median per target (a median over all rounds, then a ratio)
does not cancel it when the drift is not symmetric. The median over rounds, not the mean: a
round now and then runs one variant at a different speed (measured: MoE rounds at 0.36x and
0.81x of fp32 among rounds at 0.60-0.66x), which moved the mean of 12 rounds by up to 5 %.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps


class RoundRatio(NamedTuple):
    """variant / baseline latency from per-round log-ratios."""

    ratio: float  # exp(median over rounds of the fold-mean log-ratio)
    low: float  # order-statistic interval of that median (>= `confidence`), exp-transformed
    high: float
    p: float  # two-sided sign test of median log-ratio = 0
    mean_ratio: float  # exp(mean over rounds): the companion a t interval would centre on
    n_rounds: int
    n_folds: int
    sd_log: float  # sd of the per-round values (the round-to-round noise)
    reason: str | None  # why not computed; None when it was


Side = tuple[str, ...]  # (variant, runtime) or (variant, runtime, form); form default `whole`


def side_rows(rounds: pd.DataFrame, side: Side) -> pd.DataFrame:
    """The rows of one side; rounds of several cache regimes are refused (pair within one)."""
    if "regime" in rounds and rounds["regime"].nunique() > 1:
        raise ValueError(f"rounds of regimes {sorted(rounds['regime'].unique())}: select one")
    name, runtime, form = (*side, "whole")[:3]
    hit = (rounds["variant"] == name) & (rounds["runtime"] == runtime)
    return rounds[hit & (rounds["form"] == form)] if "form" in rounds else rounds[hit]


def per_round_logs(rounds: pd.DataFrame, variant: Side, baseline: Side) -> pd.Series | str:
    """Per round: the mean over folds of log(variant median / baseline median) on the same fold
    and round; `variant`, `baseline` = (variant name, runtime[, form]), in one cache regime. A
    string names what is missing."""
    cols = ["fold", "round"]
    sides = []
    for side in (variant, baseline):
        part = side_rows(rounds, side)
        if part.empty:
            form = "".join(f" {f}" for f in side[2:] if f != "whole")
            return f"no timed rounds of {side[0]}{form} under {side[1]}"
        # several models of one fold (models_per_fold > 1): their medians' geometric mean
        sides.append(
            np.log(part["median_ms"].astype(float)).groupby([part[c] for c in cols]).mean()
        )
    a, b = sides
    common = a.index.intersection(b.index)
    if missing := sorted(set(a.index).symmetric_difference(b.index)):
        return f"{variant[0]} and {baseline[0]} were not timed in the same rounds: {missing[:4]}"
    logs = (a.loc[common] - b.loc[common]).groupby(level="round").mean()
    return logs.sort_index()


def round_ratio(
    rounds: pd.DataFrame, variant: Side, baseline: Side, confidence: float = 0.95
) -> RoundRatio:
    logs = per_round_logs(rounds, variant, baseline)
    nan = math.nan
    if isinstance(logs, str):
        return RoundRatio(nan, nan, nan, nan, nan, 0, 0, nan, logs)
    n_folds = int(rounds.loc[rounds["variant"] == variant[0], "fold"].nunique())
    x = np.sort(logs.to_numpy(float))
    if x.size < 6:  # below 6 values no order-statistic interval reaches 95 %
        return RoundRatio(nan, nan, nan, nan, nan, x.size, n_folds, nan, "fewer than 6 rounds")
    low, high = median_interval(x, confidence)
    above, below = int((x > 0).sum()), int((x < 0).sum())
    p = float(sps.binomtest(above, above + below).pvalue) if above + below else 1.0
    return RoundRatio(
        math.exp(float(np.median(x))),
        math.exp(low),
        math.exp(high),
        p,
        math.exp(float(x.mean())),
        x.size,
        n_folds,
        float(x.std(ddof=1)),
        None,
    )


def median_interval(x: np.ndarray, confidence: float) -> tuple[float, float]:
    """Distribution-free interval of the median of x (sorted, n values): (x_(k), x_(n-k+1))
    with the largest k whose coverage 1 - 2 P(Binom(n, 1/2) < k) is at least `confidence`."""
    n = x.size
    k = 1
    while k < n // 2 and 1 - 2 * sps.binom.cdf(k, n, 0.5) >= confidence:
        k += 1
    return float(x[k - 1]), float(x[n - k])

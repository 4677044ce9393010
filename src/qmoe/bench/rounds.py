"""Latency pairing by interleaved timing round (numpy and pandas only: the stats stage uses it).

A benchmark times every target (variant x model x runtime) once per round, in ABBA order, so
two targets timed in the same round saw the same state of the machine within about a second.
The pairing unit of a latency comparison is therefore the round: each target's per-round median
(`round_medians`, the benchmark's rounds.csv), then per round the log-ratio of the variant's
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
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

ROUND_COLUMNS = [
    "variant",
    "fold",
    "seed",
    "runtime",
    "form",
    "regime",
    "round",
    "position",
    "n",
    "median_ms",
]


class Block(NamedTuple):
    """One timed block of run.json's `order` (batch 1): which samples of which target."""

    variant: str
    fold: int
    seed: int
    runtime: str
    form: str  # qmoe.bench.regimes.Form value
    regime: str  # qmoe.bench.regimes.Regime value
    round: int
    position: int  # index of the block in the run's order (0 = first timed)
    first: int  # index of its first call in the target's sample array
    calls: int


def blocks(order: Sequence[Mapping]) -> list[Block]:
    """The batch-1 blocks of a run's `order`, with each block's first sample index (blocks of a
    target fill its sample array in the order they ran)."""
    filled: dict[tuple, int] = {}
    out = []
    for position, o in enumerate(order):
        if int(o["batch_size"]) != 1:
            continue
        target = (
            o["variant"],
            int(o["fold"]),
            int(o["seed"]),
            o["runtime"],
            o.get("form", "whole"),
            o.get("regime", "warm"),
        )
        first = filled.get(target, 0)
        filled[target] = first + int(o["calls"])
        out.append(Block(*target, int(o["turn"]), position, first, int(o["calls"])))
    return out


def round_medians(order: Sequence[Mapping], samples_ms: Mapping[tuple, np.ndarray]) -> pd.DataFrame:
    """rounds.csv: one row per batch-1 block, its median; `samples_ms` maps (variant, fold, seed,
    runtime, form, regime) -> that target's batch-1 samples in ms, in the order measured."""
    rows = []
    for b in blocks(order):
        x = samples_ms[(b.variant, b.fold, b.seed, b.runtime, b.form, b.regime)]
        x = x[b.first : b.first + b.calls]
        rows.append({**b._asdict(), "n": len(x), "median_ms": float(np.median(x))})
    return pd.DataFrame(rows, columns=[*ROUND_COLUMNS, "first"]).drop(columns="first")


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


def ratio_table(
    rounds: pd.DataFrame, baseline: tuple[str, str], others: Sequence[tuple[str, str]] = ()
) -> pd.DataFrame:
    """ratios.csv: every (variant, runtime) against `baseline` (the deployed fp32), plus the
    extra pairs `others` ((variant, runtime) of the baseline's variant under another runtime,
    compared the other way round: baseline / other, e.g. ONNX fp32 / torch eager fp32)."""
    rows = []
    targets = rounds[["variant", "runtime"]].drop_duplicates().itertuples(index=False)
    pairs = [((v, r), baseline) for v, r in targets if (v, r) != baseline and r == baseline[1]]
    pairs += [(baseline, o) for o in others]
    for a, b in pairs:
        rr = round_ratio(rounds, a, b)
        rows.append(
            {
                "variant": a[0],
                "runtime": a[1],
                "baseline": b[0],
                "baseline_runtime": b[1],
                **rr._asdict(),
                "reason": rr.reason or "",
            }
        )
    return pd.DataFrame(rows)

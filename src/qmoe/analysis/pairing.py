"""Pairing by key: which values of two variants are compared, and at which unit.

A comparison pairs the models of two variants on the same (dataset, fold, seed) keys, never by
position; a pair with a missing key is not computed, and the reason names the keys. The test unit
is the fold: `pair_folds` averages the seeds within each fold (their models share its test clips
and training part, so they are not independent replicates).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd


class Scope(NamedTuple):
    dataset: str | None  # None: pooled over datasets (keys then include the dataset)
    protocol: str

    def select(self, table: pd.DataFrame) -> pd.DataFrame:
        sub = table[table["protocol"] == self.protocol]
        return sub if self.dataset is None else sub[sub["dataset"] == self.dataset]

    @property
    def key_cols(self) -> list[str]:
        """One model: (fold, seed), with the dataset when pooled."""
        return ["fold", "seed"] if self.dataset is not None else ["dataset", "fold", "seed"]

    @property
    def unit_cols(self) -> list[str]:
        """One test unit: the fold (seeds averaged within it), with the dataset when pooled."""
        return self.key_cols[:-1]


class Paired(NamedTuple):
    keys: list[tuple]
    a: np.ndarray  # variant values, one per key
    b: np.ndarray  # baseline values, same keys
    test_train_ratio: float  # mean n_test / n_train over the keys (nan when unknown)
    reason: str | None  # why the comparison cannot be computed; None when it can
    n_models: int = 0  # models behind the keys, per variant (folds x seeds for fold means)
    n_test: float = float("nan")  # mean test clips per model (the F1 resolution is about 1 / n)


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
    # The keys where the value exists for some variant: every model for F1, the timed models only
    # for latency (the benchmark times one model per fold by design; the other seeds are NaN).
    measured = sub[sub[value].notna()] if sub[value].notna().any() else sub
    expected = set(map(tuple, measured[cols].drop_duplicates().to_numpy().tolist()))
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
    sizes = {"n_test", "n_train"} <= set(a.columns)
    ratio = (a["n_test"] / a["n_train"]).mean() if sizes else np.nan
    n_test = float(a["n_test"].mean()) if sizes else np.nan
    return Paired(
        keys,
        a[value].to_numpy(float),
        b[value].to_numpy(float),
        float(ratio),
        None,
        len(keys),
        n_test,
    )


def fold_means(paired: Paired, scope: Scope) -> Paired:
    """Model-level pairs -> one pair per fold: the mean over its seeds (the test unit)."""
    if paired.reason or not paired.keys:
        return paired
    keys = pd.MultiIndex.from_tuples(paired.keys, names=scope.key_cols)
    frame = pd.DataFrame({"a": paired.a, "b": paired.b}, index=keys)
    means = frame.groupby(level=scope.unit_cols, sort=True).mean()
    units = [k if isinstance(k, tuple) else (k,) for k in means.index]
    return paired._replace(keys=units, a=means["a"].to_numpy(float), b=means["b"].to_numpy(float))


def pair_folds(
    table: pd.DataFrame, scope: Scope, variant: str, baseline: str, value: str
) -> Paired:
    """`pair_up` (every model present for both), then seeds averaged within each fold."""
    return fold_means(pair_up(table, scope, variant, baseline, value), scope)

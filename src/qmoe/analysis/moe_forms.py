"""The MoE's latency over the 8-bit model, decomposed (reports/stats/latency_moe_forms.csv).

The benchmark times each MoE artefact whole (one graph: router and an `If` per expert), its
router graph alone, per clip the expert it routes that clip to alone, and the router then that
expert called by the host (qmoe.contract.benchmarks.Form), all in the same rounds as the 8-bit
model. Per exact form (one graph, host dispatch: both give the MoE's output, checked at export),
one row per regime: its ratio to the 8-bit model paired by round (qmoe.analysis.rounds), Holm within
family x protocol x regime x form, and its time split into

    form = router + expert + dispatch        overhead = form - 8-bit
    shares of the overhead: router / overhead, (expert - 8-bit) / overhead, dispatch / overhead

(geometric means of per-round medians; `dispatch` is what is left: the `If`s, gathers and
scatter of one graph, or the host's second call). `fastest` marks the exact form with the lowest
ratio: the MoE-overhead claim is judged on it. Under torch (the faithful protocol's runtime) the
MoE is one module: one form, no parts.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from qmoe.analysis.comparisons import Pair
from qmoe.analysis.latency import geo_ms, round_row, timed_scopes
from qmoe.analysis.names import COMPUTED
from qmoe.analysis.stats import StatsConfig, add_holm
from qmoe.contract.benchmarks import EXACT_FORMS, Form

COLUMNS = [
    *("family", "dataset", "protocol", "variant", "baseline", "runtime", "regime", "form"),
    *("status", "reason", "n_pairs", "n_models", "mean_variant", "mean_baseline"),
    *("ratio", "ratio_ci_low", "ratio_ci_high", "p_ratio", "mean_ratio", "sd_log", "df"),
    *("router_ms", "expert_ms", "dispatch_ms", "overhead_ms"),
    *("router_share", "expert_share", "dispatch_share"),
]


def _timed(rounds: pd.DataFrame, variant: str, runtime: str, form: str) -> bool:
    if rounds.empty or "form" not in rounds:
        return form == Form.WHOLE.value
    hit = (rounds["variant"] == variant) & (rounds["runtime"] == runtime)
    return bool((hit & (rounds["form"] == form)).any())


def _split(row: dict, router: float, expert: float) -> dict:
    """The form's time as router + expert + dispatch, and each one's share of the overhead."""
    ms, base = row["mean_variant"], row["mean_baseline"]
    overhead = ms - base
    dispatch = ms - router - expert
    return {
        "router_ms": router,
        "expert_ms": expert,
        "dispatch_ms": dispatch,
        "overhead_ms": overhead,
        "router_share": router / overhead,
        "expert_share": (expert - base) / overhead,
        "dispatch_share": dispatch / overhead,
    }


def _rows(timed: pd.DataFrame, where: dict, pair: Pair, cfg: StatsConfig) -> list[dict]:
    """One pair's rows in one regime's rounds (`where`: dataset, protocol, runtime, regime)."""
    runtime = where["runtime"]
    router, expert = (
        geo_ms(timed, pair.variant, runtime, f.value) if not timed.empty else np.nan
        for f in (Form.ROUTER, Form.EXPERT)
    )
    forms = [f.value for f in EXACT_FORMS if _timed(timed, pair.variant, runtime, f.value)]
    rows = []
    for form in forms or [Form.WHOLE.value]:
        row = {"family": pair.family, "variant": pair.variant, "baseline": pair.baseline}
        row |= where | {"form": form, **round_row(timed, pair, runtime, form, cfg)}
        rows.append(row | (_split(row, router, expert) if row["status"] == COMPUTED else {}))
    return rows


def decompose(
    rounds: pd.DataFrame, runs: pd.DataFrame, pairs: Iterable[Pair], cfg: StatsConfig
) -> pd.DataFrame:
    """One row per MoE pair (MoE vs 8-bit), (dataset, protocol), regime and exact form timed."""
    rows = []
    for t in timed_scopes(rounds, runs, cfg.latency_regime):
        where = dict(dataset=t.dataset, protocol=t.protocol, runtime=t.runtime, regime=t.regime)
        rows += [row for pair in pairs for row in _rows(t.rounds, where, pair, cfg)]
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    by = ("family", "protocol", "regime", "form")
    frame = add_holm(frame, "p_ratio", cfg.alpha, "ratio_", by)
    return frame.assign(fastest=_fastest(frame))


def _fastest(frame: pd.DataFrame) -> pd.Series:
    """True on the computed form with the lowest ratio per (dataset, protocol, variant, regime)."""
    keys = ["dataset", "protocol", "variant", "regime"]
    done = frame["status"] == COMPUTED
    best = frame[done].groupby(keys)["ratio"].transform("min")
    out = pd.Series(False, index=frame.index)
    out[done] = frame.loc[done, "ratio"] == best
    first = out[out].groupby([frame.loc[out, k] for k in keys]).head(1).index  # ties: first form
    return pd.Series(frame.index.isin(first), index=frame.index)

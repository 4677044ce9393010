"""Latency on the benchmark's own pairing unit, the interleaved timing round; MoE latency spread
beside routing; the whole path per clip (front end + head).

Each protocol's latency is timed its own way (`CLAIMS_RUNTIME`): `faithful` in the reference's
execution form, its fake-quantised training modules in torch eager (reference-method.md 10.2:
the reference timed those); `corrected` as deployed, the ONNX Runtime artefacts. Every latency
table has one set of rows per cache regime the benchmark timed (qmoe.contract.benchmarks); the
claims read `stats.latency_regime`'s.

- `compare_rounds` (reports/stats/latency_paired.csv): variant / baseline from per-round
  log-ratios of per-round medians on the same fold (qmoe.analysis.rounds): median over rounds,
  order-statistic interval, sign test, Holm within family x protocol x regime. Slow drift of the
  machine cancels within each round.
- `spread_routing` (latency_spread_routing.csv): each timed MoE model's latency spread (sd, IQR,
  MAD, p95 / median) beside the share of its test clips that the deployed graph sends to each
  expert (routing.csv): an MoE's spread follows its routing mix, because experts differ in cost.
- `pipeline_cost` (pipeline_cost.csv): per clip at batch 1, decode + mel + image + backbone
  (the benchmark's frontend.csv) + each variant's deployed head after the backbone (its
  `after_backbone` median: a head never runs warm behind a backbone), and the head's share.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.analysis import roles
from qmoe.analysis.comparisons import Pair
from qmoe.analysis.names import COMPUTED, NOT_COMPUTED
from qmoe.analysis.pairing import scopes
from qmoe.analysis.results import variant_facts
from qmoe.analysis.rounds import round_ratio
from qmoe.analysis.stats import StatsConfig, add_holm
from qmoe.contract.benchmarks import (
    BenchFolder,
    Form,
    Regime,
    claims_runtime,
    latency_prefix,
    read_routing,
)
from qmoe.contract.study import RunId

TEST = "paired by interleaved timing round: median of per-round log-ratios (fold-mean), sign test"


def load_bench_table(bench_root: Path, runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """<bench_root>/<dataset>/<protocol>/<name>.csv of every (dataset, protocol) in `runs`, with
    dataset and protocol columns; benchmarks without it are left out (rows then say so)."""
    parts = []
    for d, p in runs[["dataset", "protocol"]].drop_duplicates().itertuples(index=False):
        path = BenchFolder(Path(bench_root) / d / p).table(name)
        if path.is_file():
            parts.append(pd.read_csv(path).assign(dataset=d, protocol=p))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def geo_ms(rounds: pd.DataFrame, variant: str, runtime: str, form: str = "whole") -> float:
    """Geometric mean of a target's per-round medians (ms), over rounds and folds."""
    hit = (rounds["variant"] == variant) & (rounds["runtime"] == runtime)
    part = rounds[hit & (rounds["form"] == form)] if "form" in rounds else rounds[hit]
    return float(np.exp(np.log(part["median_ms"].astype(float)).mean())) if len(part) else np.nan


def regimes_in(rounds: pd.DataFrame) -> list[str]:
    """The cache regimes of a rounds table, in qmoe.contract.benchmarks.Regime order."""
    found = set(rounds["regime"]) if "regime" in rounds else {Regime.WARM.value}
    return [r.value for r in Regime if r.value in found]


def in_regime(rounds: pd.DataFrame, regime: str) -> pd.DataFrame:
    return rounds[rounds["regime"] == regime] if "regime" in rounds else rounds


class TimedScope(NamedTuple):
    """One (dataset, protocol) of the runs table in one cache regime: its rounds, timed in the
    protocol's claims runtime."""

    dataset: str
    protocol: str
    runtime: str
    regime: str
    rounds: pd.DataFrame  # that scope's rows of rounds.csv in that regime (empty: none timed)


def timed_scopes(rounds: pd.DataFrame, runs: pd.DataFrame, fallback: str) -> Iterator[TimedScope]:
    """Each (dataset, protocol) of `runs` and each cache regime its rounds hold; a scope with no
    rounds yields once, in regime `fallback` (the claims' regime), so its rows say why."""
    for scope in scopes(runs):
        runtime = claims_runtime(scope.protocol)
        here = scope.select(rounds) if not rounds.empty else rounds
        for regime in regimes_in(here) if not here.empty else [fallback]:
            timed = in_regime(here, regime) if not here.empty else here
            yield TimedScope(scope.dataset, scope.protocol, runtime, regime, timed)


ROUND_COLUMNS = [
    *("family", "dataset", "protocol", "metric", "variant", "baseline", "runtime", "regime"),
    *("test", "status", "reason", "n_pairs", "n_models", "mean_variant", "mean_baseline"),
    *("ratio", "ratio_ci_low", "ratio_ci_high", "p_ratio", "mean_ratio", "sd_log", "df"),
]


def round_row(here: pd.DataFrame, pair: Pair, runtime: str, form: str, cfg: StatsConfig) -> dict:
    """The comparison of one pair in one regime's rounds: variant in `form` / baseline whole."""
    if here.empty:
        reason = "no rounds.csv in this benchmark (rerun the benchmark stage)"
        return {"status": NOT_COMPUTED, "reason": reason}
    rr = round_ratio(here, (pair.variant, runtime, form), (pair.baseline, runtime), cfg.confidence)
    if rr.reason:
        return {"status": NOT_COMPUTED, "reason": rr.reason}
    return {
        "status": COMPUTED,
        "reason": "",
        "n_pairs": rr.n_rounds,
        "n_models": rr.n_folds,
        "mean_variant": geo_ms(here, pair.variant, runtime, form),
        "mean_baseline": geo_ms(here, pair.baseline, runtime),
        "ratio": rr.ratio,
        "ratio_ci_low": rr.low,
        "ratio_ci_high": rr.high,
        "p_ratio": rr.p,
        "mean_ratio": rr.mean_ratio,
        "sd_log": rr.sd_log,
        "df": rr.n_rounds - 1,
    }


def compare_rounds(
    rounds: pd.DataFrame, runs: pd.DataFrame, pairs: Iterable[Pair], cfg: StatsConfig
) -> pd.DataFrame:
    """One row per pair, (dataset, protocol) of `runs` and cache regime timed, under the
    protocol's runtime (`claims_runtime`); `rounds`: the benchmarks' rounds.csv with dataset and
    protocol columns (`load_bench_table`)."""
    rows = []
    for t in timed_scopes(rounds, runs, cfg.latency_regime):
        for pair in pairs:
            rows.append(
                {
                    "family": pair.family,
                    "dataset": t.dataset,
                    "protocol": t.protocol,
                    "metric": "latency_median_ms",
                    "variant": pair.variant,
                    "baseline": pair.baseline,
                    "runtime": t.runtime,
                    "regime": t.regime,
                    "test": TEST,
                    **round_row(t.rounds, pair, t.runtime, Form.WHOLE.value, cfg),
                }
            )
    frame = pd.DataFrame(rows).reindex(columns=ROUND_COLUMNS)
    return add_holm(frame, "p_ratio", cfg.alpha, "ratio_", ("family", "protocol", "regime"))


def _spread(x: np.ndarray) -> dict[str, float]:
    q25, q50, q75, q95 = np.percentile(x, [25, 50, 75, 95])
    return {
        "n": x.size,
        "median_ms": float(q50),
        "sd_ms": float(np.std(x, ddof=1)),
        "iqr_ms": float(q75 - q25),
        "mad_ms": float(np.median(np.abs(x - q50))),
        "p95_over_median": float(q95 / q50),
    }


def spread_routing(latency: pd.DataFrame, runs: pd.DataFrame, bench_root: Path) -> pd.DataFrame:
    """One row per timed MoE model and regime (`load_samples`): its latency spread and
    `share_<expert>`: the share of its test clips routed to each expert by the deployed graph
    (routing.csv `frequency`)."""
    facts = variant_facts(runs)
    rows = []
    for d, p, v in (
        runs[["dataset", "protocol", "variant"]].drop_duplicates().itertuples(index=False)
    ):
        if v not in roles.members(facts, moe=True) or latency.empty:
            continue
        routing = read_routing(bench_root, RunId(d, p, v))
        mine = latency[
            (latency["dataset"] == d) & (latency["protocol"] == p) & (latency["variant"] == v)
        ]
        keys = ["runtime", "regime", "fold", "seed"]
        for (runtime, regime, fold, seed), part in mine.groupby(keys, sort=True):
            row = {"dataset": d, "protocol": p, "variant": v, "runtime": runtime}
            row |= {"regime": regime, "fold": fold, "seed": seed}
            row |= _spread(part["latency_ms"].to_numpy(float))
            if routing is not None:
                r = routing[(routing["fold"] == fold) & (routing["seed"] == seed)]
                row |= {f"share_{n}": float(f) for n, f in zip(r["expert_name"], r["frequency"])}
            rows.append(row)
    return pd.DataFrame(rows)


PHASES = ("load_ms", "mel_ms", "render_ms", "backbone_ms")
HEAD = latency_prefix(None, Regime.AFTER_BACKBONE) + "latency_median_ms"


def pipeline_cost(frontend: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, protocol, variant): front-end phases per clip (median over clips of
    each clip's median over repeats, ms), the head (median over timed models of the deployed
    batch-1 median after the backbone), the whole path, the head's share of it, and the path
    against fp32's. Empty without front-end timing or after_backbone heads."""
    if frontend.empty or HEAD not in runs:
        return pd.DataFrame()
    fp32 = roles.resolve(roles.FP32, variant_facts(runs))
    rows = []
    for (d, p), part in runs.groupby(["dataset", "protocol"], sort=True):
        front = frontend[(frontend["dataset"] == d) & (frontend["protocol"] == p)]
        if front.empty:
            continue
        per_clip = front.groupby("clip_id")[[*PHASES, "total_ms"]].median()
        phases = per_clip.median()
        heads = part.groupby("variant")[HEAD].median().dropna()
        for v, head in heads.items():
            total = float(phases["total_ms"]) + float(head)
            rows.append(
                {
                    "dataset": d,
                    "protocol": p,
                    "variant": v,
                    "n_clips": len(per_clip),
                    **{k: float(phases[k]) for k in PHASES},
                    "frontend_ms": float(phases["total_ms"]),
                    "head_ms": float(head),
                    "total_ms": total,
                    "head_share": float(head) / total,
                }
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    base = out[out["variant"] == fp32].set_index(["dataset", "protocol"])["total_ms"]
    ref = out.set_index(["dataset", "protocol"]).index.map(base.get)
    out["total_vs_fp32"] = out["total_ms"].to_numpy() / np.asarray(ref, dtype=float)
    return out

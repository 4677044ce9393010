"""What a latency number measured: the runtime (and its version), the cache regime, the batch,
and the state of the machine while it was timed (each benchmark's run.json).

A latency verdict holds for that measurement, not for a dataset: "ORT 1.31.1, after_backbone,
batch 1, this CPU". `scope_table` (reports/stats/latency_scope.csv) records per benchmark the
runtime each protocol's claims are timed in, its version, the regimes timed, the flush of
`after_backbone`, the run's length, load average and steal time; `measurement` gives a claim's
scope from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.analysis import roles
from qmoe.analysis.evidence import Context
from qmoe.analysis.names import Table
from qmoe.analysis.paper_claims import Timing
from qmoe.analysis.results import variant_facts
from qmoe.analysis.stats import StatsConfig
from qmoe.contract.benchmarks import FORM_WORDS, REFERENCE_BATCH, BenchFolder, Form, claims_runtime
from qmoe.io import InputError


class Measurement(NamedTuple):
    runtime: str  # "ORT 1.31.1", "torch 2.9.1 eager", "ORT 1.31.1 host dispatch"
    regime: str  # "after_backbone", "warm", "cold whole-fold pass"
    batch: str  # "1", "64"

    def scope(self) -> str:
        return f"{self.runtime}, {self.regime}, batch {self.batch}, this CPU"


def runtime_label(runtime: str, versions: dict) -> str:
    """'ORT 1.31.1' / 'torch 2.9.1 eager' / 'torch 2.9.1 eager bf16' (run.json `versions`)."""
    if runtime == "onnxruntime":
        return f"ORT {versions.get('onnxruntime', '?')}"
    tail = " bf16" if runtime == "torch_bf16" else ""
    return f"torch {versions.get('torch', '?')} eager{tail}"


def _steal(run: dict) -> tuple[float, float]:
    """Seconds of CPU time the hypervisor gave away during the run, machine-wide, and their share
    of the machine's CPU time over the run (NaN where not recorded)."""
    m = run.get("machine") or {}
    start, end = m.get("start") or {}, m.get("end") or {}
    ticks = (end.get("steal_ticks"), start.get("steal_ticks"))
    hz, cpus = m.get("clock_ticks_per_s"), m.get("logical_cpus")
    if None in ticks or not hz:
        return np.nan, np.nan
    seconds = (ticks[0] - ticks[1]) / hz
    wall = (end.get("time") or np.nan) - (start.get("time") or np.nan)
    return seconds, seconds / (wall * cpus) if cpus else np.nan


def _load(snapshot: dict) -> float:
    load = (snapshot or {}).get("load_average")
    return float(load[0]) if load else np.nan


def scope_table(bench_root: Path, runs: pd.DataFrame, cfg: StatsConfig) -> pd.DataFrame:
    """One row per (dataset, protocol) of `runs` whose benchmark wrote run.json."""
    rows = []
    for d, p in runs[["dataset", "protocol"]].drop_duplicates().itertuples(index=False):
        path = BenchFolder(Path(bench_root) / d / p).run_json
        if not path.is_file():
            continue
        try:
            run = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not JSON ({e})") from None
        m, versions = run.get("machine") or {}, run.get("versions") or {}
        flush = m.get("after_backbone") or {}
        steal_s, steal_share = _steal(run)
        start, end = m.get("start") or {}, m.get("end") or {}
        rows.append(
            {
                "dataset": d,
                "protocol": p,
                "runtime": claims_runtime(p),
                "runtime_label": runtime_label(claims_runtime(p), versions),
                "regime": cfg.latency_regime,
                "regimes": ";".join((run.get("config") or {}).get("regimes") or ["warm"]),
                "l2_bytes": flush.get("l2_bytes", np.nan),
                "flush_bytes": flush.get("buffer_bytes", np.nan),
                "duration_s": (end.get("time") or np.nan) - (start.get("time") or np.nan),
                "load_start": _load(start),
                "load_end": _load(end),
                "steal_s": steal_s,
                "steal_share": steal_share,
                "onnxruntime": versions.get("onnxruntime", ""),
                "torch": versions.get("torch", ""),
            }
        )
    return pd.DataFrame(rows)


def _scope_row(ctx: Context, d: str, p: str) -> pd.Series | None:
    frame = ctx.families.get(Table.LATENCY_SCOPE)
    if frame is None or frame.empty:
        return None
    hit = frame[(frame["dataset"] == d) & (frame["protocol"] == p)]
    return hit.iloc[0] if len(hit) else None


def _fastest_form(ctx: Context, d: str, p: str) -> str:
    forms = ctx.families.get(Table.LATENCY_MOE_FORMS)
    if forms is None or forms.empty:
        return Form.WHOLE.value
    moe = roles.resolve(roles.PLAIN_MOE, variant_facts(ctx.runs))
    hit = forms[
        (forms["dataset"] == d)
        & (forms["protocol"] == p)
        & (forms["variant"] == moe)
        & (forms["regime"] == ctx.cfg.latency_regime)
        & forms["fastest"].astype(bool)
    ]
    return str(hit.iloc[0]["form"]) if len(hit) else Form.WHOLE.value


def measurement(ctx: Context, timing: Timing | None, d: str, p: str) -> Measurement | None:
    """The measurement a latency claim of (d, p) rests on; None for a claim that is not about
    latency or a protocol without a benchmark."""
    row = _scope_row(ctx, d, p)
    if timing is None or row is None:
        return None
    versions = {"onnxruntime": row["onnxruntime"], "torch": row["torch"]}
    if timing is Timing.FOLD_PASS:
        torch = runtime_label("torch", versions)
        return Measurement(torch, "cold whole-fold pass", str(REFERENCE_BATCH))
    label = row["runtime_label"]
    if timing is Timing.MOE_FORM and claims_runtime(p) == "onnxruntime":
        label = f"{label} {FORM_WORDS[_fastest_form(ctx, d, p)]}"
    return Measurement(label, ctx.cfg.latency_regime, "1")

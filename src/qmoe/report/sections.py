"""Report sections, the DVC metrics file and the per-fold F1 plot data, from generated inputs only.

Nothing here measures anything: it formats the runs table, the stats CSVs and the claims
evidence. Every number in the report comes from those files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from qmoe.analysis.names import COMPUTED, Table
from qmoe.catalog import info, order, paper_name
from qmoe.report import tables
from qmoe.report.verdicts import PROTOCOLS

METRIC_COLUMNS = ("macro_f1", "accuracy", "weighted_f1")


def variant_summary(runs: pd.DataFrame, value: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per dataset x protocol x variant: mean, sd, n and a t-interval of the mean over models."""

    def agg(x: pd.Series) -> pd.Series:
        x = x.dropna()
        n, m = len(x), x.mean()
        sd = x.std(ddof=1) if n > 1 else np.nan
        half = sps.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n) if n > 1 else np.nan
        return pd.Series({"mean": m, "sd": sd, "n": n, "ci_low": m - half, "ci_high": m + half})

    return (
        runs.groupby(["dataset", "protocol", "variant"], sort=True)[value]
        .apply(agg)
        .unstack()
        .reset_index()
    )


def metrics(runs: pd.DataFrame) -> dict:
    """DVC metrics: F1/accuracy mean and std per dataset/protocol/variant. Deterministic (a clean
    rerun gives the same file): no clock or energy readings, those are in `benchmark_metrics`."""
    out: dict = {}
    for (d, p, v), part in runs.groupby(["dataset", "protocol", "variant"], sort=True):
        entry = {"n_models": int(len(part))}
        for col in METRIC_COLUMNS:
            entry[f"{col}_mean"] = round(float(part[col].mean()), 6)
            entry[f"{col}_std"] = round(float(part[col].std(ddof=1)), 6) if len(part) > 1 else None
        out.setdefault(d, {}).setdefault(p, {})[v] = entry
    return out


BENCHMARK_METRICS = (
    "latency_median_ms",  # deployed artefact, warm
    "latency_p99_ms",
    "after_backbone_latency_median_ms",  # deployed artefact, the L2 flushed before each call
    "energy_per_inference_mj",
)


def benchmark_metrics(runs: pd.DataFrame) -> dict:
    """DVC metrics measured on this machine (they vary run to run): median over models of the
    latency median and p99, inference energy (a CodeCarbon estimate) and packed/FP32 size."""
    out: dict = {}
    for (d, p, v), part in runs.groupby(["dataset", "protocol", "variant"], sort=True):
        entry = {c: round(float(part[c].median()), 6) for c in BENCHMARK_METRICS if c in part}
        if {"size_packed_bytes", "size_fp32_state_dict_bytes"} <= set(part.columns):
            ratio = part["size_packed_bytes"] / part["size_fp32_state_dict_bytes"]
            entry["size_packed_over_fp32"] = round(float(ratio.median()), 6)
        out.setdefault(d, {}).setdefault(p, {})[v] = entry
    return out


def f1_per_fold(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """DVC plot data: one row per model, `run` = 'dataset/protocol/variant/f<k>s<s>', `f1` =
    the `metric` column (named in `metric`, so the plot's y field never changes)."""
    keys = ["dataset", "protocol", "variant", "fold", "seed"]
    frame = runs[keys].copy()
    runs_id = [f"{d}/{p}/{v}/f{f}s{s}" for d, p, v, f, s in frame.itertuples(index=False)]
    frame.insert(0, "run", runs_id)
    return frame.assign(metric=metric, f1=runs[metric].round(6).to_numpy())


# --- other sections ---------------------------------------------------------------------------


def what_was_run(runs: pd.DataFrame) -> str:
    lines = []
    for (d, p), part in runs.groupby(["dataset", "protocol"], sort=True):
        folds, seeds = (sorted(int(x) for x in part[c].unique()) for c in ("fold", "seed"))
        lines.append(
            f"- `{d}` / `{p}`: {part['variant'].nunique()} variants x {len(folds)} folds "
            f"{folds} x seeds {seeds} = {len(part)} trained and benchmarked models"
        )
    absent = [p for p in PROTOCOLS if p not in set(runs["protocol"])]
    if absent:
        lines.append(f"- not run: protocol(s) {absent} (not in params `study.protocols`)")
    return "\n".join(lines) + "\n"


def variant_table(variants: list[str]) -> str:
    lines = ["| Variant | Paper's table name | What it really is |", "|---|---|---|"]
    lines += [f"| `{v}` | {paper_name(v)} | {info(v).what} |" for v in order(variants)]
    return "\n".join(lines) + "\n"


def side_by_side(runs: pd.DataFrame, f1: str, energy: str = "energy mJ") -> str:
    """Variant rows; F1, latency and inference energy (header `energy`) under each protocol."""
    parts = {
        c: variant_summary(runs, c).set_index(["dataset", "protocol", "variant"])
        for c in (f1, "latency_median_ms", "energy_per_inference_mj")
        if c in runs
    }
    head = ["Dataset", "Variant"] + [
        f"{h} ({p})"
        for p in PROTOCOLS
        for h in (f"{f1} mean ± sd (n)", "latency ms (ONNX Runtime, warm, batch 1)", energy)
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in sorted(runs["dataset"].unique()):
        for v in order(list(runs["variant"].unique())):
            cells = [d, f"`{v}`"]
            for p in PROTOCOLS:
                cells += [
                    _cell(parts, c, (d, p, v), k)
                    for c, k in ((f1, 4), ("latency_median_ms", 4), ("energy_per_inference_mj", 4))
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(parts: dict, col: str, key: tuple, digits: int) -> str:
    frame = parts.get(col)
    if frame is None or key not in frame.index:
        return "not run"
    r = frame.loc[key]
    sd = f" ± {r['sd']:.{digits}f}" if np.isfinite(r["sd"]) else ""
    return (
        f"{r['mean']:.{digits}f}{sd} ({int(r['n'])})"
        if col != "latency_median_ms"
        else f"{r['mean']:.{digits}f}"
    )


def not_computed(stats_tables: dict[str, pd.DataFrame]) -> str:
    """Every planned test that was not computed, grouped by its reason."""
    rows = []
    for name, frame in stats_tables.items():
        if "status" not in frame:
            continue
        for _, r in frame[frame["status"] != COMPUTED].iterrows():
            rows.append(
                (
                    name,
                    f"{r['dataset']}/{r['protocol']}",
                    f"{r['variant']} vs {r['baseline']}",
                    str(r["reason"]),
                )
            )
    if not rows:
        return "Every planned test was computed.\n"
    frame = pd.DataFrame(rows, columns=["table", "scope", "comparison", "reason"])
    join = lambda sep: lambda s: sep.join(dict.fromkeys(s))  # noqa: E731 - ordered unique
    grouped = frame.groupby("reason", sort=False).agg(
        tables=("table", join(", ")),
        scopes=("scope", join(", ")),
        comparisons=("comparison", join("; ")),
        n=("table", "size"),
    )
    lines = ["| Reason | Tests | Comparisons | Scopes | Tables |", "|---|---|---|---|---|"]
    lines += [
        f"| {reason} | {g['n']} | {g['comparisons']} | {g['scopes']} | {g['tables']} |"
        for reason, g in grouped.iterrows()
    ]
    return f"{len(frame)} planned tests were not computed:\n\n" + "\n".join(lines) + "\n"


def routing_section(frame: pd.DataFrame) -> str:
    """Escalating MoEs: escalation share and its stability over mask banks and T."""
    if frame.empty:
        return (
            "### Uncertainty routing: escalation share and stability\n\nNo escalating MoE "
            "(route, random) in this study.\n"
        )
    cols = [
        tables.text("dataset", "Dataset"),
        tables.text("protocol", "Protocol"),
        tables.text("variant", "Variant"),
        tables.Column(
            "T", lambda r: "placebo" if r["mc_samples"] == 0 else str(int(r["mc_samples"]))
        ),
        tables.number("n_models", "Models", 0),
        tables.text("calibration", "Threshold from"),
        tables.number("n_calibration_min", "Clips (min)", 0),
        tables.number("share_mean", "Escalated share", 3),
        tables.number("share_sd_models", "sd over models", 3),
        tables.number("share_sd_banks", "sd over banks", 3),
        tables.number("jaccard_mean", "Overlap with deployed", 2),
        tables.number("unstable_share", "Escalated in < half the banks", 2),
        tables.number("f1_mean", "Macro-F1", 3),
        tables.number("f1_sd_banks", "F1 sd banks", 3),
    ]
    table = tables.Table(Table.ROUTING_ESCALATION, "Uncertainty routing", frame, cols)
    return (
        "### Uncertainty routing: escalation share and stability\n\n"
        "The same trained weights re-measured with other dropout-mask banks and T (threshold "
        "recalibrated on the same clips). A high 'escalated in < half the banks' share means "
        "escalation is mostly the bank's doing. Route against random escalation on the same "
        "weights: the next section.\n\n" + tables.markdown(table)
    )

"""Report sections on latency beyond the paired tests: how much of a clip's whole path the
classifier head is (reports/stats/pipeline_cost.csv) and each MoE model's latency spread beside
its routing shares (reports/stats/latency_spread_routing.csv); both written by the stats stage
(qmoe.analysis.latency)."""

from __future__ import annotations

import pandas as pd

from qmoe.report import tables

HEAD_ONLY = (
    "Every latency in the claims and the tests above is the classifier head's, as deployed "
    "(batch 1, one core): the embedding that feeds it costs far more per clip (below)."
)


def whole_path(cost: pd.DataFrame) -> str:
    """Per clip at batch 1: decode, mel, image, backbone, head; the head's share and the whole
    path against fp32's (what quantising the head buys end to end)."""
    if cost.empty:
        return (
            "No front-end timing in these benchmarks (frontend.csv): whole-path cost not shown.\n"
        )
    phases = [
        tables.number("load_ms", "Decode (ms)", 2),
        tables.number("mel_ms", "Mel (ms)", 2),
        tables.number("render_ms", "Image (ms)", 2),
        tables.number("backbone_ms", "Backbone (ms)", 2),
        tables.number("head_ms", "Head (ms)", 4),
        tables.number("total_ms", "Whole path (ms)", 2),
        tables.Column("Head share", lambda r: f"{100 * r['head_share']:.2f} %"),
        tables.number("total_vs_fp32", "Path / fp32 path", 4),
    ]
    cols = [tables.text("dataset"), tables.text("protocol"), tables.text("variant"), *phases]
    n = int(cost["n_clips"].max()) if "n_clips" in cost else 0
    return (
        f"Whole path per clip at batch 1 on the benchmark's core (median over {n} clips of each "
        "clip's median; the head is the deployed artefact's batch-1 median). "
        f"{HEAD_ONLY}\n\n" + tables.markdown(tables.Table("pipeline_cost", "", cost, cols))
    )


def moe_spread(spread: pd.DataFrame) -> str:
    """Each timed MoE model's per-call spread beside the share of its test clips routed to each
    expert: a model that sends every clip to one expert has one kernel's spread."""
    if spread.empty:
        return "No timed MoE model: spread beside routing not shown.\n"
    shares = [c for c in spread.columns if c.startswith("share_")]
    cols = [
        *(tables.text(c) for c in ("dataset", "protocol", "variant")),
        tables.number("fold", "Fold", 0),
        tables.number("median_ms", "Median (ms)", 4),
        tables.number("iqr_ms", "IQR (ms)", 4),
        tables.number("mad_ms", "MAD (ms)", 4),
        tables.number("sd_ms", "SD (ms)", 4),
        *(tables.Column(c.removeprefix("share_"), _percent(c)) for c in shares),
    ]
    return (
        "Per-call latency spread of each timed MoE model (batch 1, deployed graph) beside the "
        "share of its test clips the graph routed to each expert.\n\n"
        + tables.markdown(tables.Table("latency_spread_routing", "", spread, cols))
    )


def _percent(col: str) -> tables.Cell:
    return lambda r: f"{100 * r[col]:.0f} %" if pd.notna(r[col]) else ""

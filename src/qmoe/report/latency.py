"""Report sections on latency beyond the paired tests: how much of a clip's whole path the
classifier head is (reports/stats/pipeline_cost.csv), the MoE overhead over the 8-bit model split
into router, dispatch and expert per exact form (latency_moe_forms.csv), the machine while it was
timed (latency_scope.csv) and each MoE model's latency spread beside its routing shares
(latency_spread_routing.csv); all written by the stats stage (qmoe.analysis.latency, moe_forms,
latency_scope)."""

from __future__ import annotations

import pandas as pd

from qmoe.analysis.names import Table
from qmoe.contract.benchmarks import FORM_WORDS
from qmoe.report import tables

HEAD_ONLY = (
    "Every latency in the claims and the tests is the classifier head's at batch 1 on one pinned "
    "core, timed in the protocol's own runtime (faithful: torch eager on the fake-quantised "
    "training modules, as the reference timed them; corrected: the deployed ONNX Runtime "
    "artefacts) and in two cache regimes, interleaved (warm: back-to-back calls; "
    "after_backbone: the core's L2 flushed before each call, as the backbone pass before a "
    "deployed head leaves it); the claims use `stats.latency_regime` and show the other beside. "
    "A latency verdict's scope is that measurement (runtime, regime, batch, this CPU), not the "
    "dataset. The embedding that feeds the head costs far more per clip (Whole path per clip)."
)


def whole_path(cost: pd.DataFrame) -> str:
    """Per clip at batch 1: decode, mel, image, backbone, head; the head's share and the whole
    path against fp32's (what quantising the head buys end to end)."""
    if cost.empty:
        return (
            "No front-end timing (frontend.csv) or no after_backbone head times in these "
            "benchmarks: whole-path cost not shown.\n"
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
        "clip's median). The head is the deployed ONNX Runtime artefact's batch-1 median in the "
        "after_backbone regime: behind a backbone pass a head never runs warm.\n\n"
        + tables.markdown(tables.Table(Table.PIPELINE_COST, "", cost, cols))
    )


def _share(col: str, digits: int = 0) -> tables.Cell:
    return lambda r: f"{100 * r[col]:.{digits}f} %" if pd.notna(r.get(col)) else ""


def _ratio(r: pd.Series) -> str:
    if pd.isna(r.get("ratio")):
        return str(r.get("reason", "n/a"))
    return f"x{r['ratio']:.2f} [{r['ratio_ci_low']:.2f}, {r['ratio_ci_high']:.2f}]"


def moe_decomposition(forms: pd.DataFrame) -> str:
    """Per MoE, regime and exact form: router, expert and dispatch ms, their shares of the
    overhead over the 8-bit model, and MoE / 8-bit; the claim uses the fastest form."""
    if forms.empty:
        return "No MoE was timed in its parts: no decomposition.\n"
    frame = forms.assign(
        form_shown=[
            f"{FORM_WORDS.get(f, f)}{' (fastest)' if fast else ''}"
            for f, fast in zip(forms["form"], forms["fastest"].astype(bool))
        ]
    )
    cols = [
        *(tables.text(c) for c in ("protocol", "variant", "runtime", "regime")),
        tables.text("form_shown", "Form"),
        tables.number("router_ms", "Router (ms)", 4),
        tables.number("expert_ms", "Expert (ms)", 4),
        tables.number("dispatch_ms", "Dispatch (ms)", 4),
        tables.number("mean_variant", "MoE (ms)", 4),
        tables.number("mean_baseline", "8-bit (ms)", 4),
        tables.Column("Router / expert / dispatch share of the overhead", _shares),
        tables.Column("MoE / 8-bit [95 % CI]", _ratio),
    ]
    return (
        "The MoE's overhead over the 8-bit model, split per exact form (both give the MoE's "
        "output; the export stage checks the host form's expert and logits against the one "
        "graph on every test clip): one graph = the artefact with an `If` per expert; host "
        "dispatch = the router graph, then only the chosen expert's artefact, called by the "
        "host. Router and expert are each timed alone in the same rounds (the expert: per clip, "
        "the one the MoE routes it to); dispatch = form - router - expert (negative when a "
        "part timed alone costs more than inside the form, e.g. after a flush of its own). "
        "Shares: router / overhead, (expert - 8-bit) / overhead, dispatch / overhead, overhead = "
        "MoE - 8-bit. Under torch the MoE is one module: no parts. Geometric means of per-round "
        "medians, batch 1.\n\n"
        + tables.markdown(tables.Table(Table.LATENCY_MOE_FORMS, "", frame, cols))
    )


def _shares(r: pd.Series) -> str:
    cells = [_share(c)(r) for c in ("router_share", "expert_share", "dispatch_share")]
    return " / ".join(cells) if all(cells) else ""


def machine_state(scope: pd.DataFrame) -> str:
    """Each benchmark's length, load average and steal time, and the flush of after_backbone."""
    if scope.empty:
        return "No run.json in these benchmarks: the machine's state while timing is unknown.\n"
    cols = [
        *(tables.text(c) for c in ("dataset", "protocol")),
        tables.text("runtime_label", "Claims runtime"),
        tables.number("duration_s", "Timed for (s)", 0),
        tables.Column("Load average (1 min) start -> end", _load),
        tables.number("steal_s", "Steal (CPU s)", 2),
        tables.Column("Steal share", _share("steal_share", 1)),
        tables.Column("after_backbone flush", _flush),
    ]
    return (
        "The machine while each benchmark timed (run.json: snapshots before and after the timed "
        "phase): load average of the whole machine, and steal time (CPU time the hypervisor gave "
        "to other tenants of this VM, machine-wide, and its share of the machine's CPU time). "
        "Latency timed beside other load is slower and noisier than on an idle core.\n\n"
        + tables.markdown(tables.Table(Table.LATENCY_SCOPE, "", scope, cols))
    )


def _load(r: pd.Series) -> str:
    return f"{r['load_start']:.2f} -> {r['load_end']:.2f}" if pd.notna(r.get("load_start")) else ""


def _flush(r: pd.Series) -> str:
    if pd.isna(r.get("flush_bytes")):
        return "not timed"
    return (
        f"{r['flush_bytes'] / 2**20:.1f} MiB written per call (L2 {r['l2_bytes'] / 2**10:.0f} KiB)"
    )


def moe_spread(spread: pd.DataFrame) -> str:
    """Each timed MoE model's per-call spread beside the share of its test clips routed to each
    expert: a model that sends every clip to one expert has one kernel's spread."""
    if spread.empty:
        return "No timed MoE model: spread beside routing not shown.\n"
    shares = [c for c in spread.columns if c.startswith("share_")]
    cols = [
        *(tables.text(c) for c in ("dataset", "protocol", "variant", "runtime", "regime")),
        tables.number("fold", "Fold", 0),
        tables.number("median_ms", "Median (ms)", 4),
        tables.number("iqr_ms", "IQR (ms)", 4),
        tables.number("mad_ms", "MAD (ms)", 4),
        tables.number("sd_ms", "SD (ms)", 4),
        *(tables.Column(c.removeprefix("share_"), _percent(c)) for c in shares),
    ]
    return (
        "Per-call latency spread of each timed MoE model (batch 1, the protocol's runtime, each "
        "cache regime) beside the share of its test clips the deployed graph routed to each "
        "expert.\n\n"
        + tables.markdown(tables.Table(Table.LATENCY_SPREAD_ROUTING, "", spread, cols))
    )


def _percent(col: str) -> tables.Cell:
    return lambda r: f"{100 * r[col]:.0f} %" if pd.notna(r[col]) else ""

"""Which data goes into which figure: loads the per-sample files one dataset needs and calls
`qmoe.report.plotting`. A figure without data becomes a placeholder that says why. Bit-widths,
MoE-ness and curiosity come from the runs table's fact columns (each run's config)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qmoe.analysis.names import Table
from qmoe.contract.benchmarks import load_samples, read_routing
from qmoe.contract.runs import class_names, read_predictions
from qmoe.contract.study import RunId
from qmoe.report import plotting
from qmoe.report.sections import variant_summary

# Fixed metadata: no creation date, so two runs write identical files.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}

# Every figure of a dataset, in report order, with its one-line caption: what to look at.
FIGURES = {
    "f1_vs_bits": "Does F1 fall as weight bits shrink? Overlapping 95 % intervals mean this study "
    "cannot tell those bit-widths apart.",
    "size_vs_f1": "Points on the grey Pareto front give the best F1 for their size; a point "
    "well left of fp32 at the same height is compression that costs no measurable F1.",
    "latency_ecdf": "Further left is faster; the right-hand tail of a curve is its slow "
    "inferences (dashed: mixtures of experts; each protocol's runtime, the claims' cache "
    "regime).",
    "moe_latency": "Compare the violins' widths (latency spread) and medians: if curiosity cut "
    "latency variance, its violins would be narrower than `moe`'s.",
    "energy_vs_f1": "Further left (less energy per inference) and higher (more F1) is better; "
    "whether energy was measured or estimated is stated under Deployment.",
    "curiosity_histogram": "Most clips sit at u near 0 (the router is sure); the right-hand "
    "tail is what uncertainty-aware routing can escalate.",
    "curiosity_per_class": "Taller bars are the classes the router is unsure about; compare "
    "them with the confusion matrix's weak rows.",
    "routing_distribution": "Share of test clips each expert receives (mean ± sd over models): "
    "a mixture that sends nearly everything to one expert is that expert at extra cost.",
    "routing_confidence": "Gate probability of the chosen expert: 'the 8-bit expert gets the "
    "uncertain samples' needs the w8a8 box clearly lower than the others.",
    "routing_share_curve": "Each route model's own weights, from escalating no clip (left) to "
    "every clip (right): if u picks the clips worth escalating, the solid curve (highest u first) "
    "lies above the dashed one (as many clips at random, shaded: its 95 % range) and rises above "
    "its left end; the dotted line is the share the threshold escalates.",
    "confusion_best": "The diagonal is each class's recall for the best model; bright "
    "off-diagonal cells are the confusions that remain.",
}


class FigureData(NamedTuple):
    runs: pd.DataFrame  # this dataset's rows of the runs table
    latency: pd.DataFrame  # per-inference samples
    predictions: pd.DataFrame  # MoE variants and the best model, with expert_name
    routing: pd.DataFrame  # routing.csv rows of every MoE variant
    class_names: list[str] | None
    best: tuple[str, str] | None  # (protocol, variant) with the highest mean F1
    share_curve: pd.DataFrame = pd.DataFrame()  # stats routing_share_curve.csv rows
    same_weights: pd.DataFrame = pd.DataFrame()  # stats routing_same_weights.csv rows


def best_model(runs: pd.DataFrame, f1: str) -> tuple[str, str] | None:
    """Highest mean F1, preferring the corrected protocol when it was run."""
    if runs.empty:
        return None
    protocol = "corrected" if "corrected" in set(runs["protocol"]) else sorted(runs["protocol"])[0]
    means = runs[runs["protocol"] == protocol].groupby("variant")[f1].mean()
    return protocol, str(means.idxmax())


def load(
    runs_root: Path,
    bench_root: Path,
    runs: pd.DataFrame,
    dataset: str,
    f1: str,
    regime: str,
    stats: dict[str, pd.DataFrame] | None = None,
) -> FigureData:
    """One dataset's figure inputs; `regime`: the cache regime of its latency samples (the
    claims', stats.latency_regime), in each protocol's runtime; `stats`: the stats stage's tables
    (the routing curve)."""
    runs = runs[runs["dataset"] == dataset]
    curve, same = (
        (stats or {}).get(t, pd.DataFrame())
        for t in (Table.ROUTING_SHARE_CURVE, Table.ROUTING_SAME_WEIGHTS)
    )
    best = best_model(runs, f1)
    moe = runs.loc[runs["is_moe"].astype(bool), ["protocol", "variant"]].drop_duplicates()
    wanted = set(moe.itertuples(index=False, name=None)) | ({best} if best else set())
    preds, routing = _predictions(runs_root, bench_root, dataset, sorted(wanted))
    names = class_names(runs_root, RunId(dataset, *best)) if best else None
    return FigureData(
        runs,
        _in_regime(load_samples(bench_root, runs), regime),
        pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(),
        pd.concat(routing, ignore_index=True) if routing else pd.DataFrame(),
        names,
        best,
        curve[curve["dataset"] == dataset] if not curve.empty else curve,
        same[same["dataset"] == dataset] if not same.empty else same,
    )


def _predictions(
    runs_root: Path, bench_root: Path, dataset: str, wanted: list[tuple[str, str]]
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Test predictions (with expert names where the model routes) and routing records of each
    wanted (protocol, variant)."""
    preds, routing = [], []
    for p, v in wanted:
        where = RunId(dataset, p, v)
        pred, rout = (
            read_predictions(where.under(runs_root), where),
            read_routing(bench_root, where),
        )
        if rout is not None:
            routing.append(rout)
            names = rout[["expert", "expert_name"]].drop_duplicates()
            pred = (
                pred.merge(names, on="expert", how="left")
                if pred is not None and "expert" in pred
                else pred
            )
        if pred is not None:
            preds.append(pred)
    return preds, routing


def _in_regime(samples: pd.DataFrame, regime: str) -> pd.DataFrame:
    return samples[samples["regime"] == regime].reset_index(drop=True)


def _has(frame: pd.DataFrame, *cols: str) -> bool:
    return not frame.empty and all(c in frame.columns and frame[c].notna().any() for c in cols)


def _summary_with(runs: pd.DataFrame, f1: str, col: str) -> pd.DataFrame:
    s = variant_summary(runs, f1)
    extra = runs.groupby(["dataset", "protocol", "variant"])[col].mean().rename(col).reset_index()
    return s.merge(extra, on=["dataset", "protocol", "variant"])


def _mixtures(runs: pd.DataFrame, curious: bool = False) -> set[str]:
    """MoE variants of the runs table (only those with a curiosity mode other than none)."""
    sel = runs["is_moe"].astype(bool)
    if curious:
        sel &= runs["curiosity"] != "none"
    return set(runs.loc[sel, "variant"])


def _either(ok: bool, draw: Callable[[], Figure], title: str, reason: str) -> Figure:
    """`draw()` when its data is there, else a placeholder saying why not."""
    return draw() if ok else plotting.placeholder(title, reason)


def _summary_figures(data: FigureData, f1: str) -> dict[str, Figure]:
    """Figures of per-model numbers (runs table) and latency samples, both protocols."""
    runs, lat, mixtures = data.runs, data.latency, _mixtures(data.runs)
    lat = lat.assign(is_moe=lat["variant"].isin(mixtures)) if not lat.empty else lat
    moe_lat = lat[lat["is_moe"]] if not lat.empty else lat
    return _model_figures(runs, f1) | {
        "latency_ecdf": _either(
            _has(lat, "latency_ms"),
            lambda: plotting.latency_ecdf(lat),
            "latency",
            "no latency samples",
        ),
        "moe_latency": _either(
            _has(moe_lat, "latency_ms"),
            lambda: plotting.latency_violin(moe_lat),
            "MoE latency",
            "no MoE latency samples",
        ),
        "routing_share_curve": _either(
            _has(data.share_curve, "f1_u"),
            lambda: plotting.routing_share_curve(data.share_curve, data.same_weights),
            "F1 against escalated share",
            "no route model in this study",
        ),
    }


def _model_figures(runs: pd.DataFrame, f1: str) -> dict[str, Figure]:
    """F1 against bit-width, size and energy: one point per variant (the runs table)."""
    singles = runs[~runs["is_moe"].astype(bool)]
    size, energy = "size_packed_bytes", "energy_per_inference_mj"
    return {
        "f1_vs_bits": _either(
            not singles.empty,
            lambda: plotting.f1_vs_bits(_summary_with(singles, f1, "weight_bits"), f1),
            "F1 vs bit-width",
            "no single-model variants",
        ),
        "size_vs_f1": _either(
            _has(runs, size),
            lambda: plotting.scatter_vs_f1(
                _summary_with(runs, f1, size), size, "packed size (bytes)", f1, pareto=True
            ),
            "size vs F1",
            f"no {size}",
        ),
        "energy_vs_f1": _either(
            _has(runs, energy),
            lambda: plotting.scatter_vs_f1(
                _summary_with(runs, f1, energy), energy, "energy per inference (mJ, estimate)", f1
            ),
            "energy vs F1",
            f"no {energy}",
        ),
    }


def _sample_figures(data: FigureData) -> dict[str, Figure]:
    """Per-sample figures; they show one protocol (corrected when run), never a mix of two."""
    main = data.best[0] if data.best else ""
    title = f"protocol: {main}, all folds and seeds"
    pred = data.predictions
    pred = pred[pred["protocol"] == main] if not pred.empty else pred
    cur = pred[pred["variant"].isin(_mixtures(data.runs, curious=True))] if not pred.empty else pred
    moe = pred[pred["variant"].isin(_mixtures(data.runs))] if not pred.empty else pred
    rout = data.routing
    rout = rout[rout["protocol"] == main] if not rout.empty else rout
    no_cur = "no curiosity variant was run"
    return {
        "curiosity_histogram": _either(
            _has(cur, "uncertainty"),
            lambda: plotting.curiosity_histogram(cur, title),
            "curiosity",
            no_cur,
        ),
        "curiosity_per_class": _either(
            _has(cur, "uncertainty"),
            lambda: plotting.curiosity_per_class(cur, data.class_names, title),
            "curiosity per class",
            no_cur,
        ),
        "routing_distribution": _either(
            _has(rout, "frequency"),
            lambda: plotting.routing_distribution(rout, title),
            "routing",
            "no routing.csv",
        ),
        "routing_confidence": _either(
            _has(moe, "gate_prob", "expert_name"),
            lambda: plotting.routing_confidence(moe, title),
            "routing confidence",
            "no MoE predictions with routing",
        ),
    }


def build(data: FigureData, f1: str) -> dict[str, Figure]:
    """Every figure of FIGURES for one dataset, in FIGURES order."""
    figs = {
        **_summary_figures(data, f1),
        **_sample_figures(data),
        "confusion_best": _confusion(data),
    }
    return {name: figs[name] for name in FIGURES}


def _confusion(data: FigureData) -> Figure:
    if data.best is None or data.predictions.empty:
        return plotting.placeholder("confusion matrix", "no predictions of the best model")
    protocol, variant = data.best
    pred = data.predictions
    pred = pred[(pred["protocol"] == protocol) & (pred["variant"] == variant)]
    if pred.empty:
        return plotting.placeholder("confusion matrix", f"no predictions.csv for {variant}")
    n = max(int(pred[["label", "pred"]].to_numpy().max()) + 1, len(data.class_names or []))
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (pred["label"].to_numpy(int), pred["pred"].to_numpy(int)), 1)
    return plotting.confusion(
        matrix, data.class_names, f"{variant} ({protocol}), all folds and seeds"
    )


def save(fig: Figure, folder: Path, stem: str, formats: tuple[str, ...], dpi: int) -> None:
    """folder/<format>/<stem>.<format> for each format (PNG apart, for `dvc plots`)."""
    for fmt in formats:
        (Path(folder) / fmt).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(folder) / fmt / f"{stem}.{fmt}", dpi=dpi, metadata=_METADATA.get(fmt))

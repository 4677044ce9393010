"""Figures: tidy DataFrame in, `matplotlib.figure.Figure` out (no pyplot state, nothing saved here).

Each function draws one dataset; protocols are side-by-side panels. A figure whose data is
absent is replaced by `placeholder`, which states why, so no figure silently disappears.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from qmoe.catalog import order
from qmoe.report import style

PROTOCOL_MARKERS = {"corrected": "o", "faithful": "s"}


def plain(text: str) -> str:
    """`text` drawn literally: a user's class name '$x$' is not mathtext (which can crash)."""
    return text.replace("$", r"\$")


def _panels(protocols: list[str], width: float = 5.0, height: float = 4.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * max(len(protocols), 1), height), layout="constrained")
    axes = fig.subplots(1, max(len(protocols), 1), squeeze=False)[0]
    for ax, protocol in zip(axes, protocols):
        ax.set_title(protocol)
    return fig, list(axes)


def placeholder(title: str, reason: str) -> Figure:
    """A figure that says what is missing and why."""
    fig = Figure(figsize=(6, 2.5), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}\nnot computed: {reason}", ha="center", va="center", wrap=True)
    return fig


def f1_vs_bits(summary: pd.DataFrame, metric_label: str) -> Figure:
    """summary: protocol, variant, mean, ci_low, ci_high, weight_bits (single models; the
    configured weight bits, log2 3 for ternary). One panel per protocol, one legend."""
    protocols = sorted(summary["protocol"].unique())
    fig, axes = _panels(protocols, width=4.2, height=4.2)
    for ax in axes[1:]:
        ax.sharey(axes[0])  # protocols compared on one scale
    for ax, protocol in zip(axes, protocols):
        part = summary[summary["protocol"] == protocol].dropna(subset=["weight_bits"])
        part = part.assign(x=style.spread(part["weight_bits"], part["variant"]))
        for variant in order(list(part["variant"])):
            row = part[part["variant"] == variant]
            style.errorbar(ax, row["x"], row, variant)
        bits = sorted(part["weight_bits"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(bits, [f"{b:.2g}" for b in bits])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=8)  # 1.6 and 2 sit close on a log2 axis
    fig.supxlabel("weight bits as configured (ternary = log2 3 = 1.6; q16_reference is FP32)")
    axes[0].set_ylabel(f"{metric_label} (mean, 95 % CI over folds x seeds)")
    style.variant_legend(fig, axes)
    return fig


def _pareto(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both smaller x and larger y."""
    idx = np.argsort(x, kind="stable")
    front, best = [], -np.inf
    for i in idx:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return np.array(front, dtype=int)


def scatter_vs_f1(
    summary: pd.DataFrame, x_col: str, x_label: str, metric_label: str, pareto: bool = False
) -> Figure:
    """summary: protocol, variant, mean (F1), ci_low, ci_high, `x_col`; log x axis."""
    protocols = sorted(summary["protocol"].unique())
    fig, axes = _panels(protocols, width=4.2)
    for ax, protocol in zip(axes, protocols):
        part = summary[summary["protocol"] == protocol].dropna(subset=[x_col, "mean"])
        part = part.assign(x=style.spread(part[x_col], part["variant"], 2**0.06))
        for variant in order(list(part["variant"])):
            row = part[part["variant"] == variant]
            style.errorbar(ax, row["x"], row, variant)
        if pareto and len(part):
            front = _pareto(part[x_col].to_numpy(float), part["mean"].to_numpy(float))
            ax.step(
                part[x_col].to_numpy()[front],
                part["mean"].to_numpy()[front],
                where="post",
                color="grey",
                alpha=0.6,
                label="Pareto front",
            )
        ax.set_xscale("log")
        style.log_ticks(ax.xaxis, part["x"])
        ax.set_ylabel(metric_label)
    fig.supxlabel(f"{x_label} (near-equal values drawn side by side)", fontsize=10)
    style.variant_legend(fig, axes)
    return fig


def latency_ecdf(latency: pd.DataFrame) -> Figure:
    """latency: protocol, variant, is_moe, latency_ms (all samples); one ECDF per variant
    (dashed for MoEs), log x."""
    protocols = sorted(latency["protocol"].unique())
    fig, axes = _panels(protocols, width=5.0)
    for ax, protocol in zip(axes, protocols):
        part = latency[latency["protocol"] == protocol]
        for variant in order(list(part["variant"].unique())):
            values = np.sort(part.loc[part["variant"] == variant, "latency_ms"].to_numpy(float))
            ax.step(
                values,
                np.arange(1, values.size + 1) / values.size,
                where="post",
                label=variant,
                color=style.variant_style(variant).colour,
                linestyle="--" if part.loc[part["variant"] == variant, "is_moe"].any() else "-",
            )
        ax.set_xscale("log")
        style.log_ticks(ax.xaxis, part["latency_ms"])
        ax.set_xlabel("per-inference latency (ms, batch 1)")
        ax.set_ylabel("fraction of inferences")
    style.variant_legend(fig, axes)
    return fig


def latency_violin(latency: pd.DataFrame) -> Figure:
    """latency of MoE variants: one violin per variant (log10 ms), panels by protocol."""
    protocols = sorted(latency["protocol"].unique())
    fig, axes = _panels(protocols, width=4.5)
    for ax, protocol in zip(axes, protocols):
        part = latency[latency["protocol"] == protocol]
        variants = order(list(part["variant"].unique()))
        data = [
            np.log10(part.loc[part["variant"] == v, "latency_ms"].to_numpy(float)) for v in variants
        ]
        # horizontal: variant names read left to right and never collide
        ax.violinplot(data, orientation="horizontal", showmedians=True)
        ax.set_yticks(range(1, len(variants) + 1), variants, fontsize=7)
        ax.invert_yaxis()  # registry order top to bottom
        ax.set_xlabel("log10 per-inference latency (ms)")
    return fig


def curiosity_histogram(pred: pd.DataFrame, title: str = "") -> Figure:
    """pred: variant, uncertainty; step histograms (30 bins, log counts) per curiosity mode."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    bins = np.histogram_bin_edges(pred["uncertainty"].to_numpy(float), bins=30)
    for variant in order(list(pred["variant"].unique())):
        ax.hist(
            pred.loc[pred["variant"] == variant, "uncertainty"],
            bins=bins,
            histtype="step",
            label=variant,
        )
    ax.set_yscale("log")
    ax.set_xlabel("curiosity u = summed variance of MC routing probabilities")
    ax.set_ylabel("test samples")
    fig.legend(fontsize=7, loc="outside right upper")
    fig.suptitle(title, fontsize=9)
    return fig


def curiosity_per_class(
    pred: pd.DataFrame, class_names: list[str] | None, title: str = ""
) -> Figure:
    """Mean u per true class, one bar group per class and one bar per curiosity mode."""
    means = pred.groupby(["label", "variant"])["uncertainty"].mean().unstack("variant")
    means = means[order(list(means.columns))]
    n_cls, n_var = means.shape
    fig = Figure(figsize=(max(6.0, 0.3 * n_cls * max(n_var, 1)), 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(n_var, 1)
    for j, variant in enumerate(means.columns):
        ax.bar(np.arange(n_cls) + j * width, means[variant], width, label=variant)
    labels = [
        plain(class_names[i]) if class_names and i < len(class_names) else str(i)
        for i in means.index
    ]
    ax.set_xticks(np.arange(n_cls) + 0.4 - width / 2, labels, rotation=90, fontsize=6)
    ax.set_ylabel("mean curiosity u (true class)")
    fig.legend(fontsize=7, loc="outside right upper")
    fig.suptitle(title, fontsize=9)
    return fig


def routing_distribution(routing: pd.DataFrame, title: str = "") -> Figure:
    """routing: variant, expert_name, frequency (per model); mean +- sd share per expert."""
    stats = (
        routing.groupby(["variant", "expert_name"])["frequency"].agg(["mean", "std"]).reset_index()
    )
    variants = order(list(stats["variant"].unique()))
    experts = sorted(stats["expert_name"].unique())
    fig = Figure(figsize=(max(6.0, 1.5 * len(variants)), 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(experts), 1)
    for j, expert in enumerate(experts):
        part = stats[stats["expert_name"] == expert].set_index("variant").reindex(variants)
        ax.bar(
            np.arange(len(variants)) + j * width,
            part["mean"],
            width,
            yerr=part["std"],
            capsize=2,
            label=expert,
        )
    ax.set_xticks(np.arange(len(variants)) + 0.4 - width / 2, variants, rotation=20, fontsize=7)
    ax.set_ylabel("share of test samples routed")
    fig.legend(title="expert", fontsize=7, loc="outside right upper")
    fig.suptitle(title, fontsize=9)
    return fig


def routing_confidence(pred: pd.DataFrame, title: str = "") -> Figure:
    """pred: variant, expert_name, gate_prob; box plot of gate probability per expert."""
    variants = order(list(pred["variant"].unique()))
    cols = min(len(variants), 3)  # a grid: six panels in one row left no room for their labels
    rows = -(-len(variants) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.2 * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in grid[len(variants) :]:
        ax.set_visible(False)
    for ax, variant in zip(grid, variants):
        part = pred[pred["variant"] == variant]
        experts = sorted(part["expert_name"].astype(str).unique())
        ax.boxplot(
            [part.loc[part["expert_name"].astype(str) == e, "gate_prob"] for e in experts],
            tick_labels=experts,
            showfliers=False,
        )
        ax.tick_params(axis="x", labelrotation=20, labelsize=7)
        ax.set_title(variant, fontsize=8)
    fig.supylabel("gate probability of the chosen expert", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return fig


def routing_share_curve(curve: pd.DataFrame, shares: pd.DataFrame) -> Figure:
    """curve: protocol, variant, share, f1_u, f1_random(_low, _high) (route models, same
    weights); shares: protocol, variant, share (deployed). One panel per protocol: F1 escalating
    the highest-u clips (solid) or as many random ones (dashed, with its range)."""
    protocols = sorted(curve["protocol"].unique())
    fig, axes = _panels(protocols, width=4.6, height=3.8)
    for ax in axes[1:]:
        ax.sharey(axes[0])  # protocols compared on one scale
    for ax, protocol in zip(axes, protocols):
        part = curve[curve["protocol"] == protocol]
        for variant in order(list(part["variant"].unique())):
            row = part[part["variant"] == variant].sort_values("share")
            colour = style.variant_style(variant).colour
            ax.plot(row["share"], row["f1_u"], color=colour, label=f"{variant}: by u")
            ax.plot(row["share"], row["f1_random"], "--", color=colour, label="random, same count")
            ax.fill_between(
                row["share"], row["f1_random_low"], row["f1_random_high"], color=colour, alpha=0.15
            )
            at = shares[(shares["protocol"] == protocol) & (shares["variant"] == variant)]
            for x in at["share"]:
                ax.axvline(x, color=colour, linestyle=":", linewidth=1, label="deployed share")
    fig.supxlabel("share of test clips escalated to the most precise expert")
    axes[0].set_ylabel("macro-F1, mean over models (same weights)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7)
    return fig


def confusion(matrix: np.ndarray, class_names: list[str] | None, title: str) -> Figure:
    """Row-normalised confusion matrix (rows = true class) of summed counts."""
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    n = matrix.shape[0]
    fig = Figure(figsize=(max(4.0, 0.18 * n + 3), max(3.5, 0.18 * n + 2.5)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    names = (
        [plain(c) for c in class_names]
        if class_names and len(class_names) == n
        else [str(i) for i in range(n)]
    )
    size = 7 if n <= 12 else 4
    ax.set_xticks(range(n), names, rotation=90, fontsize=size)
    ax.set_yticks(range(n), names, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="share of the true class")
    return fig

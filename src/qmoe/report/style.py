"""How every figure draws a variant: one colour and marker per variant, one legend beside the
panels, variants at (nearly) one x drawn side by side, readable log-axis ticks. Nothing here
knows a figure; qmoe.report.plotting uses it so that no two labels are drawn on each other.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from qmoe.catalog import VARIANTS, order

_COLOURS = [f"C{i}" for i in range(10)]  # matplotlib's default (tab10) cycle
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_GAP = 2**0.1  # x factor between variants drawn at the same bit-width (log2 axis)


class Style(NamedTuple):
    colour: str
    marker: str


def variant_style(variant: str) -> Style:
    """One colour and marker per variant in every figure (registry order: fp32 = C0, 'o').
    Colours repeat after 10 variants, markers after 8, so no two variants share both."""
    known = list(VARIANTS)
    i = known.index(variant) if variant in known else len(known) + zlib.crc32(variant.encode())
    return Style(_COLOURS[i % len(_COLOURS)], _MARKERS[i % len(_MARKERS)])


def variant_legend(fig: Figure, axes: list, title: str = "variant") -> None:
    """One legend for the figure, right of the panels, each variant once in registry order."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    labels = order(list(handles))  # unknown names ('Pareto front') after the variants
    fig.legend(
        [handles[k] for k in labels], labels, loc="outside right upper", fontsize=7, title=title
    )


def errorbar(ax, x, part: pd.DataFrame, variant: str) -> None:
    """One variant's mean and 95 % interval, in its own colour and marker, labelled for the
    legend (no text next to the point: names of close points would overlap)."""
    style = variant_style(variant)
    yerr = np.vstack([part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]])
    ax.errorbar(
        x, part["mean"], yerr=yerr, fmt=style.marker, color=style.colour, capsize=3, label=variant
    )


def spread(x: pd.Series, variants: pd.Series, gap: float = _GAP) -> np.ndarray:
    """x of each variant, those within 3 % of each other spread apart by the factor `gap` in
    registry order (log axes), so neither their markers nor their error bars cover each other."""
    x = x.to_numpy(float)
    names = list(variants)
    out, idx = x.copy(), np.argsort(x, kind="stable")
    groups: list[list[int]] = []
    for i in idx:
        if groups and x[i] <= x[groups[-1][0]] * 1.03:
            groups[-1].append(i)
        else:
            groups.append([i])
    for group in groups:
        centre = np.exp(np.mean(np.log(x[group])))
        ranked = order([names[i] for i in group])
        for i in group:
            out[i] = centre * gap ** (ranked.index(names[i]) - (len(group) - 1) / 2)
    return out


def _short(value: float, _pos=None) -> str:
    """A log-axis tick: 500, 2 k, 1 M, 0.5."""
    for scale, suffix in ((1e6, " M"), (1e3, " k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def log_ticks(axis, values) -> None:
    """Readable ticks on a log axis: 1-2-5 steps over a range wider than 5x (at least two of
    them fall inside), else 3 plain steps; labels short; no minor labels (they collide)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    wide = values.size and values.max() / values.min() > 5
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)) if wide else MaxNLocator(nbins=3))
    axis.set_major_formatter(FuncFormatter(_short))
    axis.set_minor_formatter(NullFormatter())

"""Evidence for the accuracy claims (F1 kept at 4 bits, equivalence, no gain, Quinn): the verdict
rests on the training form's F1 (`stats.f1_metric`, as the paper scored it), and where the stats
stage tested the same families on the deployed artefacts' F1 (`<table>_deployed`), their figure
is shown beside it.
"""

from __future__ import annotations

import pandas as pd

from qmoe.analysis import roles
from qmoe.analysis.evidence import (
    NAN,
    Context,
    Extractor,
    Found,
    beside,
    ci_text,
    clips,
    deployed,
    family_row,
    missing,
    name_of,
    not_testable,
    pct,
)
from qmoe.analysis.names import COMPUTED, Family, Table, pval
from qmoe.analysis.verdict import Evidence


def f1_ratio(ctx: Context, d: str, p: str) -> Found:
    def pick(table: str) -> pd.Series | str:
        return family_row(ctx, table, Family.F1_VS_Q16, name_of(ctx, roles.Q4), d, p)

    def show(row: pd.Series) -> str:
        return (
            f"{row['mean_variant']:.3f} vs {row['mean_baseline']:.3f} ({pct(row['ratio'])}"
            f"{ci_text(row['ratio_ci_low'], row['ratio_ci_high'], pct)})"
        )

    row = pick(Table.F1_PAIRED)
    if isinstance(row, str):
        return missing(row)
    ev = Evidence(
        True, "", row["ratio"], row["ratio_ci_low"], row["ratio_ci_high"], row["p_holm"], NAN
    )
    also = deployed(ctx, Table.F1_PAIRED, pick, show)
    return ev._replace(n=clips(ctx, d, p), unit="clips"), beside(show(row), also)


def _tost_row(ctx: Context, table: str, pair: tuple[str, str], d: str, p: str) -> pd.Series | str:
    """The TOST row of `pair` (variant, baseline) in `table`, or why there is none."""
    frame = ctx.families[table]
    hit = frame[
        (frame["variant"] == pair[0])
        & (frame["baseline"] == pair[1])
        & (frame["dataset"] == d)
        & (frame["protocol"] == p)
    ]
    if hit.empty or hit.iloc[0]["status"] != COMPUTED:
        return hit.iloc[0]["reason"] if not hit.empty else "no TOST row"
    return hit.iloc[0]


def _tost_text(row: pd.Series) -> str:
    return (
        f"diff {row['mean_diff']:+.4f}, {100 * row['holm_level']:.1f} % CI "
        f"[{row['ci_holm_low']:+.4f}, {row['ci_holm_high']:+.4f}], TOST Holm p = "
        f"{pval(row['p_holm'])}"
    )


def equivalence(variant: roles.Role, baseline: roles.Role) -> Extractor:
    """The TOST row of the variant playing `variant` vs the one playing `baseline`."""

    def extract(ctx: Context, d: str, p: str) -> Found:
        pair = (name_of(ctx, variant), name_of(ctx, baseline))
        row = _tost_row(ctx, Table.TOST_F1, pair, d, p)
        if isinstance(row, str):
            return missing(row)
        # the interval that matches the Holm p printed beside it (qmoe.analysis.comparisons)
        ev = Evidence(
            True,
            "",
            row["mean_diff"],
            row["ci_holm_low"],
            row["ci_holm_high"],
            row["p_holm"],
            row["margin"],
            n=clips(ctx, d, p),
            unit="clips",
        )
        also = deployed(ctx, Table.TOST_F1, lambda t: _tost_row(ctx, t, pair, d, p), _tost_text)
        one = f" (one clip = {row['resolution']:.4f})"
        return ev, beside(_tost_text(row) + one, also)

    return extract


def _diff_text(row: pd.Series) -> str:
    return f"F1 diff {row['mean_diff']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"


def moe_no_gain(ctx: Context, d: str, p: str) -> Found:
    moe = name_of(ctx, roles.PLAIN_MOE)
    row = family_row(ctx, Table.F1_PAIRED, Family.F1_MOE_VS_W8A8, moe, d, p)
    if isinstance(row, str):
        return missing(row)
    ev = Evidence(
        True,
        "",
        row["mean_diff"],
        row["ci_low"],
        row["ci_high"],
        row["p_holm"],
        ctx.cfg.tost_margin,
        n=clips(ctx, d, p),
        unit="clips",
    )
    pick = lambda t: family_row(ctx, t, Family.F1_MOE_VS_W8A8, moe, d, p)  # noqa: E731
    also = deployed(ctx, Table.F1_PAIRED, pick, _diff_text)
    return ev, beside(_diff_text(row), also)


def quinn(ctx: Context, d: str, p: str) -> Found:
    if d != "quinn":
        return not_testable("Quinn (ABGQI) is another dataset, obtainable only from its authors")
    v3 = name_of(ctx, roles.CURIOSITY_V3)
    row = family_row(ctx, Table.F1_PAIRED, Family.F1_CURIOSITY_VS_MOE, v3, d, p)
    if isinstance(row, str):
        return missing(row)
    ev = Evidence(True, "", row["mean_diff"], row["ci_low"], row["ci_high"], row["p_holm"], NAN)

    def show(r: pd.Series) -> str:
        return f"{r['mean_baseline']:.3f} -> {r['mean_variant']:.3f} ({r['mean_diff']:+.4f})"

    pick = lambda t: family_row(ctx, t, Family.F1_CURIOSITY_VS_MOE, v3, d, p)  # noqa: E731
    also = deployed(ctx, Table.F1_PAIRED, pick, show)
    return ev._replace(n=clips(ctx, d, p), unit="clips"), beside(show(row), also)

"""Evidence for the claims of an effect (a reduction, an overhead, a compression, a gain over a
placebo), printed in the paper's own direction and words.

A claimed reduction that our data show as an increase reads 'variance x2.02, not a reduction', not
'-101.7 %' beside the paper's '-82 %'. Compression compares like with like: the hidden layers of
the 4-bit and the 16-bit model (both heads are left out: the 4-bit model's head is FP32, the
16-bit model's is 16-bit), from the deployed models' packed tensors (`qmoe.analysis.sizes`), with
the nominal bits per weight and the whole files beside it. Shared helpers come from
`qmoe.analysis.evidence`; the claims say which extractor serves which claim.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.analysis import roles
from qmoe.analysis.evidence import (
    NAN,
    Context,
    Extractor,
    Found,
    beside,
    ci_text,
    deployed,
    family_row,
    mean_of,
    missing,
    name_of,
    pct,
    ratio_text,
    saving,
    times,
    times_x,
)
from qmoe.analysis.names import Family, Table, pval
from qmoe.analysis.verdict import Evidence
from qmoe.contract.benchmarks import FORM_WORDS


def other_regime(ctx: Context, table: str) -> str | None:
    """The cache regime beside the claims' in a latency table (None: one regime, or no regimes)."""
    frame = ctx.families.get(table)
    if frame is None or "regime" not in frame:
        return None
    others = [r for r in dict.fromkeys(frame["regime"]) if r != ctx.cfg.latency_regime]
    return others[0] if others else None


def in_other_regime(
    ctx: Context, table: str, family: str, variant: str, d: str, p: str, show
) -> str:
    """'; warm: <show(row)>': the same comparison in the other cache regime, when timed."""
    regime = other_regime(ctx, table)
    row = family_row(ctx, table, family, variant, d, p, regime) if regime else "one regime"
    return "" if isinstance(row, str) else f"; {regime}: {show(row)}"


def latency_saving(ctx: Context, d: str, p: str) -> Found:
    """4-bit / 8-bit latency (the latency form of the energy claims) in the claims' regime, the
    other regime beside."""
    family, q4 = Family.LATENCY_W4A8_VS_W8A8, name_of(ctx, roles.Q4)
    ev, ours = saving(Table.LATENCY_PAIRED, "median ms", family)(ctx, d, p)
    if not ev.computed:
        return ev, ours
    return ev, ours + in_other_regime(ctx, Table.LATENCY_PAIRED, family, q4, d, p, ratio_text)


def compression(ctx: Context, d: str, p: str) -> Found:
    """Hidden-layer bytes of the 16-bit model / the 4-bit model's (like with like)."""
    q4, half = name_of(ctx, roles.Q4), name_of(ctx, roles.HALF)
    sizes = ctx.sizes
    if sizes is None or sizes.empty:
        return missing("no deployed layer sizes (qmoe.analysis.sizes)")
    sel = sizes[(sizes["dataset"] == d) & (sizes["protocol"] == p)].set_index("variant")
    if q4 not in sel.index or half not in sel.index:
        return missing(f"needs deployed layer sizes of {q4} and {half} (true 16-bit)")
    gaps = [r for r in sel.loc[[q4, half], "reason"] if isinstance(r, str) and r]
    if gaps:
        return missing("; ".join(gaps))
    like = sel.loc[half, "body_bytes"] / sel.loc[q4, "body_bytes"]
    nominal = sel.loc[half, "weight_bits"] / sel.loc[q4, "weight_bits"]
    whole = mean_of(ctx, half, "size_packed_bytes", d, p) / mean_of(
        ctx, q4, "size_packed_bytes", d, p
    )
    files = f"; whole files {whole:.2f}x (FP32 head vs 16-bit head)" if np.isfinite(whole) else ""
    return Evidence(True, "", float(like), NAN, NAN, NAN, NAN), (
        f"{like:.2f}x hidden layers {half} / {q4} (packed, same head excluded; nominal "
        f"{sel.loc[half, 'weight_bits']:.0f}/{sel.loc[q4, 'weight_bits']:.0f} bits per weight = "
        f"{nominal:.2f}x){files}"
    )


class Spread(NamedTuple):
    """What a variance claim compares: 1 - variance ratio, the reference's 1 - std ratio, or
    the std ratio itself."""

    reference_std: bool = False
    std_ratio: bool = False


def _spread_text(row: pd.Series, spread: Spread) -> tuple[float, tuple[float, float], str]:
    """A variance family row read as `spread`: the estimate, its interval and its display."""
    ratio, lo, hi = (row[f"variance_ratio{end}"] for end in ("", "_ci_low", "_ci_high"))
    test = f"p = {pval(row['p_holm'])} (Holm)"
    if spread.std_ratio:
        est, ci = np.sqrt(ratio), (np.sqrt(lo), np.sqrt(hi))
        sds = f"{row['sd_baseline']:.3g} -> {row['sd_variant']:.3g} {row['metric']}"
        text = f"{times(est, 'std', 'a reduction')}{ci_text(*ci, times_x)} "
        return est, ci, text + f"(geometric mean model sd {sds})"
    if spread.reference_std:
        text = f"{times(np.sqrt(ratio), 'std', 'a reduction')}"
        text += f"{ci_text(np.sqrt(lo), np.sqrt(hi), times_x)}, {test}"
        return 1 - np.sqrt(ratio), (1 - np.sqrt(hi), 1 - np.sqrt(lo)), text
    spreads = "".join(
        f", {m.upper()} x{row[f'{m}_ratio']:.2f}"
        for m in ("iqr", "mad")
        if np.isfinite(row.get(f"{m}_ratio", NAN))
    )
    text = f"{times(ratio, 'variance', 'a reduction')}{ci_text(lo, hi, times_x)}{spreads}, {test}"
    return 1 - ratio, (1 - hi, 1 - lo), text


def variance(table: str, family: str, variant: roles.Role, spread: Spread = Spread()) -> Extractor:
    """A variance family row (dispersion or Levene) of the variant playing `variant`, read as
    `spread`; the display says in the paper's words whether it is a reduction at all. Its unit is
    the fold (one variance ratio per fold, or one value per fold)."""

    def extract(ctx: Context, d: str, p: str) -> Found:
        pick = lambda t: family_row(ctx, t, family, name_of(ctx, variant), d, p)  # noqa: E731
        row = pick(table)
        if isinstance(row, str):
            return missing(row)
        est, ci, text = _spread_text(row, spread)
        folds = next((row[c] for c in ("n_pairs", "n_models") if pd.notna(row.get(c))), NAN)
        also = deployed(ctx, table, pick, lambda r: _spread_text(r, spread)[2])
        ev = Evidence(True, "", est, ci[0], ci[1], row["p_holm"], NAN, n=float(folds), unit="folds")
        cache = in_other_regime(ctx, table, family, name_of(ctx, variant), d, p, other)
        return ev, beside(text, also) + cache

    def other(row: pd.Series) -> str:
        ratio = np.sqrt(row["variance_ratio"]) if spread.std_ratio else row["variance_ratio"]
        return times(ratio, "std" if spread.std_ratio else "variance", "a reduction")

    return extract


def _overhead(row: pd.Series) -> str:
    x = row["ratio"] - 1
    return f"+{pct(x)} overhead" if x > 0 else f"{pct(x)}: faster, not an overhead"


def _form_rows(ctx: Context, moe: str, d: str, p: str, regime: str) -> pd.DataFrame:
    forms = ctx.families.get(Table.LATENCY_MOE_FORMS)
    if forms is None or forms.empty:
        return pd.DataFrame()
    sel = (forms["dataset"] == d) & (forms["protocol"] == p) & (forms["variant"] == moe)
    return forms[sel & (forms["regime"] == regime) & (forms["status"] == "computed")]


def moe_overhead(ctx: Context, d: str, p: str) -> Found:
    """The plain MoE / the 8-bit model in the MoE's fastest exact form (latency_moe_forms: one
    graph or host dispatch under ONNX Runtime; the torch module under torch), the other forms
    and the other cache regime beside."""
    moe = name_of(ctx, roles.PLAIN_MOE)
    found = _form_rows(ctx, moe, d, p, ctx.cfg.latency_regime)
    if found.empty:  # no decomposition table: the paired family's row
        row = family_row(ctx, Table.LATENCY_PAIRED, Family.LATENCY_MOE_VS_W8A8, moe, d, p)
        if isinstance(row, str):
            return missing(row)
        found = pd.DataFrame([row.to_dict() | {"form": "whole", "fastest": True}])
    row = found[found["fastest"].astype(bool)].iloc[0]
    ev = Evidence(
        True,
        "",
        row["ratio"] - 1,
        row["ratio_ci_low"] - 1,
        row["ratio_ci_high"] - 1,
        row["ratio_p_holm"],
        NAN,
    )
    forms = "".join(
        f"; {FORM_WORDS[r['form']]} {_overhead(r)}" for _, r in found.iterrows() if not r["fastest"]
    )
    if len(found) > 1 or row["form"] != "whole":
        forms = f", {FORM_WORDS[row['form']]}: the fastest exact form{forms}"
    other = other_regime(ctx, Table.LATENCY_MOE_FORMS)
    there = _form_rows(ctx, moe, d, p, other) if other else found[:0]
    fast = there[there["fastest"].astype(bool)]
    named = f" ({FORM_WORDS[fast.iloc[0]['form']]})" if len(there) > 1 else ""
    also = f"; {other}: {_overhead(fast.iloc[0])}{named}" if len(fast) else ""
    return ev, (
        f"{_overhead(row)}{ci_text(ev.ci_low, ev.ci_high, pct)} (median ms "
        f"{row['mean_variant']:.3g} vs {row['mean_baseline']:.3g}{forms}), "
        f"Holm p = {pval(ev.p)}{also}"
    )


def route_same_weights(ctx: Context, d: str, p: str) -> Found:
    """F1 escalating by u minus escalating as many clips at random, on the route models' own
    weights (qmoe.analysis.escalation): one-sided permutation p, Holm over the route variants."""
    route = name_of(ctx, roles.ROUTE)
    if route not in set(ctx.runs["variant"]):
        return missing(f"no runs of {route} (variant not in the study)")
    frame = ctx.families.get(Table.ROUTING_SAME_WEIGHTS)
    hit = (
        frame[(frame["variant"] == route) & (frame["dataset"] == d) & (frame["protocol"] == p)]
        if frame is not None and not frame.empty
        else pd.DataFrame()
    )
    if hit.empty:
        return missing(f"no routing_same_weights row for {route} in {d}/{p}")
    row = hit.iloc[0]
    ev = Evidence(
        True,
        "",
        row["diff"],
        row["ci_low"],
        row["ci_high"],
        row["p_holm"],
        ctx.cfg.tost_margin,  # where the power statement puts 'equivalent'
        n=float(row["n_clips"]),
        unit="test clips (same weights)",
    )
    exact = "exact" if bool(row["exact"]) else f"{int(row['draws'])} draws"
    return ev, (
        f"F1 by u {row['f1_u']:.3f} vs the same count at random {row['f1_random']:.3f}: diff "
        f"{row['diff']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], one-sided "
        f"permutation Holm p = {pval(row['p_holm'])} ({exact}); none escalated "
        f"{row['f1_none']:.3f} (u vs none {row['diff_vs_none']:+.4f}); AUROC of u for the "
        f"unescalated errors {row['auroc']:.2f}; {int(row['n_models'])} models, same weights"
    )

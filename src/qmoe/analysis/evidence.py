"""Our evidence for the claims: extractors that read the stats families and the runs table.

Each extractor returns the numbers a verdict rule needs (`Evidence`) and their display ("ours")
for one (dataset, protocol). The variants it looks at are found by their facts
(`qmoe.analysis.roles`), never by name: "4-bit" is the BitLinear whose config says 4 bits. Which
extractor serves which claim is stated once, in `qmoe.analysis.claims.EXTRACTORS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.analysis import roles
from qmoe.analysis.names import COMPUTED, Family, pval, twin
from qmoe.analysis.results import variant_facts
from qmoe.analysis.stats import StatsConfig, log_ratio_test, nadeau_bengio_ci
from qmoe.analysis.verdict import Evidence

NAN = float("nan")


class Context(NamedTuple):
    families: dict[str, pd.DataFrame]
    runs: pd.DataFrame  # the runs table, with its fact columns
    routing: pd.DataFrame | None  # predictions of the v3 curiosity MoE with expert facts
    cfg: StatsConfig
    sizes: pd.DataFrame | None = None  # qmoe.analysis.sizes.layer_bytes (compression)


Found = tuple[Evidence, str]  # evidence and its display ("ours")
Extractor = Callable[[Context, str, str], Found]


def missing(reason: str) -> Found:
    return Evidence(False, reason, NAN, NAN, NAN, NAN, NAN), "not computed"


def not_testable(reason: str) -> Found:
    """Nothing this machine or study can measure: 'not testable here', not 'not computed'."""
    ev = Evidence(False, reason, NAN, NAN, NAN, NAN, NAN, not_testable=reason)
    return ev, "not measured here"


def clips(ctx: Context, d: str, p: str) -> float:
    """Test clips over the folds of (d, p) (each clip is tested once): the unit an F1 interval
    rests on, since more folds of the same clips cannot narrow a corrected t interval."""
    r = ctx.runs
    sel = r[(r["dataset"] == d) & (r["protocol"] == p)]
    if "n_test" not in sel or sel["n_test"].isna().all():
        return NAN
    return float(sel.groupby("fold")["n_test"].max().sum())


def deployed(
    ctx: Context,
    table: str,
    pick: Callable[[str], pd.Series | str],
    show: Callable[[pd.Series], str],
) -> str:
    """'; deployed artefacts: <show(row)>' from `table`'s twin on the deployed F1 (`pick` reads
    a row of the named table); '' where the stats stage made no such twin."""
    if twin(table) not in ctx.families:
        return ""
    row = pick(twin(table))
    return f"; deployed artefacts: {row if isinstance(row, str) else show(row)}"


def beside(training: str, also: str) -> str:
    """The training form's display, labelled as such where the deployed artefacts' follows."""
    return f"training form: {training}{also}" if also else training


def name_of(ctx: Context, role: roles.Role) -> str:
    return roles.resolve(role, variant_facts(ctx.runs))


def family_row(
    ctx: Context, table: str, family: str, variant: str, d: str, p: str, regime: str | None = None
) -> pd.Series | str:
    """The family row, or the reason it is missing / not computed; in a table with a cache regime
    per row, the row of `regime` (default: the claims', `stats.latency_regime`)."""
    if variant not in set(ctx.runs["variant"]):
        return f"no runs of {variant} (variant not in the study)"
    frame = ctx.families[table]
    hit = frame[
        (frame["family"] == family)
        & (frame["variant"] == variant)
        & (frame["dataset"] == d)
        & (frame["protocol"] == p)
    ]
    if "regime" in hit:
        want, timed = regime or ctx.cfg.latency_regime, sorted(set(hit["regime"]))
        hit = hit[hit["regime"] == want]
        if hit.empty and timed:
            return f"{variant}: not timed in the {want} regime (benchmark.regimes: {timed})"
    if hit.empty:
        return f"no {family} row for {variant} in {d}/{p}"
    row = hit.iloc[0]
    return row if row["status"] == COMPUTED else f"{variant} vs {row['baseline']}: {row['reason']}"


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def times(ratio: float, noun: str, effect: str) -> str:
    """A ratio in the paper's direction and words, for a claimed reduction: 'variance x2.02, not
    a reduction', 'energy x0.59, a saving of 41.0 %'."""
    if not np.isfinite(ratio):
        return f"{noun} n/a"
    tail = f"{effect} of {pct(1 - ratio)}" if ratio < 1 else f"not {effect}"
    return f"{noun} x{ratio:.2f}, {tail}"


def ci_text(lo: float, hi: float, fmt: Callable[[float], str]) -> str:
    return f" [{fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""


def mean_of(ctx: Context, variant: str, value: str, d: str, p: str) -> float:
    r = ctx.runs
    sel = r[(r["variant"] == variant) & (r["dataset"] == d) & (r["protocol"] == p)]
    return float(sel[value].mean()) if value in sel and not sel.empty else NAN


def saving(table: str, unit: str, family: str = Family.ENERGY_W4A8_VS_W8A8) -> Extractor:
    """1 - the 4-bit's measure / the 8-bit BitLinear's, from a paired family `table` (latency:
    the claims' regime)."""

    def extract(ctx: Context, d: str, p: str) -> Found:
        row = family_row(ctx, table, family, name_of(ctx, roles.Q4), d, p)
        if isinstance(row, str):
            return missing(row)
        saved = 1 - row["ratio"]
        ev = Evidence(
            True,
            "",
            saved,
            1 - row["ratio_ci_high"],
            1 - row["ratio_ci_low"],
            row["ratio_p_holm"],
            NAN,
        )
        return ev, (
            f"{times(row['ratio'], '4-bit/8-bit', 'a saving')}"
            f"{ci_text(row['ratio_ci_low'], row['ratio_ci_high'], times_x)} ({unit}: "
            f"{row['mean_variant']:.3g} vs {row['mean_baseline']:.3g})"
        )

    return extract


def times_x(x: float) -> str:
    """A ratio as a factor: 'x0.85'."""
    return f"x{x:.2f}"


def ratio_text(row: pd.Series) -> str:
    """'x0.85 [x0.81, x0.91]' of a paired family row."""
    return f"x{row['ratio']:.2f}{ci_text(row['ratio_ci_low'], row['ratio_ci_high'], times_x)}"


ESTIMATED = "estimated"
# energy_method texts that mean a power model times time, not a reading: the benchmark's label
# (qmoe.bench.suite) and CodeCarbon's CPU estimate (qmoe.energy.describe_method)
ESTIMATED_MARKS = ("estimated: power model", "CPU estimated")


def measured_energy(column: str, extract: Extractor) -> Extractor:
    """`extract`, unless the energy in `column` of this (dataset, protocol) was estimated (a
    power model times time cannot show what bit-width does to energy): then not testable here."""

    def wrapped(ctx: Context, d: str, p: str) -> Found:
        r = ctx.runs
        if column not in r.columns:
            return not_testable(f"no {column} in the runs table: the energy source is unknown")
        methods = r.loc[(r["dataset"] == d) & (r["protocol"] == p), column].dropna().astype(str)
        if methods.empty or any(
            methods.str.contains(m, regex=False).any() for m in ESTIMATED_MARKS
        ):
            return not_testable(
                f"energy is {ESTIMATED}: power model x time "
                f"({column}: no power counter readable on this machine)"
            )
        return extract(ctx, d, p)

    return wrapped


# the paper's classifier (reference-method.md): 1,536-d EfficientNet-B3 input, 640, 320, 50 classes
PAPER_MLP = (1536, (640, 320), 50)


def mlp_params(in_dim: int, hidden_sizes: tuple[int, ...], num_classes: int) -> int:
    """Parameters of `qmoe.models.MLP` of this shape, counted without building it: each hidden
    Linear (weights and bias) with its LayerNorm (scale and shift), then the Linear head."""
    widths = (in_dim, *hidden_sizes)
    hidden = sum(a * b + b + 2 * b for a, b in zip(widths, widths[1:]))
    return hidden + widths[-1] * num_classes + num_classes


def params(ctx: Context, d: str, p: str) -> Found:
    """The claim is about the architecture: count it at the paper's input (1,536-d EfficientNet-B3
    features, 50 classes); our own count differs only through the backbone's embedding width."""
    fp32 = name_of(ctx, roles.FP32)
    n = mean_of(ctx, fp32, "n_params", d, p)
    if not np.isfinite(n):
        return missing(f"no {fp32} runs")
    paper = mlp_params(*PAPER_MLP)
    return (
        Evidence(True, "", paper, NAN, NAN, NAN, NAN),
        f"{paper:,} at the paper's 1,536-d input and 50 classes (ours: {n:,.0f} on this "
        "backbone's embeddings)",
    )


def f1_per_mj(ctx: Context, d: str, p: str) -> Found:
    q4 = name_of(ctx, roles.Q4)
    per_mj = mean_of(ctx, q4, "f1_per_inference_mj", d, p)
    per_wh = mean_of(ctx, q4, "f1_per_train_wh", d, p)
    if not np.isfinite(per_mj):
        return missing(f"no {q4} f1_per_inference_mj")
    ev = Evidence(True, "", per_mj, NAN, NAN, NAN, NAN)
    return ev, f"{q4}: {per_mj:.3g} F1 per inference mJ; {per_wh:.3g} F1 per training Wh"


def deploy_ratio(ctx: Context, d: str, p: str) -> Found:
    r, q4, col = ctx.runs, name_of(ctx, roles.Q4), "deploy_over_train_1e3"
    sel = r[(r["variant"] == q4) & (r["dataset"] == d) & (r["protocol"] == p)]
    values = sel[col].dropna().to_numpy(float) if col in sel and not sel.empty else []
    if len(values) == 0:
        return missing(f"no {q4} {col}")
    est, lo, hi = fold_log_interval(sel.dropna(subset=[col]), col, ctx.cfg.confidence)
    breakeven = mean_of(ctx, q4, "break_even_inferences", d, p)
    folds = float(sel["fold"].nunique())
    return Evidence(True, "", est, lo, hi, NAN, NAN, n=folds, unit="folds"), (
        f"{q4} deployment/training energy at 1,000 inferences: {est:.3g}"
        f"{ci_text(lo, hi, lambda x: f'{x:.3g}')}; break-even after {breakeven:,.0f} inferences"
    )


def fold_log_interval(rows: pd.DataFrame, col: str, confidence: float) -> tuple[float, ...]:
    """Geometric mean of the per-fold means of `col` (seeds averaged) and the exponentiated t
    interval of the mean log (K folds, df = K - 1); the interval is NaN with fewer than 2 folds."""
    per_fold = rows.groupby("fold")[col].mean().to_numpy(float)
    if per_fold.size == 0 or not np.all(per_fold > 0):
        return NAN, NAN, NAN
    logs = np.log(per_fold)
    if logs.size < 2 or np.ptp(logs) == 0:
        return float(np.exp(logs.mean())), NAN, NAN
    lo, hi = nadeau_bengio_ci(logs, 0.0, confidence)
    return float(np.exp(logs.mean())), float(np.exp(lo)), float(np.exp(hi))


def routing_confidence(ctx: Context, d: str, p: str) -> Found:
    """Gate confidence of the 8-bit expert (by its config: expert_kind, expert_weight_bits)."""
    if ctx.routing is None:
        return missing(f"no routing predictions of {name_of(ctx, roles.CURIOSITY_V3)}")
    r = ctx.routing[(ctx.routing["dataset"] == d) & (ctx.routing["protocol"] == p)]
    is8 = pd.Series(
        [
            roles.plays(roles.Q8, k, b, "")
            for k, b in zip(r["expert_kind"], r["expert_weight_bits"])
        ],
        index=r.index,
        dtype=bool,
    )
    names = sorted(r.loc[is8, "expert_name"].unique()) or [roles.Q8.label]
    if r.empty or not is8.any() or is8.all():
        return missing(f"the {', '.join(names)} expert got no samples, or all of them")
    # the unit is the fold: per model, mean gate probability of the 8-bit expert's samples and
    # of the others'; seeds averaged within the fold; paired log-ratio t over the folds
    per_model = r.assign(is8=is8).groupby(["fold", "seed", "is8"])["gate_prob"].mean().unstack()
    per_fold = per_model.dropna().groupby(level="fold").mean()
    if len(per_fold) < 2:
        return missing(
            f"the 8-bit expert and the others both got samples in only "
            f"{len(per_fold)} fold(s); need 2 or more"
        )
    rt = log_ratio_test(
        per_fold[True].to_numpy(float), per_fold[False].to_numpy(float), 0.0, ctx.cfg.confidence
    )
    est, lo, hi = 1 - rt.ratio, 1 - rt.high, 1 - rt.low
    return Evidence(True, "", est, lo, hi, rt.p, NAN, n=float(len(per_fold)), unit="folds"), (
        f"{pct(est)}{ci_text(lo, hi, pct)} lower gate probability ({len(per_fold)} folds, paired t "
        f"on per-fold log-ratios), p = {pval(rt.p)}"
    )

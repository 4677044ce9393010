"""Report sections on how models were chosen and routed: the selected epoch per variant, and the
same-weights test of uncertainty routing (u vs as many clips at random vs none, AUROC) from the
stats stage's routing_same_weights.csv."""

from __future__ import annotations

import pandas as pd

from qmoe.analysis.names import Table, pval
from qmoe.catalog import order
from qmoe.report import tables

EARLY = 3  # a selected epoch <= 3: chosen before the validation signal could settle


def selected_epochs(runs: pd.DataFrame) -> str:
    """Per dataset, protocol and variant: the selected epoch's median and the share of models
    kept at epoch <= EARLY, beside the epochs run."""
    keys = ["dataset", "protocol", "variant"]
    frame = (
        runs.assign(early=runs["selected_epoch"] <= EARLY)
        .groupby(keys, sort=True)
        .agg(
            n=("selected_epoch", "size"),
            median=("selected_epoch", "median"),
            early=("early", "mean"),
            run=("epochs_run", "median"),
        )
        .reset_index()
    )
    rank = {v: i for i, v in enumerate(order(list(frame["variant"].unique())))}
    frame = frame.assign(rank=frame["variant"].map(rank)).sort_values(
        ["dataset", "protocol", "rank"]
    )
    cols = [
        tables.text("dataset", "Dataset"),
        tables.text("protocol", "Protocol"),
        tables.text("variant", "Variant"),
        tables.number("n", "Models", 0),
        tables.number("median", "Selected epoch (median)", 1),
        tables.Column(f"Share at epoch <= {EARLY}", lambda r: f"{100 * r['early']:.0f} %"),
        tables.number("run", "Epochs run (median)", 1),
    ]
    table = tables.Table("selected_epochs", "Selected epochs", frame, cols)
    return (
        "Which epoch each model keeps: `corrected` the lowest validation loss, `faithful` the "
        "reference's rule (single models their last epoch, MoEs their best test-fold weighted "
        f"F1). A share at epoch <= {EARLY} near zero means the choice waited for the "
        "validation signal.\n\n" + tables.markdown(table)
    )


def _pm(col: str, header: str) -> tables.Column:
    return tables.Column(header, lambda r: f"{r[col]:+.4f}" if pd.notna(r.get(col)) else "n/a")


def same_weights(frame: pd.DataFrame) -> str:
    """The same-weights routing table, both protocols, with what it tests."""
    title = "### Uncertainty routing on the same weights: u vs random vs none\n\n"
    if frame.empty:
        return title + "No route model in this study.\n"
    table = tables.Table(
        Table.ROUTING_SAME_WEIGHTS, "Same-weights routing", frame, _same_weights_columns()
    )
    mismatch = int(frame["mismatch"].sum())
    check = "Every arm's predictions are composed from the two recorded per-clip predictions; " + (
        "for every clip the u arm equals the deployed prediction."
        if mismatch == 0
        else f"{mismatch} clip(s) differ from the deployed prediction (a near-tie "
        "scored in another batch)."
    )
    return title + (
        "Each route model's own trained weights score every arm: escalating the clips u puts "
        "above the threshold (as deployed), escalating as many test clips drawn at random "
        "(the permutation null, seeded), escalating none and escalating all. The test is "
        "one-sided (u better than random), Holm over the route variants of a protocol; the "
        "range is u's F1 minus the null's central 95 %. AUROC: how well u ranks the clips the "
        "unescalated model gets wrong (0.5: not at all), mean ± sd over models (n). Random "
        "escalation can score below none: the most precise expert trained on high-u inputs. "
        + check
        + "\n\n"
        + tables.markdown(table)
    )


def _same_weights_columns() -> list[tables.Column]:
    return [
        tables.text("dataset", "Dataset"),
        tables.text("protocol", "Protocol"),
        tables.text("variant", "Variant"),
        tables.number("n_models", "Models", 0),
        tables.number("share", "Escalated share", 3),
        tables.number("f1_u", "F1 by u", 4),
        tables.number("f1_random", "F1 random, same count", 4),
        tables.number("f1_none", "F1 none", 4),
        tables.number("f1_all", "F1 all", 4),
        _pm("diff", "u - random"),
        tables.Column(
            "95 % permutation range", lambda r: f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
        ),
        tables.Column("p one-sided (Holm)", lambda r: pval(r["p_holm"])),
        _pm("diff_vs_none", "u - none"),
        tables.Column(
            "AUROC of u (errors, none escalated)",
            lambda r: f"{r['auroc']:.2f} ± {r['auroc_sd']:.2f} ({int(r['n_auroc'])})",
        ),
        tables.Column(
            "Null", lambda r: "exact" if bool(r["exact"]) else f"{int(r['draws'])} draws"
        ),
    ]

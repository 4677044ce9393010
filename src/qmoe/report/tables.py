"""Paper-style tables (reference-method.md 11.3) as Markdown and LaTeX, from the stats CSVs.

A table is a DataFrame plus a list of `Column`s saying what to show and how; `markdown` and
`latex` render the same spec, so the two never disagree. Every unit is in the header.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import pandas as pd

from qmoe.analysis.stats import pval  # noqa: F401  (re-exported for report columns)
from qmoe.catalog import order, paper_name

Cell = Callable[[pd.Series], str]


class Column(NamedTuple):
    header: str
    cell: Cell


class Table(NamedTuple):
    name: str  # file stem: reports/tables/paper/<name>.md|tex
    title: str
    frame: pd.DataFrame
    columns: list[Column]
    note: str = ""


def _num(x: float, digits: int) -> str:
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "n/a"
    if abs(x) < 1e-12:  # floating-point noise (e.g. the sd of equal values)
        return f"{0:.{digits}f}"
    return f"{x:.{digits}f}" if abs(x) >= 10**-digits or x == 0 else f"{x:.2e}"


def text(col: str, header: str | None = None) -> Column:
    return Column(header or col, lambda r: str(r.get(col, "")))


def number(col: str, header: str, digits: int = 3) -> Column:
    return Column(header, lambda r: _num(r.get(col), digits))


def mean_sd(stem: str, header: str, digits: int = 3) -> Column:
    """`<stem>_mean` +- `<stem>_sd`."""

    def cell(r: pd.Series) -> str:
        m, s = r.get(f"{stem}_mean"), r.get(f"{stem}_sd")
        return _num(m, digits) if not _finite(s) else f"{_num(m, digits)} ± {_num(s, digits)}"

    return Column(header, cell)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def markdown(table: Table) -> str:
    head = "| " + " | ".join(c.header for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = [
        "| " + " | ".join(c.cell(r).replace("|", "\\|") for c in table.columns) + " |"
        for _, r in table.frame.iterrows()
    ]
    if not body:
        body = ["| " + " | ".join(["(no rows)"] + [""] * (len(table.columns) - 1)) + " |"]
    note = f"\n\n{table.note}" if table.note else ""
    return "\n".join([head, rule, *body]) + note + "\n"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "×": r"$\times$",
}


def latex_escape(s: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in s)


def latex(table: Table) -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs})."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{latex_escape(table.title)}}}",
        rf"\label{{tab:{table.name}}}",
        r"\begin{tabular}{" + "l" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(latex_escape(c.header) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    lines += [
        " & ".join(latex_escape(c.cell(r)) for c in table.columns) + r" \\"
        for _, r in table.frame.iterrows()
    ]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.note:
        lines.append(r"\par\footnotesize " + latex_escape(table.note))
    return "\n".join(lines + [r"\end{table}"]) + "\n"


# --- the paper's tables 1-4 and the carbon supplement ----------------------------------------


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    rank = {v: i for i, v in enumerate(order(list(frame["variant"].unique())))}
    return (
        frame.assign(_r=frame["variant"].map(rank))
        .sort_values(["protocol", "_r"])
        .drop(columns="_r")
    )


def table1(t1: pd.DataFrame, f1_label: str) -> Table:
    """Cross-dataset performance: one F1 column per dataset, then the average."""
    wide = t1.pivot_table(
        index=["protocol", "variant", "paper_name", "params_m_mean"],
        columns="dataset",
        values=["f1_mean", "f1_sd"],
        aggfunc="first",
    )
    datasets = [d for d in dict.fromkeys(t1["dataset"]) if d != "average"] + ["average"]
    frame = pd.DataFrame(
        {
            f"{d}_{k}": wide[(f"f1_{k}", d)]
            for d in datasets
            for k in ("mean", "sd")
            if (f"f1_{k}", d) in wide
        }
    )
    frame = _sorted(frame.reset_index())
    cols = [
        text("protocol", "Protocol"),
        text("variant", "Variant"),
        text("paper_name", "Paper name"),
        number("params_m_mean", "Params (M)", 3),
    ]
    cols += [
        mean_sd(d, f"{d} {f1_label}" if d != "average" else f"Avg {f1_label}") for d in datasets
    ]
    return Table(
        "table1_cross_dataset",
        f"Table 1: {f1_label}, mean ± std (ddof 1) over folds x "
        "seeds; Avg = mean of dataset means ± RMS of their stds",
        frame,
        cols,
    )


def table2(t2: pd.DataFrame, f1: str, f1_label: str) -> Table:
    cols = [
        text("protocol", "Protocol"),
        text("dataset", "Dataset"),
        number("bits", "Bits", 0),
        text("variant", "Variant"),
        text("paper_name", "Paper name"),
        mean_sd(f1, f1_label),
        number("percent_of_16bit", "% of 16-bit", 1),
        mean_sd("latency_median_ms", "Latency median (ms/inference)", 4),
        mean_sd("reference_fold_pass_ms", "Fold pass (ms, reference)", 1),
        mean_sd("train_energy_wh", "Train energy (Wh)", 4),
        mean_sd("energy_per_inference_mj", "Inference energy (mJ)", 4),
    ]
    frame = t2.assign(paper_name=t2["variant"].map(paper_name)) if not t2.empty else t2
    frame = frame.sort_values(["protocol", "dataset", "bits"]) if not frame.empty else frame
    return Table(
        "table2_quantization",
        "Table 2: quantisation ablation (the reference's '16-bit' "
        "= q16_reference, FP32 with LayerNorm)",
        frame,
        cols,
        "RAM is not measured (the reference's whole-process peak RSS is not a model "
        "property). Energy is CodeCarbon's estimate, in Wh (the reference printed Wh as mJ).",
    )


def table3(t3: pd.DataFrame, f1: str, f1_label: str) -> Table:
    cols = [
        text("protocol", "Protocol"),
        text("variant", "Variant"),
        text("paper_name", "Paper name"),
        text("type", "Type"),
        number("params_m_mean", "Params (M)", 3),
        mean_sd(f1, f"Avg {f1_label}"),
        mean_sd("latency_median_ms", "Latency (ms/inference)", 4),
        mean_sd("train_energy_wh", "Train energy (Wh)", 4),
        mean_sd("train_co2_g", "Train CO2 (g)", 4),
        number("f1_per_train_wh", "F1 per train Wh (ref. 'F1/mJ')", 2),
        number("f1_per_inference_mj", "F1 per inference mJ", 2),
    ]
    return Table(
        "table3_moe_curiosity",
        "Table 3: mixtures of experts with and without curiosity",
        _sorted(t3),
        cols,
    )


def table4(t4: pd.DataFrame, f1: str, f1_label: str) -> Table:
    frame = t4.assign(size_kb=t4["size_packed_bytes_mean"] / 1e3) if not t4.empty else t4
    cols = [
        text("protocol", "Protocol"),
        text("variant", "Variant"),
        text("paper_name", "Paper name"),
        number("params_m_mean", "Params (M)", 3),
        mean_sd("latency_median_ms", "Latency median (ms/inference)", 4),
        number("speedup_vs_fp32", "Speed-up vs fp32", 2),
        mean_sd("reference_fold_pass_ms", "Fold pass (ms, reference)", 1),
        mean_sd(f1, f1_label),
        number("size_kb", "Packed size (kB)", 1),
    ]
    return Table(
        "table4_inference_latency",
        "Table 4: inference latency (batch 1, warm, pinned threads), sorted by latency",
        frame,
        cols,
    )


def supplement(sup: pd.DataFrame, f1: str, f1_label: str) -> Table:
    cols = [
        text("protocol", "Protocol"),
        text("variant", "Variant"),
        text("paper_name", "Paper name"),
        number("params_m_mean", "Params (M)", 3),
        mean_sd("train_co2_g", "Train CO2 (g)", 4),
        mean_sd("train_energy_wh", "Train energy (Wh)", 4),
        number("co2_rate_mg_per_s", "Train CO2 rate (mg/s)", 3),
        mean_sd("inference_co2_mg_estimate", "CO2 per inference (mg, estimate)", 6),
        mean_sd(f1, f1_label),
    ]
    return Table(
        "supplement_carbon",
        "Supplement: carbon (CodeCarbon estimates)",
        sup,
        cols,
        "CO2 per inference = inference energy x the carbon intensity CodeCarbon applied "
        "to training (an estimate; no inference emissions were tracked).",
    )

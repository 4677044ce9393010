"""Tables as Markdown and LaTeX: the paper's (reference-method.md 11.3) and the report's own.

A table is a DataFrame plus a list of `Column`s saying what to show and how; `markdown` and
`latex` render the same spec, so the two never disagree. Every unit is in the header. What each
paper table holds is its entry in `qmoe.report.paper_tables.PAPER_TABLES`; `paper_table`
renders any entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import pandas as pd

from qmoe.analysis.names import pval  # noqa: F401  (re-exported for report columns)
from qmoe.report.paper_tables import Fmt, PaperTable

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


# --- the paper's tables (qmoe.report.paper_tables) -------------------------------------------

_FORMATS = {
    Fmt.TEXT: lambda c: text(c.field, c.header),
    Fmt.NUMBER: lambda c: number(c.field, c.header, c.digits),
    Fmt.MEAN_SD: lambda c: mean_sd(c.field, c.header, c.digits),
}


def paper_table(spec: PaperTable, frame: pd.DataFrame, f1: str) -> Table:
    """The table of one PAPER_TABLES entry from its stats CSV (`frame`)."""
    shown = spec.show(frame, f1)
    columns = [_FORMATS[c.fmt](c) for c in shown.columns]
    return Table(spec.stem, spec.title.format(f1=f1), shown.frame, columns, spec.note)

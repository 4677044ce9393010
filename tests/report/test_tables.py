"""Paper tables rendered as Markdown and LaTeX from one column spec (qmoe.report.tables)."""

import math

import pandas as pd

from qmoe.report import tables
from qmoe.report.paper_tables import PAPER_TABLES
from qmoe.report.tables import Column, Table, latex, latex_escape, markdown, mean_sd, number, text


def _table(frame: pd.DataFrame, note: str = "") -> Table:
    cols = [text("variant", "Variant"), mean_sd("f1", "F1", 3), number("pct", "% of 16-bit", 1)]
    return Table("t", "A title with 50 % & under_scores", frame, cols, note)


FRAME = pd.DataFrame(
    {
        "variant": ["w4a8", "fp32"],
        "f1_mean": [0.8123, 0.83],
        "f1_sd": [0.01, math.nan],
        "pct": [99.87, math.nan],
    }
)


def test_markdown_formats_mean_sd_and_missing_values():
    md = markdown(_table(FRAME, note="a note"))
    lines = md.splitlines()
    assert lines[0] == "| Variant | F1 | % of 16-bit |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| w4a8 | 0.812 ± 0.010 | 99.9 |"
    assert lines[3] == "| fp32 | 0.830 | n/a |"  # one model: no sd; no % without a 16-bit row
    assert lines[-1] == "a note"


def test_markdown_of_an_empty_table_says_so():
    assert markdown(_table(FRAME.iloc[:0])).splitlines()[2] == "| (no rows) |  |  |"


def test_every_paper_table_renders_an_empty_csv_as_no_rows():
    for spec in PAPER_TABLES[1:]:  # table 1 always has rows (one per variant)
        table = tables.paper_table(spec, pd.DataFrame(), "macro_f1")
        assert "(no rows)" in markdown(table) and table.name == spec.stem
        assert latex(table).count(r"\\") == 1  # the header row only


def test_latex_escapes_and_uses_booktabs():
    tex = latex(_table(FRAME))
    assert r"\caption{A title with 50 \% \& under\_scores}" in tex
    assert r"0.812 $\pm$ 0.010" in tex
    assert tex.count(r"\\") == 3 and r"\toprule" in tex and r"\bottomrule" in tex
    assert latex_escape("a_b#c$") == r"a\_b\#c\$"


def test_tiny_numbers_keep_their_magnitude_and_noise_is_zero():
    cell = number("x", "x", 3).cell
    assert cell(pd.Series({"x": 2.5e-5})) == "2.50e-05"
    assert cell(pd.Series({"x": 4.7e-19})) == "0.000"
    assert cell(pd.Series({"x": "text"})) == "n/a"


def test_a_pipe_in_a_cell_does_not_break_the_markdown_table():
    t = Table("t", "t", pd.DataFrame({"a": ["x|y"]}), [Column("A", lambda r: r["a"])])
    assert "x\\|y" in markdown(t)


def test_table1_pivots_datasets_into_columns_with_the_average_last():
    t1 = pd.DataFrame(
        {
            "protocol": ["corrected"] * 4,
            "variant": ["fp32", "fp32", "fp32", "w4a8"],
            "paper_name": ["FP32-Base"] * 3 + ["Q4-Base"],
            "dataset": ["esc50", "us8k", "average", "average"],
            "f1_mean": [0.8, 0.7, 0.75, 0.74],
            "f1_sd": [0.01, 0.02, 0.0158, 0.01],
            "f1_n": [5, 5, 10, 5],
            "params_m_mean": [1.2, 1.2, 1.2, 1.2],
        }
    )
    table = tables.paper_table(PAPER_TABLES[0], t1, "macro_f1")
    assert table.name == "table1_cross_dataset"
    assert table.title.startswith("Table 1: macro_f1, mean ± std (ddof 1)")
    headers = [c.header for c in table.columns]
    assert headers[-3:] == ["esc50 macro_f1", "us8k macro_f1", "Avg macro_f1"]
    md = markdown(table).splitlines()
    assert md[2].startswith(
        "| corrected | fp32 | FP32-Base | 1.200 | 0.800 ± 0.010 | 0.700 ± 0.020"
    )
    assert md[3].endswith("| n/a | n/a | 0.740 ± 0.010 |")


def test_p_values_keep_three_digits_and_underflow_is_named():
    assert tables.pval(0.012345) == "0.0123"
    assert tables.pval(0.0) == "< 1e-300"
    assert tables.pval(math.nan) == "n/a"

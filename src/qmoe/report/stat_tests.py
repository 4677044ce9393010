"""The report's statistical tests: one view (title, columns) per stats table of the stats stage;
computed rows shown, the others counted (they are listed under 'Not computed')."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from qmoe.analysis.names import COMPUTED, Table
from qmoe.report import tables
from qmoe.report.deployment import inference_energy_measured


class TestView(NamedTuple):
    title: str
    table: str  # stats CSV name
    columns: list[tables.Column]


def test_section(view: TestView, frame: pd.DataFrame) -> str:
    done = frame[frame["status"] == COMPUTED]
    table = tables.Table(view.table, view.title, done, view.columns)
    skipped = len(frame) - len(done)
    note = f"\n{skipped} planned test(s) not computed: see 'Not computed'.\n" if skipped else ""
    return f"### {view.title}\n\n" + tables.markdown(table) + note


def _p(col: str, header: str) -> tables.Column:
    return tables.Column(header, lambda r: tables.pval(r.get(col)))


def _ci(lo: str, hi: str, header: str, digits: int = 4) -> tables.Column:
    return tables.Column(
        header,
        lambda r: (
            f"[{r[lo]:.{digits}f}, {r[hi]:.{digits}f}]"
            if pd.notna(r.get(lo)) and pd.notna(r.get(hi))
            else "n/a"
        ),
    )


_KEYS = [
    tables.text("dataset", "Dataset"),
    tables.text("protocol", "Protocol"),
    tables.text("variant", "Variant"),
    tables.text("baseline", "Baseline"),
]
_LATENCY_KEYS = _KEYS + [tables.text("runtime", "Runtime"), tables.text("regime", "Regime")]
TEST_VIEWS = [
    TestView(
        "Equivalence (TOST) of F1, on fold means",
        Table.TOST_F1,
        _KEYS
        + [
            tables.number("n_pairs", "Folds", 0),
            tables.number("mean_diff", "Mean diff", 4),
            _ci("ci_tost_low", "ci_tost_high", "90 % CI (NB)"),
            tables.number("holm_level", "Level matching Holm p", 4),
            _ci("ci_holm_low", "ci_holm_high", "CI matching Holm p (NB)"),
            _p("p_tost", "p TOST (plain)"),
            _p("p_tost_nb", "p TOST (NB)"),
            _p("p_holm", "Holm p (NB)"),
            tables.text("equivalent", "Equivalent"),
            tables.number("min_margin", "Smallest margin showable", 4),
            tables.number("resolution", "One clip (1/n_test)", 4),
        ],
    ),
    TestView(
        "F1 paired comparisons (Nadeau-Bengio corrected t on fold means)",
        Table.F1_PAIRED,
        [tables.text("family", "Family")]
        + _KEYS
        + [
            tables.number("n_pairs", "Folds", 0),
            tables.number("mean_diff", "Mean diff", 4),
            _ci("ci_low", "ci_high", "95 % CI (NB, t)"),
            tables.number("ratio", "Ratio", 4),
            _ci("ratio_ci_low", "ratio_ci_high", "95 % CI (per-fold log-ratios)", 4),
            tables.number("cohens_dz", "dz", 2),
            _p("p", "p"),
            _p("p_holm", "Holm p"),
        ],
    ),
    TestView(
        "Per-inference latency spread, per model (fold-level log-ratios)",
        Table.LATENCY_DISPERSION,
        _LATENCY_KEYS
        + [
            tables.number("n_pairs", "Folds", 0),
            tables.number("sd_variant", "sd (ms, geo. mean)", 4),
            tables.number("sd_baseline", "sd base (ms)", 4),
            tables.number("variance_ratio", "Variance ratio", 3),
            _ci("variance_ratio_ci_low", "variance_ratio_ci_high", "95 % CI", 3),
            tables.number("iqr_ratio", "IQR ratio", 3),
            tables.number("mad_ratio", "MAD ratio", 3),
            _p("p", "p"),
            _p("p_holm", "Holm p"),
        ],
    ),
    TestView(
        "Per-inference latency variance, pooled samples (Brown-Forsythe; reference-style, p "
        "optimistic)",
        Table.LATENCY_LEVENE,
        _LATENCY_KEYS
        + [
            tables.number("sd_variant", "sd (ms)", 4),
            tables.number("sd_baseline", "sd base (ms)", 4),
            tables.number("variance_ratio", "Variance ratio", 3),
            _ci(
                "variance_ratio_ci_low", "variance_ratio_ci_high", "95 % CI (cluster bootstrap)", 3
            ),
            tables.number("std_reduction_reference", "1 - std ratio (reference's)", 3),
            _p("p", "p"),
            _p("p_holm", "Holm p"),
        ],
    ),
    TestView(
        "Fold-pass latency variance, the reference's protocol (fold means)",
        Table.FOLD_LATENCY_LEVENE,
        _KEYS
        + [
            tables.number("sd_variant", "sd (ms)", 3),
            tables.number("sd_baseline", "sd base (ms)", 3),
            tables.number("variance_ratio", "Variance ratio", 3),
            tables.number("std_reduction_reference", "1 - std ratio (reference's)", 3),
            _p("p", "p"),
            _p("p_holm", "Holm p"),
        ],
    ),
    TestView(
        "Median latency ratio, paired by interleaved timing round (median over rounds, "
        "order-statistic CI, sign test)",
        Table.LATENCY_PAIRED,
        [tables.text("family", "Family")]
        + _LATENCY_KEYS
        + [
            tables.number("ratio", "Ratio", 3),
            _ci("ratio_ci_low", "ratio_ci_high", "95 % CI", 3),
            _p("p_ratio", "p"),
            _p("ratio_p_holm", "Holm p"),
        ],
    ),
    TestView(
        "Energy per inference (paired t on fold means, log-ratio test; measured)",
        Table.ENERGY_INFERENCE_PAIRED,
        _KEYS
        + [
            tables.number("ratio", "Ratio", 3),
            _ci("ratio_ci_low", "ratio_ci_high", "95 % CI", 3),
            _p("p_ratio", "p"),
            _p("ratio_p_holm", "Holm p"),
        ],
    ),
]


ESTIMATED_ENERGY_TESTS = (
    "### Energy per inference\n\nNo significance table: energy per inference was estimated as "
    "a power model times run time, so a test of it would be the latency test under another "
    "name (see 'Median latency ratio' above). With energy read from power counters (RAPL) the "
    "paired tests appear here.\n"
)


def test_sections(stats_tables: dict[str, pd.DataFrame], runs: pd.DataFrame) -> list[str]:
    """The statistical tests, one section per stats table; estimated energy gets no test."""
    out = []
    for view in TEST_VIEWS:
        if view.table not in stats_tables:
            continue
        if view.table == Table.ENERGY_INFERENCE_PAIRED and not inference_energy_measured(runs):
            out.append(ESTIMATED_ENERGY_TESTS)
        else:
            out.append(test_section(view, stats_tables[view.table]))
    return out

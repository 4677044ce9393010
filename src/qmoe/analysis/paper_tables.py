"""The numbers behind the paper's tables 1-4 and its carbon supplement (reference-method.md 11.3),
each one CSV of the stats stage (reports/stats/<name>.csv) computed from the runs table by
`qmoe.analysis.paper_numbers`; `qmoe.report.paper_tables` says how the report shows each.
"""

from __future__ import annotations

import pandas as pd

from qmoe.analysis import paper_numbers as nums
from qmoe.analysis.names import Table
from qmoe.analysis.stats import StatsConfig

# each paper table's CSV and the function computing it: runs (with_units), f1 -> the CSV
STD_TABLES = {
    Table.STD_TABLE1: nums.table1,
    Table.STD_TABLE2: nums.table2,
    Table.STD_TABLE3: nums.table3,
    Table.STD_TABLE4: nums.table4,
    Table.STD_SUPPLEMENT: nums.supplement,
}


def std_tables(runs: pd.DataFrame, cfg: StatsConfig) -> dict[str, pd.DataFrame]:
    """Every paper table's CSV, by name (reports/stats/<csv>.csv)."""
    runs = nums.with_units(runs)
    return {csv: compute(runs, cfg.f1_metric) for csv, compute in STD_TABLES.items()}

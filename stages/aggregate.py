"""Join every run's metrics with its training cost and its benchmark into one tidy table. DVC stage:
aggregate."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from qmoe.analysis import results
from qmoe.cli import read_params, run_stage
from qmoe.contract.study import Study
from qmoe.io import atomic_path, from_section

log = logging.getLogger("stages.aggregate")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=Path, required=True, help="data/runs")
    ap.add_argument("--costs", type=Path, required=True, help="data/train_cost")
    ap.add_argument("--benchmarks", type=Path, required=True, help="data/benchmarks")
    ap.add_argument("--out", type=Path, required=True, help="reports/tables/runs.csv")
    args = ap.parse_args()

    study = from_section(Study, read_params().get("study"), "study")
    table = results.runs_table(results.Roots(args.runs, args.costs, args.benchmarks), study)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    log.info("%d runs x %d columns -> %s", len(table), table.shape[1], args.out)


if __name__ == "__main__":
    run_stage(main)

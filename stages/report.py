"""Figures, paper tables, the DVC metrics file, per-fold F1 plot data, report.md and its summary
(qmoe.report.build). DVC stage: report."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from qmoe.cli import read_params, run_stage  # noqa: E402
from qmoe.report.build import Inputs, Outputs, build  # noqa: E402

log = logging.getLogger("stages.report")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for flag in (*Inputs._fields, *Outputs._fields):
        ap.add_argument(f"--{flag}", type=Path, required=True)
    args = vars(ap.parse_args())
    outputs = Outputs(*(args[f] for f in Outputs._fields))
    n = build(Inputs(*(args[f] for f in Inputs._fields)), outputs, read_params())
    log.info("report -> %s (%d figures)", outputs.out, n)


if __name__ == "__main__":
    run_stage(main)

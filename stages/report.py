"""Figures, paper tables, the DVC metrics file, per-fold F1 plot data, report.md and its summary.md.
DVC stage: report."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from qmoe.analysis import results  # noqa: E402
from qmoe.analysis.paper_tables import PAPER_TABLES  # noqa: E402
from qmoe.cli import read_params, run_stage  # noqa: E402
from qmoe.io import atomic_dir, atomic_path, from_section, load_json  # noqa: E402
from qmoe.report import (
    deployment,  # noqa: E402
    document,  # noqa: E402
    figures,  # noqa: E402
    leakage,  # noqa: E402
    provenance,  # noqa: E402
    sections,  # noqa: E402
    tables,  # noqa: E402
    verdicts,  # noqa: E402
)
from qmoe.training.fit import TrainConfig  # noqa: E402
from qmoe.training.protocols import make_protocol  # noqa: E402

log = logging.getLogger("stages.report")


def read_stats(folder: Path) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict]:
    if not (folder / "stats.json").is_file():
        raise FileNotFoundError(f"{folder}/stats.json: not found (run the stats stage)")
    frames = {
        p.stem: pd.read_csv(p) if p.stat().st_size > 1 else pd.DataFrame()
        for p in sorted(folder.glob("*.csv"))
    }
    if "claims" not in frames:
        raise FileNotFoundError(f"{folder}/claims.csv: not found (run the stats stage)")
    return frames, frames.pop("claims"), load_json(folder / "stats.json")


def protocol_lines(params: dict, runs: pd.DataFrame) -> dict[str, list[str]]:
    """What each protocol of the study does, in its own words (qmoe.training.protocols)."""
    cfg = from_section(TrainConfig, params.get("train"), "train")
    return {p: make_protocol(p, cfg).describe() for p in sorted(runs["protocol"].unique())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    flags = (
        "table stats runs benchmarks raw metrics bench_metrics verdicts plots figures tables out "
        "summary"
    )
    for flag in flags.split():
        ap.add_argument(f"--{flag}", type=Path, required=True)
    args = ap.parse_args()

    params = read_params()
    cfg = from_section(document.ReportConfig, params.get("report"), "report")
    runs = results.read_runs_table(args.table)
    stats, evidence, summary = read_stats(args.stats)
    f1 = summary["config"]["f1_metric"]
    rel = lambda p: Path(os.path.relpath(p, args.out.parent)).as_posix()  # noqa: E731

    with contextlib.ExitStack() as stack:  # all outputs appear together, or none
        fig_dir = stack.enter_context(atomic_dir(args.figures))
        tab_dir = stack.enter_context(atomic_dir(args.tables))
        pngs = []
        for dataset in sorted(runs["dataset"].unique()):
            regime = summary["config"]["latency_regime"]  # the claims' cache regime
            data = figures.load(args.runs, args.benchmarks, runs, dataset, f1, regime, stats)
            for name, fig in figures.build(data, f1).items():
                figures.save(fig, fig_dir, f"{dataset}_{name}", cfg.formats, cfg.dpi)
                png = rel(args.figures / "png" / f"{dataset}_{name}.png")
                pngs.append(document.FigureRef(png, figures.FIGURES[name]))
        ptables = [tables.paper_table(t, stats[t.csv], f1) for t in PAPER_TABLES]
        for t in ptables:
            (tab_dir / f"{t.name}.md").write_text(f"# {t.title}\n\n{tables.markdown(t)}")
            (tab_dir / f"{t.name}.tex").write_text(tables.latex(t))
        datasets = provenance.dataset_rows(args.raw, sorted(runs["dataset"].unique()))
        devices = provenance.devices(args.benchmarks)
        commit = provenance.git_commit()
        prov = provenance.markdown(
            commit, params, datasets, devices, provenance.energy_methods(runs)
        )
        doc = document.Document(
            runs,
            stats,
            evidence,
            summary["config"],
            summary["methods"],
            cfg.verdict,
            pngs,
            ptables,
            rel(args.tables),
            prov,
            protocol_lines(params, runs),
            devices=devices,
            deployed=deployment.deployed_form(params.get("export")),
            leaks=leakage.load(args.raw, args.runs, runs),
            commit=commit,
        )
        text = document.render(doc)
        plot = stack.enter_context(atomic_path(args.plots))
        sections.f1_per_fold(runs, f1).to_csv(plot, index=False)
        metrics = stack.enter_context(atomic_path(args.metrics))
        metrics.write_text(json.dumps(sections.metrics(runs), indent=2, sort_keys=True) + "\n")
        verdict = stack.enter_context(atomic_path(args.verdicts))
        verdict.write_text(
            json.dumps(verdicts.verdict_metrics(document.verdicts(doc)), indent=2, sort_keys=True)
            + "\n"
        )
        bench = stack.enter_context(atomic_path(args.bench_metrics))
        bench.write_text(
            json.dumps(sections.benchmark_metrics(runs), indent=2, sort_keys=True) + "\n"
        )
        report = stack.enter_context(atomic_path(args.out))
        report.write_text(text)
        brief = stack.enter_context(atomic_path(args.summary))
        brief.write_text(document.summary_text(doc))  # copied into README by readme_summary.py
    log.info("report -> %s (%d figures)", args.out, len(pngs))


if __name__ == "__main__":
    run_stage(main)

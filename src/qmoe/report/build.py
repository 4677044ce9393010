"""The report stage's work: figures, paper tables, the DVC metrics file, per-fold F1 plot data,
report.md and its summary, from the runs table, the stats stage's tables and the results tree.
Every output appears together, or none (atomic files and folders in one exit stack)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from qmoe.contract.runs import protocol_file, read_protocol, read_runs_table
from qmoe.io import InputError, atomic_dir, atomic_path, from_section, load_json
from qmoe.report import (
    deployment,
    document,
    figures,
    leakage,
    provenance,
    sections,
    tables,
    verdicts,
)
from qmoe.report.paper_tables import PAPER_TABLES


class Inputs(NamedTuple):
    """What the report reads (paths as dvc.yaml gives them)."""

    table: Path  # reports/tables/runs.csv
    stats: Path  # reports/stats
    runs: Path  # data/runs
    costs: Path  # data/train_cost (each protocol's description)
    benchmarks: Path  # data/benchmarks
    raw: Path  # data/raw


class Outputs(NamedTuple):
    """What the report writes."""

    metrics: Path  # DVC metrics: per variant
    bench_metrics: Path  # DVC metrics: per variant, the benchmark's
    verdicts: Path  # reports/verdicts.json
    plots: Path  # reports/plots/f1_per_fold.csv
    figures: Path  # reports/figures
    tables: Path  # reports/tables/paper
    out: Path  # reports/report.md
    summary: Path  # reports/summary.md


class Stats(NamedTuple):
    tables: dict[str, pd.DataFrame]  # reports/stats/<name>.csv
    claims: pd.DataFrame  # claims.csv
    summary: dict  # stats.json


def read_stats(folder: Path) -> Stats:
    if not (folder / "stats.json").is_file():
        raise FileNotFoundError(f"{folder}/stats.json: not found (run the stats stage)")
    frames = {
        p.stem: pd.read_csv(p) if p.stat().st_size > 1 else pd.DataFrame()
        for p in sorted(folder.glob("*.csv"))
    }
    if "claims" not in frames:
        raise FileNotFoundError(f"{folder}/claims.csv: not found (run the stats stage)")
    return Stats(frames, frames.pop("claims"), load_json(folder / "stats.json"))


def protocol_lines(costs: Path, runs: pd.DataFrame) -> dict[str, list[str]]:
    """What each protocol of the study does, in its own words, as the train stage recorded it
    (qmoe.contract.runs.read_protocol)."""
    found: dict[str, list[str]] = {}
    for d, p in sorted(set(zip(runs["dataset"], runs["protocol"], strict=True))):
        lines = read_protocol(costs, d, p)
        if found.setdefault(p, lines) != lines:
            path = protocol_file(costs, d, p)
            raise InputError(f"{path}: describes {p} otherwise than another dataset's record")
    return {p: found[p] for p in sorted(found)}


def build(inputs: Inputs, outputs: Outputs, params: dict[str, Any]) -> int:
    """Write every output of `outputs`; returns the number of figures. `params`: params.yaml
    (`report`, `export`'s graph form, and the sections provenance lists)."""
    cfg = from_section(document.ReportConfig, params.get("report"), "report")
    runs = read_runs_table(inputs.table)
    stats = read_stats(inputs.stats)
    with contextlib.ExitStack() as stack:
        fig_dir = stack.enter_context(atomic_dir(outputs.figures))
        tab_dir = stack.enter_context(atomic_dir(outputs.tables))
        pngs = _figures(inputs, outputs, runs, stats, fig_dir, cfg)
        ptables = _paper_tables(stats, tab_dir)
        devices = provenance.devices(inputs.benchmarks)
        commit = provenance.git_commit()
        datasets = provenance.dataset_rows(inputs.raw, sorted(runs["dataset"].unique()))
        energy = provenance.energy_methods(runs)
        doc = document.Document(
            runs,
            stats.tables,
            stats.claims,
            stats.summary["config"],
            stats.summary["methods"],
            cfg.verdict,
            pngs,
            ptables,
            _rel(outputs.tables, outputs.out),
            provenance.markdown(commit, params, datasets, devices, energy),
            protocol_lines(inputs.costs, runs),
            devices=devices,
            deployed=deployment.deployed_form(params.get("export")),
            leaks=leakage.load(inputs.raw, inputs.runs, runs),
            commit=commit,
        )
        _write(stack, outputs, doc, stats.summary["config"]["f1_metric"])
    return len(pngs)


def _rel(path: Path, report: Path) -> str:
    """`path` as report.md links it."""
    return Path(os.path.relpath(path, report.parent)).as_posix()


def _figures(
    inputs: Inputs,
    outputs: Outputs,
    runs: pd.DataFrame,
    stats: Stats,
    tmp: Path,
    cfg: document.ReportConfig,
) -> list[document.FigureRef]:
    """Every dataset's figures into `tmp` (the atomic stand-in of outputs.figures)."""
    f1, regime = stats.summary["config"]["f1_metric"], stats.summary["config"]["latency_regime"]
    pngs = []
    for dataset in sorted(runs["dataset"].unique()):
        data = figures.load(inputs.runs, inputs.benchmarks, runs, dataset, f1, regime, stats.tables)
        for name, fig in figures.build(data, f1).items():
            figures.save(fig, tmp, f"{dataset}_{name}", cfg.formats, cfg.dpi)
            png = _rel(outputs.figures / "png" / f"{dataset}_{name}.png", outputs.out)
            pngs.append(document.FigureRef(png, figures.FIGURES[name]))
    return pngs


def _paper_tables(stats: Stats, folder: Path) -> list[tables.Table]:
    f1 = stats.summary["config"]["f1_metric"]
    ptables = [tables.paper_table(t, stats.tables[t.csv], f1) for t in PAPER_TABLES]
    for t in ptables:
        (folder / f"{t.name}.md").write_text(f"# {t.title}\n\n{tables.markdown(t)}")
        (folder / f"{t.name}.tex").write_text(tables.latex(t))
    return ptables


def _json(stack: contextlib.ExitStack, path: Path, data: Any) -> None:
    tmp = stack.enter_context(atomic_path(path))
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write(stack: contextlib.ExitStack, outputs: Outputs, doc: document.Document, f1: str) -> None:
    """The files beside the figures and tables, each atomic within `stack`."""
    text = document.render(doc)
    plot = stack.enter_context(atomic_path(outputs.plots))
    sections.f1_per_fold(doc.runs, f1).to_csv(plot, index=False)
    _json(stack, outputs.metrics, sections.metrics(doc.runs))
    _json(stack, outputs.verdicts, verdicts.verdict_metrics(document.verdicts(doc)))
    _json(stack, outputs.bench_metrics, sections.benchmark_metrics(doc.runs))
    stack.enter_context(atomic_path(outputs.out)).write_text(text)
    # copied into README by scripts/readme_summary.py
    stack.enter_context(atomic_path(outputs.summary)).write_text(document.summary_text(doc))

"""Escalating MoEs (`route` and its `random` placebo): how many test samples escalate, how stable
that is across dropout-mask banks and T, from the train stage's curiosity records
(docs/architecture.md 3: curiosity/<model>.json `escalated`, `sensitivity`, `bank_counts`).

`load` reads the records of every escalating variant in the runs table; `escalation` gives one row
per (dataset, protocol, variant, T), written by the stats stage as routing_escalation.csv:

- `share_mean`, `share_sd_models`: the escalated share at the model's own T and bank 0 (what was
  scored), its mean and sd over the models;
- `share_sd_banks`: per model the sd of the share over the banks, averaged over models;
- `jaccard_mean`: mean overlap of a bank's escalated set with the deployed one (1 = the bank does
  not matter);
- `unstable_share`: of the samples escalated in at least one bank, the share escalated in fewer
  than half of the banks (high: escalation is mostly the bank's doing, i.e. noise);
- `f1_mean`, `f1_sd_banks`: macro-F1 at that T, and its spread over banks;
- `n_calibration_min`, `calibration`: how many clips set each threshold, and which part.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from qmoe.analysis.results import variant_facts
from qmoe.contract.runs import ModelKey, RunFolder
from qmoe.contract.study import RunId
from qmoe.io import InputError

ESCALATING = ("route", "random")
COLUMNS = [
    "dataset",
    "protocol",
    "variant",
    "curiosity",
    "mc_samples",
    "n_models",
    "calibration",
    "n_calibration_min",
    "share_mean",
    "share_sd_models",
    "share_sd_banks",
    "jaccard_mean",
    "unstable_share",
    "f1_mean",
    "f1_sd_banks",
]


def load(runs_root: Path, runs: pd.DataFrame) -> list[tuple[RunId, ModelKey, dict]]:
    """(where, model, record) of every model of an escalating variant in `runs`; a model whose
    record is missing or lacks the routing fields raises, naming the file."""
    facts = variant_facts(runs)
    out = []
    models = runs[runs["variant"].isin(facts.index[facts["curiosity"].isin(ESCALATING)])]
    for (d, p, v, fold, seed), _ in models.groupby(
        ["dataset", "protocol", "variant", "fold", "seed"], sort=True
    ):
        where, key = RunId(d, p, v), ModelKey(int(fold), int(seed))
        path = RunFolder(where.under(runs_root)).curiosity(key)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: routing record of an escalating MoE not found")
        record = json.loads(path.read_text())
        missing = [f for f in ("escalated", "sensitivity", "n_calibration") if f not in record]
        if missing:
            raise InputError(f"{path}: no {missing} (written by the train stage; rerun it)")
        out.append((where, key, record))
    return out


def _unstable(counts: list[int], banks: int) -> float:
    c = np.asarray(counts)
    ever = c > 0
    return float(np.mean(c[ever] < banks / 2)) if ever.any() else float("nan")


def _model_rows(where: RunId, key: ModelKey, record: dict, mode: str) -> list[dict]:
    """One row per MC sample count T of one model's curiosity record, with its identity."""
    base = {
        "dataset": where.dataset,
        "protocol": where.protocol,
        "variant": where.variant,
        "curiosity": mode,
        "fold": key.fold,
        "seed": key.seed,
        "calibration": record.get("calibration", ""),
        "n_calibration": record["n_calibration"],
    }
    sens = pd.DataFrame(record["sensitivity"])
    if sens.empty:  # the placebo: its deployed escalations only
        share = float(np.mean(record["escalated"]))
        return [{**base, "mc_samples": 0, "share": share, **dict.fromkeys(_BANK_STATS, np.nan)}]
    counts = record.get("bank_counts", {})
    return [
        {**base, **_bank_row(int(t), part, counts)}
        for t, part in sens.groupby("mc_samples", sort=True)
    ]


_BANK_STATS = ("share_sd_banks", "jaccard", "unstable", "f1", "f1_sd_banks")


def _bank_row(t: int, part: pd.DataFrame, counts: dict) -> dict:
    """One MC sample count T over the mask banks: bank 0's share and F1, their spread over the
    banks, the Jaccard overlap with the deployed escalations, and the unstable share."""

    def sd(col: str) -> float:
        return float(part[col].std(ddof=1)) if len(part) > 1 else 0.0

    bank0 = part[part["bank"] == 0].iloc[0]
    return {
        "mc_samples": t,
        "share": float(bank0["share"]),
        "share_sd_banks": sd("share"),
        "jaccard": float(part["jaccard_vs_deployed"].mean()),
        "unstable": _unstable(counts.get(str(t), []), len(part)),
        "f1": float(bank0["macro_f1"]),
        "f1_sd_banks": sd("macro_f1"),
    }


def escalation(records: list[tuple[RunId, ModelKey, dict]], runs: pd.DataFrame) -> pd.DataFrame:
    """routing_escalation.csv (see the module docstring)."""
    facts = variant_facts(runs) if not runs.empty else None
    rows = [
        r
        for where, key, rec in records
        for r in _model_rows(where, key, rec, facts.loc[where.variant, "curiosity"])
    ]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.DataFrame(rows)
    keys = ["dataset", "protocol", "variant", "curiosity", "mc_samples"]
    out = (
        frame.groupby(keys, sort=True)
        .agg(
            n_models=("share", "size"),
            calibration=("calibration", "first"),
            n_calibration_min=("n_calibration", "min"),
            share_mean=("share", "mean"),
            share_sd_models=("share", "std"),
            share_sd_banks=("share_sd_banks", "mean"),
            jaccard_mean=("jaccard", "mean"),
            unstable_share=("unstable", "mean"),
            f1_mean=("f1", "mean"),
            f1_sd_banks=("f1_sd_banks", "mean"),
        )
        .reset_index()
    )
    return out[COLUMNS]

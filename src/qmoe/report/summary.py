"""What the study found, in a few lines: the verdict counts, the claims a reader acts on, the
deployment gap and the scope. The report opens with it and reports/summary.md carries it to the
README (scripts/readme_summary.py), so both show the same generated text."""

from __future__ import annotations

import pandas as pd

from qmoe.report import deployment, provenance
from qmoe.report.verdicts import PROTOCOLS, reading_line, split, verdict_table, verdict_tally

# The rows a reader acts on: F1 kept at 4 bits, its compression, 4-bit vs 8-bit and MoE vs
# 8-bit deployed latency, and whether routing on curiosity beats its random placebo.
KEY_CLAIMS = (
    "f1_q4_vs_q16",
    "compression_4x",
    "latency_q4_vs_q8",
    "moe_overhead_11",
    "curiosity_beats_placebo",
)


def study_line(runs: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """What was judged and the paper's verdict counts (our extensions apart, not counted)."""
    datasets = ", ".join(f"`{d}`" for d in sorted(runs["dataset"].unique()))
    absent = [p for p in PROTOCOLS if p not in set(runs["protocol"])]
    note = f"; {', '.join(absent)} not run" if absent else ""
    paper, ours = split(verdicts)
    extensions = (
        f" Our {ours['claim'].nunique()} extension rows (claims the paper did not make) are "
        "judged apart and not counted."
        if not ours.empty
        else ""
    )
    return (
        f"{paper['claim'].nunique()} claims of the paper x {len(PROTOCOLS)} protocols "
        f"({', '.join(PROTOCOLS)}{note}) on {datasets}, {len(runs)} trained models of "
        f"{runs['variant'].nunique()} variants. Verdicts: {verdict_tally(paper)}. "
        f"{reading_line(paper)}{extensions}"
    )


def gap_line(runs: pd.DataFrame) -> str:
    worst = deployment.largest_gap(runs)
    if worst is None:
        return "No deployed F1 was recorded."
    p, v, g = worst
    return (
        f"Deployed artefacts score within {abs(g.mean_gap):.4f} macro-F1 of their training "
        f"form on average per variant (largest: `{v}`, {p}, {g.training:.4f} -> "
        f"{g.deployed:.4f}); every variant's gap is in the report's Deployment section."
    )


def markdown(
    verdicts: pd.DataFrame, runs: pd.DataFrame, devices: list[dict], commit: str = ""
) -> str:
    """`verdicts`: qmoe.report.claim_verdicts.judge rows; `devices`: device.json records; `commit`:
    the code's commit (provenance.git_commit), named last so the README says what it ran."""
    machines = deployment.machines(devices)
    lines = [
        study_line(runs, verdicts) + "\n",
        verdict_table(verdicts, only=KEY_CLAIMS, reasons=False),
        f"- {gap_line(runs)}",
        f"- {deployment.scope_line(machines, deployment.runtimes(runs))}",
        f"- {deployment.energy_line(runs, detail=False)}",
    ]
    if commit:
        lines.append(f"- {provenance.commit_line(commit)} (the report's Provenance has the rest).")
    return "\n".join(lines).rstrip() + "\n"

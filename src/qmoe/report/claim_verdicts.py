"""The claims judged: every claim of `qmoe.analysis.paper_claims` x dataset x protocol of the
stats stage's claims.csv, as verdict rows (the verdict and its parts as data) that
`qmoe.report.verdicts` renders. The rules are `qmoe.analysis.verdict`'s, applied by
`qmoe.report.judgement`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from qmoe.analysis.paper_claims import CLAIMS, EXTENSIONS, MEASURED, Claim
from qmoe.analysis.verdict import Decision, Evidence, Verdict, VerdictConfig
from qmoe.report.judgement import JUDGED, NO_POWER, decide, power, scoped


def _measured(hit: pd.DataFrame) -> dict[str, str]:
    """runtime, regime, batch and scope text of a claims.csv row ('' where absent; a batch read
    back from CSV as 1.0 is '1')."""
    row = hit.iloc[0] if len(hit) else pd.Series(dtype=object)

    def text(col: str) -> str:
        value = row[col] if col in row and pd.notna(row[col]) else ""
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    return {c: text(c) for c in (*MEASURED, "measured_scope")}


def _evidence(row: pd.Series) -> Evidence:
    def num(col: str) -> float:
        return float(row[col]) if col in row and pd.notna(row[col]) else math.nan

    def text(col: str) -> str:
        return str(row[col]) if col in row and pd.notna(row[col]) else ""

    return Evidence(
        bool(row["computed"]),
        text("reason"),
        *(num(c) for c in ("estimate", "ci_low", "ci_high", "p", "margin", "p_equivalence")),
        text("not_testable"),
        num("n"),
        text("unit"),
    )


def judge(
    found: pd.DataFrame, cfg: VerdictConfig, alpha: float, protocols: Sequence[str]
) -> pd.DataFrame:
    """Verdict rows for every claim x dataset of claims.csv `found` x every protocol of
    `protocols`, run or not: the verdict and its parts as data (`verdict_row`), rendered by the
    report."""
    rows = []
    datasets = list(dict.fromkeys(found["dataset"])) or ["(no dataset)"]
    for claim in CLAIMS:
        for d in datasets:
            for p in protocols:
                hit = found[
                    (found["claim"] == claim.id)
                    & (found["dataset"] == d)
                    & (found["protocol"] == p)
                ]
                if hit.empty:
                    ev = Evidence(False, f"protocol {p} not in the study", *[math.nan] * 5)
                    ours = "not run"
                else:
                    ev, ours = _evidence(hit.iloc[0]), hit.iloc[0]["ours"]
                rows.append(verdict_row(claim, d, p, ours, ev, cfg, alpha, _measured(hit)))
    return pd.DataFrame(rows)


def verdict_row(
    claim: Claim,
    d: str,
    p: str,
    ours: str,
    ev: Evidence,
    cfg: VerdictConfig,
    alpha: float,
    measured: dict[str, str] | None = None,
) -> dict:
    """One verdict as data: the verdict and its scope, an effect claim's direction and size, the
    proxy, the numbers they rest on and, for an inconclusive verdict, its power
    (qmoe.report.judgement); `measured`: a latency claim's runtime, regime, batch and
    measured_scope ('ORT 1.31.1, after_backbone, batch 1, this CPU')."""
    c = claim.judge
    measured = measured or dict.fromkeys((*MEASURED, "measured_scope"), "")
    dec, scope = _scoped(claim, d, ev, cfg, alpha, measured["measured_scope"])
    sized = power(c, ev, cfg) if dec.verdict is Verdict.INCONCLUSIVE else None
    return {
        "claim": claim.id,
        "dataset": d,
        "protocol": p,
        "ours": ours,
        "verdict": dec.verdict.value,
        "scope": scope,
        **{k: measured[k] for k in MEASURED},
        "reason": dec.reason,
        "extension": claim.id in EXTENSIONS,
        "proxy": c.proxy,
        "effect": c.effect.value,
        "paper_value": c.value,
        "null": c.null,
        "estimate": ev.estimate,
        "ci_low": ev.ci_low,
        "ci_high": ev.ci_high,
        "direction": dec.direction.value if dec.direction else "",
        "size": dec.size.value if dec.size else "",
        **{f"power_{k}": v for k, v in (sized or NO_POWER)._asdict().items()},
    }


def _scoped(
    claim: Claim, d: str, ev: Evidence, cfg: VerdictConfig, alpha: float, measured_scope: str
) -> tuple[Decision, str]:
    """The verdict and its scope: a latency claim's is its measurement, whatever the dataset
    (latency depends on the runtime, cache and batch, not on the clips); any other's, the
    dataset's standing (`qmoe.report.judgement.scoped`)."""
    dec = decide(claim.judge, ev, cfg, alpha)
    if claim.timing is None:
        return scoped(dec, d)
    return dec, measured_scope if dec.verdict in JUDGED else ""

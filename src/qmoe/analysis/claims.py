"""The abstracts' claims (reference-method.md 2), each one entry: wording, the paper's statement
and value, our extractor, and the criterion that judges it.

`evidence` runs every extractor on every (dataset, protocol) of the runs table (the stats stage
writes it as reports/stats/claims.csv); `judge` turns that evidence into verdicts with the generic
rules of `qmoe.analysis.verdict` (the report stage shows them). Adding a claim is adding an entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from qmoe.analysis import evidence as ex
from qmoe.analysis import roles
from qmoe.analysis.evidence import Context, Extractor
from qmoe.analysis.verdict import (
    EQUIVALENT,
    NO_GAIN,
    Criterion,
    Evidence,
    Scale,
    VerdictConfig,
    decide,
    interval,
    significant,
    untestable,
)


class Claim(NamedTuple):
    id: str
    claim: str  # what is claimed, in our words
    source: str  # abstract version: v1, v3 or v1+v3
    paper: str  # the paper's statement, as displayed
    extract: Extractor  # our evidence for it on one (dataset, protocol)
    judge: Criterion  # the rule, the paper's value and the tolerance


_UNTESTABLE_EFF = ("the unit is mislabelled (F1 per training Wh printed as F1/mJ, reference 10.3), "
                   "the model is unnamed, and energy depends on the machine")
_P = "proportion_tol"
# energy claims: judged only where the energy was measured (inference: the benchmark's method,
# training: the train stage's); a CodeCarbon power model x time makes them not testable here
_INFER = lambda e: ex.measured_energy("bench_energy_method", e)  # noqa: E731
_TRAIN = lambda e: ex.measured_energy("energy_method", e)  # noqa: E731
_LAT_LEVENE = ("latency_dispersion", "latency_dispersion_curiosity_vs_moe", roles.CURIOSITY_V1)

# fmt: off
CLAIMS = [
    Claim("f1_q4_vs_q16", "4-bit keeps the F1 of '16-bit'", "v1+v3", "0.858 vs 0.859 (99.9 %)",
          ex.f1_ratio, interval(0.999, "ratio_tol")),
    Claim("compression_4x", "4x compression (4-bit vs 16-bit)", "v1+v3", "4x", ex.compression,
          interval(4.0, "rel_tol", Scale.RELATIVE, exact=True)),
    Claim("energy_inference_v1", "41 % energy saving, 4-bit vs 8-bit (inference energy)", "v1",
          "41 %", _INFER(ex.saving("energy_inference_paired", "mJ per inference")),
          interval(0.41, _P)),
    Claim("energy_inference_v3", "31 % energy saving, 4-bit vs 8-bit (inference energy)", "v3",
          "31 %", _INFER(ex.saving("energy_inference_paired", "mJ per inference")),
          interval(0.31, _P)),
    Claim("latency_q4_vs_q8", "4-bit faster than 8-bit on real kernels (the latency form of the "
          "41 % / 31 % energy claims; deployed latency)", "v1+v3", "41 % / 31 % (energy)",
          ex.saving("latency_paired", "median ms", "latency_w4a8_vs_w8a8"), interval(0.41, _P)),
    Claim("energy_train_v1", "41 % energy saving, 4-bit vs 8-bit (training energy, the "
          "reference's measure)", "v1", "41 %",
          _TRAIN(ex.saving("energy_train_paired", "training kWh")), interval(0.41, _P)),
    Claim("energy_train_v3", "31 % energy saving, 4-bit vs 8-bit (training energy)", "v3",
          "31 %", _TRAIN(ex.saving("energy_train_paired", "training kWh")), interval(0.31, _P)),
    Claim("equiv_w4a8_fp32", "4-bit equivalent to full precision (FP32)", "v1+v3", "p > 0.05",
          ex.equivalence(roles.Q4, roles.FP32), EQUIVALENT),
    Claim("equiv_w8a8_fp32", "8-bit equivalent to full precision (FP32)", "v1+v3", "p > 0.05",
          ex.equivalence(roles.Q8, roles.FP32), EQUIVALENT),
    Claim("equiv_w4a8_q16", "4-bit equivalent to '16-bit' (q16_reference)", "v1", "p > 0.05",
          ex.equivalence(roles.Q4, roles.Q16), EQUIVALENT),
    Claim("equiv_w8a8_q16", "8-bit equivalent to '16-bit' (q16_reference)", "v1", "p > 0.05",
          ex.equivalence(roles.Q8, roles.Q16), EQUIVALENT),
    Claim("latency_variance_82", "curiosity cuts MoE latency variance by 82 % (per-inference "
          "latency)", "v1", "-82 %, Levene p = 0.008", ex.variance(*_LAT_LEVENE),
          significant(0.82, _P)),
    Claim("latency_variance_82_reference", "the same, the reference's way (fold-pass times, "
          "1 - std ratio)", "v1", "-82 %, Levene p = 0.008",
          ex.variance("fold_latency_levene", "fold_latency_levene_curiosity_vs_moe",
                      roles.CURIOSITY_V1, ex.Spread(reference_std=True)),
          significant(0.82, _P)),
    Claim("latency_std_230_29", "MoE latency std 230 ms -> 29 ms with curiosity (std ratio)",
          "v1", "230 -> 29 ms (ratio 0.126)", ex.variance(*_LAT_LEVENE, ex.Spread(std_ratio=True)),
          interval(29 / 230, _P, note="absolute ms depend on the machine; the ratio is compared")),
    Claim("moe_overhead_11", "MoE +11 % latency vs Q8-Base", "v1", "+11 %, p < 0.001",
          ex.moe_overhead, significant(0.11, _P)),
    Claim("moe_no_gain", "MoE brings no accuracy gain vs Q8-Base", "v1", "no gain",
          ex.moe_no_gain, NO_GAIN),
    Claim("params_1_2m", "1.2 M parameters", "v1+v3", "1.2 M", ex.params,
          interval(1.2e6, "rel_tol", Scale.RELATIVE, exact=True)),
    Claim("f1_per_mj", "3.87 F1/mJ", "v1", "3.87 F1/mJ", ex.f1_per_mj,
          untestable(_UNTESTABLE_EFF)),
    Claim("deploy_10000x", "deployment emissions 10,000x training beyond 1,000 inferences",
          "v1", "10,000x at 1,000 inferences", _INFER(_TRAIN(ex.deploy_ratio)),
          interval(1e4, "log10_tol", Scale.LOG10)),
    Claim("f1_variance_85", "curiosity cuts cross-fold F1 variance by 85 %", "v3",
          "-85 %, Levene p < 0.001",
          ex.variance("f1_variance_levene", "f1_variance_curiosity_vs_moe", roles.CURIOSITY_V3),
          significant(0.85, _P)),
    Claim("quinn_f1", "curiosity raises Quinn F1 0.802 -> 0.809", "v3", "+0.007", ex.quinn,
          interval(0.007, "f1_tol")),
    Claim("routing_q8_confidence", "the 8-bit expert gets the uncertain samples: 20 % lower "
          "gate confidence", "v3", "20 % lower, p < 0.001", ex.routing_confidence,
          significant(0.20, _P)),
]
# fmt: on
BY_ID = {c.id: c for c in CLAIMS}


def evidence(ctx: Context) -> pd.DataFrame:
    """claims.csv: one row per claim x dataset x protocol, in CLAIMS order."""
    rows = []
    scopes = (
        ctx.runs[["dataset", "protocol"]].drop_duplicates().sort_values(["dataset", "protocol"])
    )
    for claim in CLAIMS:
        for d, p in scopes.itertuples(index=False):
            ev, ours = claim.extract(ctx, d, p)
            rows.append(
                {"claim": claim.id, "dataset": d, "protocol": p, "ours": ours, **ev._asdict()}
            )
    return pd.DataFrame(rows)


def _evidence(row: pd.Series) -> Evidence:
    return Evidence(
        bool(row["computed"]),
        str(row["reason"]) if pd.notna(row["reason"]) else "",
        *(float(row[c]) for c in ("estimate", "ci_low", "ci_high", "p", "margin")),
    )


def judge(found: pd.DataFrame, cfg: VerdictConfig, alpha: float,
          protocols: Sequence[str]) -> pd.DataFrame:
    """Verdict rows (claim, dataset, protocol, ours, verdict, reason) for every claim x dataset of
    claims.csv `found` x every protocol of `protocols`, run or not."""
    rows = []
    datasets = list(dict.fromkeys(found["dataset"])) or ["(no dataset)"]
    for claim in CLAIMS:
        for d in datasets:
            for p in protocols:
                hit = found[(found["claim"] == claim.id) & (found["dataset"] == d)
                            & (found["protocol"] == p)]
                if hit.empty:
                    absent = Evidence(False, f"protocol {p} not in the study", *[math.nan] * 5)
                    ours, dec = "not run", decide(claim.judge, absent, cfg, alpha)
                else:
                    ours = hit.iloc[0]["ours"]
                    dec = decide(claim.judge, _evidence(hit.iloc[0]), cfg, alpha)
                rows.append({"claim": claim.id, "dataset": d, "protocol": p, "ours": ours,
                             "verdict": dec.verdict.value, "reason": dec.reason})
    return pd.DataFrame(rows)


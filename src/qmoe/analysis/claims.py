"""The abstracts' claims (reference-method.md 2), each one entry: wording, the paper's statement
and value, our extractor, and the criterion that judges it.

`evidence` runs every extractor on every (dataset, protocol) of the runs table (the stats stage
writes it as reports/stats/claims.csv); `judge` turns that evidence into verdicts with the generic
rules of `qmoe.analysis.verdict` (the report stage shows them). Adding a claim is adding an entry.
Rows the paper never claimed are `EXTENSIONS`: judged alike, shown apart, never counted with the
paper's verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from qmoe.analysis import accuracy as acc
from qmoe.analysis import effects as fx
from qmoe.analysis import evidence as ex
from qmoe.analysis import roles
from qmoe.analysis.evidence import Context, Extractor
from qmoe.analysis.judgement import JUDGED, NO_POWER, decide, power, scoped
from qmoe.analysis.latency_scope import Timing, measurement
from qmoe.analysis.names import Family, Table
from qmoe.analysis.verdict import (
    EQUIVALENT,
    NO_GAIN,
    Criterion,
    Decision,
    Effect,
    Evidence,
    Rule,
    Scale,
    Verdict,
    VerdictConfig,
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
    timing: Timing | None = None  # latency claims: how the latency was measured (their scope)


_UNTESTABLE_EFF = (
    "the unit is mislabelled (F1 per training Wh printed as F1/mJ, reference 10.3), "
    "the model is unnamed, and energy depends on the machine"
)
_P = "proportion_tol"
# energy claims: judged only where the energy was measured (inference: the benchmark's method,
# training: the train stage's); a CodeCarbon power model x time makes them not testable here
_INFER = lambda e: ex.measured_energy("bench_energy_method", e)  # noqa: E731
_TRAIN = lambda e: ex.measured_energy("energy_method", e)  # noqa: E731
_LAT_SPREAD = (Table.LATENCY_DISPERSION, Family.LATENCY_DISPERSION_CURIOSITY_VS_MOE)
_LAT_LEVENE = (*_LAT_SPREAD, roles.CURIOSITY_V1)
_ROUTE_LAT = (*_LAT_SPREAD, roles.ROUTE)
_F1_SPREAD = (Table.F1_VARIANCE_LEVENE, Family.F1_VARIANCE_CURIOSITY_VS_MOE)
_ARITH = "a count at fixed shapes: true by arithmetic, not an experimental finding"
# the premise, judged on the route models' own weights (qmoe.analysis.escalation)
_SAME_WEIGHTS = Criterion(
    Rule.SUPERIORITY,
    null=0.0,
    note="rule: reproduced when u beats random sets of as many test clips on the same weights "
    "(one-sided permutation test, Holm over the route variants, p < alpha) with the whole "
    "permutation range of the difference above 0; not reproduced when that range lies below 0",
)
_FALL, _RISE, _RATIO = Effect.FALL, Effect.RISE, Effect.RATIO

# fmt: off
CLAIMS = [
    Claim("f1_q4_vs_q16", "4-bit keeps the F1 of '16-bit'", "v1+v3", "0.858 vs 0.859 (99.9 %)",
          acc.f1_ratio, interval(0.999, "ratio_tol", effect=_RATIO)),
    Claim("compression_4x", "4x compression (4-bit vs 16-bit), hidden layers like with like",
          "v1+v3", "4x", fx.compression,
          interval(4.0, "rel_tol", Scale.RELATIVE, exact=True, note=_ARITH, arithmetic=True)),
    Claim("energy_inference_v1", "41 % energy saving, 4-bit vs 8-bit (inference energy)", "v1",
          "41 %", _INFER(ex.saving(Table.ENERGY_INFERENCE_PAIRED, "mJ per inference")),
          interval(0.41, _P, null=0.0, effect=_FALL)),
    Claim("energy_inference_v3", "31 % energy saving, 4-bit vs 8-bit (inference energy)", "v3",
          "31 %", _INFER(ex.saving(Table.ENERGY_INFERENCE_PAIRED, "mJ per inference")),
          interval(0.31, _P, null=0.0, effect=_FALL)),
    Claim("latency_q4_vs_q8", "4-bit faster than 8-bit on real kernels (the latency form of the "
          "41 % / 31 % energy claims; deployed latency)", "v1+v3", "41 % / 31 % (energy)",
          fx.latency_saving,
          interval(0.41, _P, null=0.0, effect=_FALL, proxy="latency for energy"), Timing.CALLS),
    Claim("energy_train_v1", "41 % energy saving, 4-bit vs 8-bit (training energy, the "
          "reference's measure)", "v1", "41 %",
          _TRAIN(ex.saving(Table.ENERGY_TRAIN_PAIRED, "training kWh")),
          interval(0.41, _P, null=0.0, effect=_FALL)),
    Claim("energy_train_v3", "31 % energy saving, 4-bit vs 8-bit (training energy)", "v3",
          "31 %", _TRAIN(ex.saving(Table.ENERGY_TRAIN_PAIRED, "training kWh")),
          interval(0.31, _P, null=0.0, effect=_FALL)),
    Claim("equiv_w4a8_fp32", "4-bit equivalent to full precision (FP32)", "v1+v3", "p > 0.05",
          acc.equivalence(roles.Q4, roles.FP32), EQUIVALENT),
    Claim("equiv_w8a8_fp32", "8-bit equivalent to full precision (FP32)", "v1+v3", "p > 0.05",
          acc.equivalence(roles.Q8, roles.FP32), EQUIVALENT),
    Claim("equiv_w4a8_q16", "4-bit equivalent to '16-bit' (q16_reference)", "v1", "p > 0.05",
          acc.equivalence(roles.Q4, roles.Q16), EQUIVALENT),
    Claim("equiv_w8a8_q16", "8-bit equivalent to '16-bit' (q16_reference)", "v1", "p > 0.05",
          acc.equivalence(roles.Q8, roles.Q16), EQUIVALENT),
    Claim("latency_variance_82", "curiosity cuts MoE latency variance by 82 % (per-inference "
          "latency)", "v1", "-82 %, Levene p = 0.008", fx.variance(*_LAT_LEVENE),
          significant(0.82, _P, null=0.0, effect=_FALL), Timing.CALLS),
    Claim("latency_variance_82_route", "curiosity's 82 % cut in latency variance, judged on "
          "routing that uses u (route) against the plain MoE", "v1",
          "-82 %, Levene p = 0.008",
          fx.variance(*_ROUTE_LAT), significant(0.82, _P, null=0.0, effect=_FALL), Timing.CALLS),
    Claim("latency_variance_82_reference", "the same, the reference's way (fold-pass times, "
          "1 - std ratio)", "v1", "-82 %, Levene p = 0.008",
          fx.variance(Table.FOLD_LATENCY_LEVENE, Family.FOLD_LATENCY_LEVENE_CURIOSITY_VS_MOE,
                      roles.CURIOSITY_V1, fx.Spread(reference_std=True)),
          significant(0.82, _P, null=0.0, effect=_FALL), Timing.FOLD_PASS),
    Claim("latency_std_230_29", "MoE latency std 230 ms -> 29 ms with curiosity (std ratio)",
          "v1", "230 -> 29 ms (ratio 0.126)", fx.variance(*_LAT_LEVENE, fx.Spread(std_ratio=True)),
          interval(29 / 230, _P, note="absolute ms depend on the machine; the ratio is compared",
                   null=1.0, effect=_RATIO), Timing.CALLS),
    Claim("moe_overhead_11", "MoE +11 % latency vs Q8-Base", "v1", "+11 %, p < 0.001",
          fx.moe_overhead, significant(0.11, _P, null=0.0, effect=_RISE), Timing.MOE_FORM),
    Claim("moe_no_gain", "MoE brings no accuracy gain vs Q8-Base", "v1", "no gain",
          acc.moe_no_gain, NO_GAIN),
    Claim("params_1_2m", "1.2 M parameters", "v1+v3", "1.2 M", ex.params,
          interval(1.2e6, "rel_tol", Scale.RELATIVE, exact=True, note=_ARITH, arithmetic=True)),
    Claim("f1_per_mj", "3.87 F1/mJ", "v1", "3.87 F1/mJ", ex.f1_per_mj,
          untestable(_UNTESTABLE_EFF)),
    Claim("deploy_10000x", "deployment emissions 10,000x training beyond 1,000 inferences",
          "v1", "10,000x at 1,000 inferences", _INFER(_TRAIN(ex.deploy_ratio)),
          interval(1e4, "log10_tol", Scale.LOG10, effect=_RATIO)),
    Claim("f1_variance_85", "curiosity cuts cross-fold F1 variance by 85 %", "v3",
          "-85 %, Levene p < 0.001",
          fx.variance(*_F1_SPREAD, roles.CURIOSITY_V3),
          significant(0.85, _P, null=0.0, effect=_FALL)),
    Claim("f1_variance_85_route", "curiosity's 85 % cut in cross-fold F1 variance, judged on "
          "routing that uses u (route) against the plain MoE", "v3",
          "-85 %, Levene p < 0.001",
          fx.variance(*_F1_SPREAD, roles.ROUTE),
          significant(0.85, _P, null=0.0, effect=_FALL)),
    Claim("quinn_f1", "curiosity raises Quinn F1 0.802 -> 0.809", "v3", "+0.007", acc.quinn,
          interval(0.007, "f1_tol", null=0.0)),
    Claim("curiosity_beats_placebo", "uncertainty-driven routing is better than escalating the "
          "same number of test clips at random on the same trained weights (F1; the premise of "
          "'curiosity-driven', tested on route)", "v1+v3", "(the title's premise)",
          fx.route_same_weights, _SAME_WEIGHTS),
    Claim("routing_q8_confidence", "the 8-bit expert gets the uncertain samples: 20 % lower "
          "gate confidence", "v3", "20 % lower, p < 0.001", ex.routing_confidence,
          significant(0.20, _P, null=0.0, effect=_FALL)),
]
# fmt: on
BY_ID = {c.id: c for c in CLAIMS}
# Rows the paper never claimed: our route vs the plain MoE judged against the paper's 82 % and
# 85 % (claims of logging-only curiosity). Shown in their own table, outside the paper's counts.
EXTENSIONS = frozenset({"latency_variance_82_route", "f1_variance_85_route"})


MEASURED = ("runtime", "regime", "batch")  # what a latency verdict was measured in ('' otherwise)


def evidence(ctx: Context) -> pd.DataFrame:
    """claims.csv: one row per claim x dataset x protocol, in CLAIMS order; latency claims carry
    their measurement (runtime, regime, batch) and its scope text."""
    rows = []
    scopes = (
        ctx.runs[["dataset", "protocol"]].drop_duplicates().sort_values(["dataset", "protocol"])
    )
    for claim in CLAIMS:
        for d, p in scopes.itertuples(index=False):
            ev, ours = claim.extract(ctx, d, p)
            m = measurement(ctx, claim.timing, d, p)
            rows.append(
                {
                    "claim": claim.id,
                    "dataset": d,
                    "protocol": p,
                    "ours": ours,
                    **(dict(zip(MEASURED, m)) if m else dict.fromkeys(MEASURED, "")),
                    "measured_scope": m.scope() if m else "",
                    **ev._asdict(),
                }
            )
    return pd.DataFrame(rows)


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
    (qmoe.analysis.judgement); `measured`: a latency claim's runtime, regime, batch and
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
    dataset's standing (`qmoe.analysis.judgement.scoped`)."""
    dec = decide(claim.judge, ev, cfg, alpha)
    if claim.timing is None:
        return scoped(dec, d)
    return dec, measured_scope if dec.verdict in JUDGED else ""

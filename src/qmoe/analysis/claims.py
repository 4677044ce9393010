"""Our evidence for each of the abstracts' claims (`qmoe.analysis.paper_claims`): one extractor
per claim, run by `evidence` on every (dataset, protocol) of the runs table; the stats stage writes
the rows as reports/stats/claims.csv and the report stage judges them
(`qmoe.report.claim_verdicts`).
"""

from __future__ import annotations

import pandas as pd

from qmoe.analysis import accuracy as acc
from qmoe.analysis import effects as fx
from qmoe.analysis import evidence as ex
from qmoe.analysis import roles
from qmoe.analysis.evidence import Context, Extractor
from qmoe.analysis.latency_scope import measurement
from qmoe.analysis.names import Family, Table
from qmoe.analysis.paper_claims import CLAIMS, MEASURED

# energy claims: judged only where the energy was measured (inference: the benchmark's method,
# training: the train stage's); a CodeCarbon power model x time makes them not testable here
_INFER = lambda e: ex.measured_energy("bench_energy_method", e)  # noqa: E731
_TRAIN = lambda e: ex.measured_energy("energy_method", e)  # noqa: E731
_LAT_SPREAD = (Table.LATENCY_DISPERSION, Family.LATENCY_DISPERSION_CURIOSITY_VS_MOE)
_LAT_LEVENE = (*_LAT_SPREAD, roles.CURIOSITY_V1)
_ROUTE_LAT = (*_LAT_SPREAD, roles.ROUTE)
_F1_SPREAD = (Table.F1_VARIANCE_LEVENE, Family.F1_VARIANCE_CURIOSITY_VS_MOE)

EXTRACTORS: dict[str, Extractor] = {  # one per claim id, in CLAIMS order (a test checks)
    "f1_q4_vs_q16": acc.f1_ratio,
    "compression_4x": fx.compression,
    "energy_inference_v1": _INFER(ex.saving(Table.ENERGY_INFERENCE_PAIRED, "mJ per inference")),
    "energy_inference_v3": _INFER(ex.saving(Table.ENERGY_INFERENCE_PAIRED, "mJ per inference")),
    "latency_q4_vs_q8": fx.latency_saving,
    "energy_train_v1": _TRAIN(ex.saving(Table.ENERGY_TRAIN_PAIRED, "training kWh")),
    "energy_train_v3": _TRAIN(ex.saving(Table.ENERGY_TRAIN_PAIRED, "training kWh")),
    "equiv_w4a8_fp32": acc.equivalence(roles.Q4, roles.FP32),
    "equiv_w8a8_fp32": acc.equivalence(roles.Q8, roles.FP32),
    "equiv_w4a8_q16": acc.equivalence(roles.Q4, roles.Q16),
    "equiv_w8a8_q16": acc.equivalence(roles.Q8, roles.Q16),
    "latency_variance_82": fx.variance(*_LAT_LEVENE),
    "latency_variance_82_route": fx.variance(*_ROUTE_LAT),
    "latency_variance_82_reference": fx.variance(
        Table.FOLD_LATENCY_LEVENE,
        Family.FOLD_LATENCY_LEVENE_CURIOSITY_VS_MOE,
        roles.CURIOSITY_V1,
        fx.Spread(reference_std=True),
    ),
    "latency_std_230_29": fx.variance(*_LAT_LEVENE, fx.Spread(std_ratio=True)),
    "moe_overhead_11": fx.moe_overhead,
    "moe_no_gain": acc.moe_no_gain,
    "params_1_2m": ex.params,
    "f1_per_mj": ex.f1_per_mj,
    "deploy_10000x": _INFER(_TRAIN(ex.deploy_ratio)),
    "f1_variance_85": fx.variance(*_F1_SPREAD, roles.CURIOSITY_V3),
    "f1_variance_85_route": fx.variance(*_F1_SPREAD, roles.ROUTE),
    "quinn_f1": acc.quinn,
    "curiosity_beats_placebo": fx.route_same_weights,
    "routing_q8_confidence": ex.routing_confidence,
}


def evidence(ctx: Context) -> pd.DataFrame:
    """claims.csv: one row per claim x dataset x protocol, in CLAIMS order; latency claims carry
    their measurement (runtime, regime, batch) and its scope text."""
    rows = []
    scopes = (
        ctx.runs[["dataset", "protocol"]].drop_duplicates().sort_values(["dataset", "protocol"])
    )
    for claim in CLAIMS:
        for d, p in scopes.itertuples(index=False):
            ev, ours = EXTRACTORS[claim.id](ctx, d, p)
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

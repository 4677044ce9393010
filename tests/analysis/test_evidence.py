"""Our evidence for each claim (qmoe.analysis.evidence): numbers read from the family rows and
the runs table, about the variants whose config plays each role."""

import numpy as np
import pandas as pd
import pytest

from qmoe.analysis import evidence as ex
from qmoe.analysis.stats import StatsConfig
from qmoe.analysis.verdict import Evidence

FAMILIES = ("f1_paired", "tost_f1", "latency_levene", "latency_paired", "energy_inference_paired",
            "energy_train_paired", "f1_variance_levene", "fold_latency_levene")


def _family_row(**kw) -> dict:
    base = {"family": "f1_vs_q16_reference", "dataset": "d", "protocol": "corrected",
            "variant": "w4a8", "baseline": "q16_reference", "status": "computed", "reason": ""}
    return {**base, **kw}


def _runs(with_facts, variants=("fp32", "w4a8", "q16_reference"), configs=None) -> pd.DataFrame:
    frame = pd.DataFrame({"dataset": "d", "protocol": "corrected", "variant": list(variants),
                          "n_params": 1.2e6})
    return with_facts(frame, configs)


def _context(runs: pd.DataFrame, families: dict | None = None, routing=None) -> ex.Context:
    cols = ["family", "dataset", "protocol", "variant", "baseline", "status", "reason"]
    tables = {name: pd.DataFrame(columns=cols) for name in FAMILIES}
    return ex.Context({**tables, **(families or {})}, runs, routing, StatsConfig(n_resamples=200))


def test_f1_ratio_evidence_is_read_from_the_family_row(with_facts):
    row = _family_row(ratio=0.97, ratio_ci_low=0.95, ratio_ci_high=0.99, p_holm=0.2,
                      mean_variant=0.8, mean_baseline=0.825)
    ctx = _context(_runs(with_facts), {"f1_paired": pd.DataFrame([row])})
    ev, ours = ex.f1_ratio(ctx, "d", "corrected")
    assert ev == Evidence(True, "", 0.97, 0.95, 0.99, 0.2, ev.margin)
    assert ours == "0.800 vs 0.825 (97.0 % [95.0 %, 99.0 %])"


def test_a_not_computed_family_row_passes_its_reason_on(with_facts):
    row = _family_row(status="not computed", reason="incomplete pairs: w4a8 lacks fold 2")
    ctx = _context(_runs(with_facts), {"f1_paired": pd.DataFrame([row])})
    ev, ours = ex.f1_ratio(ctx, "d", "corrected")
    assert not ev.computed and ours == "not computed"
    assert ev.reason == "w4a8 vs q16_reference: incomplete pairs: w4a8 lacks fold 2"


def test_a_3_bit_w4a8_is_not_the_papers_4_bit_model(with_facts, config_of):
    """With variants.w4a8.weight_bits=3 no variant plays '4-bit': the 4-bit claims say so
    instead of reading w4a8's rows."""
    runs = _runs(with_facts, configs={"w4a8": config_of("w4a8", weight_bits=3)})
    row = _family_row(ratio=0.97, ratio_ci_low=0.95, ratio_ci_high=0.99, p_holm=0.2,
                      mean_variant=0.8, mean_baseline=0.825)
    ctx = _context(runs, {"f1_paired": pd.DataFrame([row])})
    ev, _ = ex.f1_ratio(ctx, "d", "corrected")
    assert ev.reason == "no runs of 4-bit BitLinear (variant not in the study)"
    ev, _ = ex.equivalence(ex.roles.Q4, ex.roles.FP32)(ctx, "d", "corrected")
    assert not ev.computed and ev.reason == "no TOST row"


def _routing(expert_bits: dict[str, float]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for fold in (1, 2, 3):
        for expert, bits in expert_bits.items():
            conf = 0.5 if bits == 8 else 0.7
            rows.append(pd.DataFrame({"dataset": "d", "protocol": "corrected", "fold": fold,
                                      "seed": 0, "expert_name": expert,
                                      "expert_kind": "bitlinear" if bits < 32 else "fp32",
                                      "expert_weight_bits": bits,
                                      "gate_prob": conf + 0.01 * rng.standard_normal(40)}))
    return pd.concat(rows, ignore_index=True)


def test_routing_confidence_finds_the_8_bit_expert_by_its_config(with_facts):
    # the 8-bit expert is named "big" here: only its config says it is 8-bit
    routing = _routing({"small": 2.0, "mid": 4.0, "big": 8.0})
    ev, _ = ex.routing_confidence(_context(_runs(with_facts), routing=routing), "d", "corrected")
    is8 = routing["expert_name"] == "big"
    per_fold = routing.assign(is8=is8).groupby(["fold", "is8"])["gate_prob"].mean().unstack()
    expected = 1 - np.exp(np.log(per_fold[True] / per_fold[False]).mean())   # folds are the unit
    assert ev.computed and ev.estimate == pytest.approx(expected)
    assert ev.ci_low < expected < ev.ci_high and ev.p < 1e-3   # 3 folds, not 480 clips
    no8 = _routing({"small": 2.0, "mid": 4.0})
    ev, _ = ex.routing_confidence(_context(_runs(with_facts), routing=no8), "d", "corrected")
    assert ev.reason == "the 8-bit BitLinear expert got no samples, or all of them"


def test_compression_and_per_energy_numbers_name_the_variants_they_read(with_facts):
    runs = _runs(with_facts, ("fp32", "w4a8", "fp16")).assign(
        size_packed_bytes=[48_000, 7_000, 24_000], f1_per_inference_mj=[1.0, 2.5, 1.5],
        f1_per_train_wh=[10.0, 50.0, 20.0])
    ev, ours = ex.compression(_context(runs), "d", "corrected")
    assert ev.estimate == pytest.approx(24 / 7) and ours == "3.43x vs fp16 (packed); 6.86x vs fp32"
    ev, ours = ex.f1_per_mj(_context(runs), "d", "corrected")
    assert ours == "w4a8: 2.5 F1 per inference mJ; 50 F1 per training Wh"
    ev, _ = ex.compression(_context(runs[runs["variant"] != "fp16"]), "d", "corrected")
    assert ev.reason == "needs packed sizes of w4a8 and half-precision model (true 16-bit)"

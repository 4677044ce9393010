"""Our evidence for each claim (qmoe.analysis.evidence): numbers read from the family rows and
the runs table, about the variants whose config plays each role."""

import numpy as np
import pandas as pd
import pytest
from repo_params import config

from qmoe.analysis import accuracy as acc
from qmoe.analysis import evidence as ex
from qmoe.analysis.stats import StatsConfig

FAMILIES = (
    "f1_paired",
    "tost_f1",
    "latency_levene",
    "latency_paired",
    "energy_inference_paired",
    "energy_train_paired",
    "f1_variance_levene",
    "fold_latency_levene",
)


def _family_row(**kw) -> dict:
    base = {
        "family": "f1_vs_q16_reference",
        "dataset": "d",
        "protocol": "corrected",
        "variant": "w4a8",
        "baseline": "q16_reference",
        "status": "computed",
        "reason": "",
    }
    return {**base, **kw}


def _runs(with_facts, variants=("fp32", "w4a8", "q16_reference"), configs=None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"dataset": "d", "protocol": "corrected", "variant": list(variants), "n_params": 1.2e6}
    )
    return with_facts(frame, configs)


def _context(runs: pd.DataFrame, families: dict | None = None, routing=None) -> ex.Context:
    cols = ["family", "dataset", "protocol", "variant", "baseline", "status", "reason"]
    tables = {name: pd.DataFrame(columns=cols) for name in FAMILIES}
    return ex.Context(
        {**tables, **(families or {})}, runs, routing, config(StatsConfig, "stats", n_resamples=200)
    )


def test_f1_ratio_evidence_is_read_from_the_family_row(with_facts):
    row = _family_row(
        ratio=0.97,
        ratio_ci_low=0.95,
        ratio_ci_high=0.99,
        p_holm=0.2,
        mean_variant=0.8,
        mean_baseline=0.825,
    )
    ctx = _context(_runs(with_facts), {"f1_paired": pd.DataFrame([row])})
    ev, ours = acc.f1_ratio(ctx, "d", "corrected")
    assert ev[:6] == (True, "", 0.97, 0.95, 0.99, 0.2) and ev.unit == "clips"
    assert ours == "0.800 vs 0.825 (97.0 % [95.0 %, 99.0 %])"


def test_a_not_computed_family_row_passes_its_reason_on(with_facts):
    row = _family_row(status="not computed", reason="incomplete pairs: w4a8 lacks fold 2")
    ctx = _context(_runs(with_facts), {"f1_paired": pd.DataFrame([row])})
    ev, ours = acc.f1_ratio(ctx, "d", "corrected")
    assert not ev.computed and ours == "not computed"
    assert ev.reason == "w4a8 vs q16_reference: incomplete pairs: w4a8 lacks fold 2"


def test_a_2_bit_w4a8_is_not_the_papers_4_bit_model(with_facts, config_of):
    """With variants.w4a8.weight_bits=2 no variant plays '4-bit': the 4-bit claims say so
    instead of reading w4a8's rows."""
    runs = _runs(with_facts, configs={"w4a8": config_of("w4a8", weight_bits=2)})
    row = _family_row(
        ratio=0.97,
        ratio_ci_low=0.95,
        ratio_ci_high=0.99,
        p_holm=0.2,
        mean_variant=0.8,
        mean_baseline=0.825,
    )
    ctx = _context(runs, {"f1_paired": pd.DataFrame([row])})
    ev, _ = acc.f1_ratio(ctx, "d", "corrected")
    assert ev.reason == "no runs of 4-bit BitLinear (variant not in the study)"
    ev, _ = acc.equivalence(ex.roles.Q4, ex.roles.FP32)(ctx, "d", "corrected")
    assert not ev.computed and ev.reason == "no TOST row"


def _routing(expert_bits: dict[str, float]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for fold in (1, 2, 3):
        for expert, bits in expert_bits.items():
            conf = 0.5 if bits == 8 else 0.7
            rows.append(
                pd.DataFrame(
                    {
                        "dataset": "d",
                        "protocol": "corrected",
                        "fold": fold,
                        "seed": 0,
                        "expert_name": expert,
                        "expert_kind": "bitlinear" if bits < 32 else "fp32",
                        "expert_weight_bits": bits,
                        "gate_prob": conf + 0.01 * rng.standard_normal(40),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_routing_confidence_finds_the_8_bit_expert_by_its_config(with_facts):
    # the 8-bit expert is named "big" here: only its config says it is 8-bit
    routing = _routing({"small": 2.0, "mid": 4.0, "big": 8.0})
    ev, _ = ex.routing_confidence(_context(_runs(with_facts), routing=routing), "d", "corrected")
    is8 = routing["expert_name"] == "big"
    per_fold = routing.assign(is8=is8).groupby(["fold", "is8"])["gate_prob"].mean().unstack()
    expected = 1 - np.exp(np.log(per_fold[True] / per_fold[False]).mean())  # folds are the unit
    assert ev.computed and ev.estimate == pytest.approx(expected)
    assert ev.ci_low < expected < ev.ci_high and ev.p < 1e-3  # 3 folds, not 480 clips
    no8 = _routing({"small": 2.0, "mid": 4.0})
    ev, _ = ex.routing_confidence(_context(_runs(with_facts), routing=no8), "d", "corrected")
    assert ev.reason == "the 8-bit BitLinear expert got no samples, or all of them"


def test_compression_is_like_with_like_with_nominal_bits_and_whole_files_beside(with_facts):
    """The hidden layers of both models (heads left out: FP32 in the 4-bit model, 16-bit in the
    half-precision one); the whole files, which compare different heads, only shown."""
    from qmoe.analysis import effects

    runs = _runs(with_facts, ("fp32", "w4a8", "fp16")).assign(
        size_packed_bytes=[48_000, 7_000, 24_000],
        f1_per_inference_mj=[1.0, 2.5, 1.5],
        f1_per_train_wh=[10.0, 50.0, 20.0],
    )
    sizes = pd.DataFrame(
        {
            "dataset": "d",
            "protocol": "corrected",
            "variant": ["w4a8", "fp16"],
            "body_bytes": [538_920, 2_053_760],
            "head_bytes": [12_840, 6_420],
            "weight_bits": [4.0, 16.0],
            "reason": "",
        }
    )
    ctx = _context(runs)._replace(sizes=sizes)
    ev, ours = effects.compression(ctx, "d", "corrected")
    assert ev.estimate == pytest.approx(2_053_760 / 538_920)
    assert ours == (
        "3.81x hidden layers fp16 / w4a8 (packed, same head excluded; nominal 16/4 "
        "bits per weight = 4.00x); whole files 3.43x (FP32 head vs 16-bit head)"
    )
    ev, ours = ex.f1_per_mj(_context(runs), "d", "corrected")
    assert ours == "w4a8: 2.5 F1 per inference mJ; 50 F1 per training Wh"
    ev, _ = effects.compression(ctx._replace(sizes=sizes.iloc[:1]), "d", "corrected")
    assert ev.reason == "needs deployed layer sizes of w4a8 and fp16 (true 16-bit)"


def test_effects_are_printed_in_the_papers_direction_and_words(with_facts):
    """A doubled variance is 'x2.02, not a reduction', never '-101.7 %' beside '-82 %'."""
    from qmoe.analysis import effects

    runs = _runs(with_facts, ("moe", "moe_curiosity_log"))
    row = {
        "family": "latency_dispersion_curiosity_vs_moe",
        "dataset": "d",
        "protocol": "corrected",
        "variant": "moe_curiosity_log",
        "baseline": "moe",
        "status": "computed",
        "reason": "",
        "metric": "latency_ms",
        "variance_ratio": 2.02,
        "variance_ratio_ci_low": 1.5,
        "variance_ratio_ci_high": 2.7,
        "iqr_ratio": 1.3,
        "mad_ratio": 1.1,
        "sd_variant": 0.1,
        "sd_baseline": 0.07,
        "p_holm": 0.01,
    }
    ctx = _context(runs, {"latency_dispersion": pd.DataFrame([row])})
    extract = effects.variance(
        "latency_dispersion", "latency_dispersion_curiosity_vs_moe", ex.roles.CURIOSITY_V1
    )
    ev, ours = extract(ctx, "d", "corrected")
    assert ours == (
        "variance x2.02, not a reduction [x1.50, x2.70], IQR x1.30, MAD x1.10, p = 0.01 (Holm)"
    )
    assert ev.estimate == pytest.approx(1 - 2.02)  # judged as a reduction: far below 0.82
    row |= {"variance_ratio": 0.18, "variance_ratio_ci_low": 0.1, "variance_ratio_ci_high": 0.3}
    ctx = _context(runs, {"latency_dispersion": pd.DataFrame([row])})
    assert extract(ctx, "d", "corrected")[1].startswith("variance x0.18, a reduction of 82.0 %")
    assert ex.times(1.05, "4-bit/8-bit", "a saving") == "4-bit/8-bit x1.05, not a saving"


@pytest.mark.parametrize(
    "shape", [(1536, (640, 320), 50), (7, (3,), 2), (16, (8, 4, 2), 5)], ids=str
)
def test_mlp_params_counts_the_models_mlp_without_building_it(shape):
    from qmoe import models

    in_dim, hidden, classes = shape
    built = models.MLP(models.MLPConfig(in_dim, classes, hidden, 0.0))
    assert ex.mlp_params(*shape) == sum(t.numel() for t in built.parameters())
    assert ex.mlp_params(*ex.PAPER_MLP) == 1_206_770

"""Latency by timing round, MoE spread beside routing shares, the whole path per clip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from repo_params import config

from qmoe.analysis import latency
from qmoe.analysis.comparisons import Pair
from qmoe.analysis.stats import StatsConfig
from qmoe.contract import benchmarks

CFG = config(StatsConfig, "stats", alpha=0.05, tost_margin=0.01, confidence=0.95, n_resamples=199)


@pytest.fixture
def runs(with_facts) -> pd.DataFrame:
    rows = [
        {
            "dataset": "d",
            "protocol": "corrected",
            "variant": v,
            "fold": f,
            "seed": 0,
            "latency_runtime": "onnxruntime",
            "latency_median_ms": ms,
            "after_backbone_latency_median_ms": 2 * ms,
        }
        for v, ms in (("fp32", 0.2), ("w4a8", 0.04), ("moe", 0.12))
        for f in (1, 2)
    ]
    return with_facts(pd.DataFrame(rows))


def _rounds(
    drift: np.ndarray,
    times: dict | None = None,
    regimes: dict | None = None,
    runtime: str = "onnxruntime",
    protocol: str = "corrected",
) -> pd.DataFrame:
    """rounds.csv rows: w4a8 truly 0.2x fp32 (`times`: (variant, form) -> ms), both slowed alike
    by `drift` (one per round), in each regime of `regimes` (regime -> factor on every time)."""
    times = times or {("fp32", "whole"): 0.2, ("w4a8", "whole"): 0.04}
    rows = []
    for regime, k in (regimes or {"warm": 1.0}).items():
        for r, g in enumerate(drift):
            for (v, form), ms in times.items():
                for f in (1, 2):
                    wobble = 1 + 0.01 * ((r + f + (v == "w4a8")) % 3 - 1)  # noise
                    rows.append(
                        dict(
                            variant=v,
                            fold=f,
                            seed=0,
                            runtime=runtime,
                            form=form,
                            regime=regime,
                            round=r,
                            position=0,
                            n=100,
                            median_ms=ms * k * g * wobble,
                            dataset="d",
                            protocol=protocol,
                        )
                    )
    return pd.DataFrame(rows)


def test_latency_ratios_are_paired_by_round(runs):
    drift = np.array([1.0, 1.0, 3.0, 3.0, 3.0, 1.5, 1.5, 1.0])
    pairs = [Pair("latency_vs_fp32", "w4a8", "fp32"), Pair("latency_vs_fp32", "moe", "fp32")]
    out = latency.compare_rounds(_rounds(drift), runs, pairs, CFG)
    w4 = out[out["variant"] == "w4a8"].iloc[0]
    assert w4["status"] == "computed" and w4["n_pairs"] == 8 and w4["n_models"] == 2
    assert w4["ratio"] == pytest.approx(0.2, rel=0.01)
    assert w4["ratio_ci_low"] < 0.2 < w4["ratio_ci_high"]
    assert w4["ratio_ci_high"] / w4["ratio_ci_low"] < 1.02  # the 3x drift is gone
    moe = out[out["variant"] == "moe"].iloc[0]
    assert moe["status"] == "not computed"
    assert moe["reason"] == "no timed rounds of moe under onnxruntime"


def test_a_benchmark_without_rounds_says_so(runs):
    out = latency.compare_rounds(pd.DataFrame(), runs, [Pair("f", "w4a8", "fp32")], CFG)
    assert out.iloc[0]["reason"] == "no rounds.csv in this benchmark (rerun the benchmark stage)"


def test_moe_latency_spread_sits_beside_its_routing_shares(runs, tmp_path):
    folder = tmp_path / "d" / "corrected" / "moe"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "fold": [1, 1, 2, 2],
            "seed": [0] * 4,
            "expert": [0, 1, 0, 1],
            "expert_name": ["ternary_reference", "w4a8"] * 2,
            "frequency": [0.35, 0.65, 0.9, 0.1],
        }
    ).to_csv(folder / "routing.csv", index=False)
    samples = pd.DataFrame(
        {
            "dataset": "d",
            "protocol": "corrected",
            "variant": ["moe"] * 8 + ["fp32"] * 4,
            "fold": [1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2],
            "seed": 0,
            "runtime": "onnxruntime",
            "regime": "after_backbone",
            "latency_ms": [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 5.0, 1, 1, 1, 1],
        }
    )
    out = latency.spread_routing(samples, runs, tmp_path)
    assert out["variant"].tolist() == ["moe", "moe"]  # MoEs only
    assert out["regime"].tolist() == ["after_backbone"] * 2
    one = out.set_index("fold").loc[1]
    assert one["share_ternary_reference"] == 0.35 and one["share_w4a8"] == 0.65
    assert one["median_ms"] == 2.5 and one["iqr_ms"] == 1.5 and one["mad_ms"] == 1.0
    assert one["sd_ms"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    two = out.set_index("fold").loc[2]
    assert two["share_ternary_reference"] == 0.9 and two["mad_ms"] == 0.0


def test_pipeline_cost_gives_each_heads_share_of_the_whole_path(runs):
    front = pd.DataFrame(
        {
            "dataset": "d",
            "protocol": "corrected",
            "clip_id": ["a", "a", "b", "b"],
            "repeat": [0, 1, 0, 1],
            "load_ms": [1.0, 1.0, 1.0, 1.0],
            "mel_ms": [4.0, 6.0, 5.0, 5.0],
            "render_ms": [2.0, 2.0, 2.0, 2.0],
            "backbone_ms": [40.0, 40.0, 42.0, 42.0],
            "total_ms": [47.0, 49.0, 50.0, 50.0],
        }
    )
    out = latency.pipeline_cost(front, runs).set_index("variant")
    # clip a: median total 48, clip b: 50 -> 49 ms per clip; heads after the backbone (2x warm)
    assert out.loc["fp32", "frontend_ms"] == 49.0
    assert out.loc["fp32", "head_ms"] == pytest.approx(0.4)
    assert out.loc["fp32", "total_ms"] == pytest.approx(49.4)
    assert out.loc["w4a8", "head_share"] == pytest.approx(0.08 / 49.08)
    assert out.loc["w4a8", "total_vs_fp32"] == pytest.approx(49.08 / 49.4)
    assert latency.pipeline_cost(front, runs.drop(columns=latency.HEAD)).empty
    assert out.loc["moe", "backbone_ms"] == 41.0 and out.loc["moe", "n_clips"] == 2


def test_each_regime_gets_its_own_rows_and_holm(runs):
    """A row per pair and regime; ratios from each regime's own rounds; Holm within a regime."""
    pairs = [Pair("latency_vs_fp32", "w4a8", "fp32")]
    regimes = {"warm": 1.0, "after_backbone": 1.0}
    times = {("fp32", "whole"): 0.2, ("w4a8", "whole"): 0.04}
    both = _rounds(np.ones(8), times, regimes)
    cold = both["regime"] == "after_backbone"
    both.loc[cold & (both["variant"] == "w4a8"), "median_ms"] *= 2.5  # 4-bit hit harder
    out = latency.compare_rounds(both, runs, pairs, CFG).set_index("regime")
    assert out.loc["warm", "ratio"] == pytest.approx(0.2, rel=0.01)
    assert out.loc["after_backbone", "ratio"] == pytest.approx(0.5, rel=0.01)
    # one test per regime: Holm leaves each p as it is
    assert (out["ratio_p_holm"] == out["p_ratio"]).all()


def test_faithful_latency_is_timed_in_torch_eager(runs):
    """The faithful protocol's rows use its torch rounds, never the ONNX ones beside them."""
    faithful = runs.assign(protocol="faithful")
    onnx = _rounds(np.ones(8), protocol="faithful")
    torch_rounds = _rounds(
        np.ones(8), {("fp32", "whole"): 1.0, ("w4a8", "whole"): 3.0}, runtime="torch",
        protocol="faithful",
    )  # fmt: skip
    out = latency.compare_rounds(
        pd.concat([onnx, torch_rounds]), faithful, [Pair("f", "w4a8", "fp32")], CFG
    )
    row = out.iloc[0]
    assert row["runtime"] == "torch" and row["ratio"] == pytest.approx(3.0, rel=0.01)
    assert benchmarks.claims_runtime("faithful") == "torch"
    assert benchmarks.claims_runtime("corrected") == "onnxruntime"


def test_samples_load_from_each_protocols_runtime_and_every_regime(runs, tmp_path):
    both = pd.concat([runs, runs.assign(protocol="faithful")])
    for protocol, folder, value in (
        ("corrected", "latency/warm", 1.0),
        ("corrected", "latency/after_backbone", 2.0),
        ("faithful", "latency/warm", 9.0),  # ONNX Runtime: not faithful's runtime
        ("faithful", "latency_torch/after_backbone", 5.0),
    ):
        where = tmp_path / "d" / protocol / "fp32" / folder
        where.mkdir(parents=True)
        np.save(where / "fold1_seed0.npy", np.full(3, value))
    out = benchmarks.load_samples(tmp_path, both)
    got = out.groupby(["protocol", "runtime", "regime"])["latency_ms"].unique()
    assert {k: v.tolist() for k, v in got.items()} == {
        ("corrected", "onnxruntime", "after_backbone"): [2.0],
        ("corrected", "onnxruntime", "warm"): [1.0],
        ("faithful", "torch", "after_backbone"): [5.0],
    }

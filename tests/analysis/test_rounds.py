"""Latency ratios paired by interleaved timing round (qmoe.analysis.rounds) over the per-round
medians of the benchmark (qmoe.bench.rounds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from round_orders import abba_order, keyed_warm

from qmoe.analysis import rounds
from qmoe.bench.rounds import round_medians


def _drifting_run(turns: int = 10, block: int = 100):
    """Two variants on 2 folds, B truly 0.5x A; the machine slows by 2x from round 4 on (a step,
    as when another job starts); B's per-call noise is wide (lognormal 0.3), A's tight."""
    rng = np.random.default_rng(0)
    targets = [(v, f, 0, "onnxruntime") for v in ("A", "B") for f in (1, 2)]
    order = abba_order(targets, turns, {"onnxruntime": block})
    samples = {t: np.zeros(turns * block) for t in targets}
    for t in range(turns):
        slow = 2.0 if t >= 4 else 1.0
        for v, f, s, r in targets:
            noise = rng.lognormal(0, 0.3 if v == "B" else 0.01, block)
            base = 0.5 if v == "B" else 1.0
            samples[(v, f, s, r)][t * block : (t + 1) * block] = base * slow * noise
    return order, samples


def test_pairing_by_round_cancels_a_drift_that_pooled_medians_do_not():
    order, samples = _drifting_run()
    per_round = round_medians(order, keyed_warm(samples))
    rr = rounds.round_ratio(per_round, ("B", "onnxruntime"), ("A", "onnxruntime"))
    assert rr.reason is None and rr.n_rounds == 10 and rr.n_folds == 2
    assert rr.ratio == pytest.approx(0.5, rel=0.03)
    assert rr.low < 0.5 < rr.high
    pooled = np.median(
        [np.median(samples[("B", f, 0, "onnxruntime")]) for f in (1, 2)]
    ) / np.median([np.median(samples[("A", f, 0, "onnxruntime")]) for f in (1, 2)])
    assert abs(pooled / 0.5 - 1) > 0.10  # the same data, pooled: off by more than 10 %


def test_a_variant_missing_from_some_rounds_is_not_compared():
    per_round = pd.DataFrame(
        {
            "variant": ["A", "A", "B"],
            "fold": [1, 1, 1],
            "seed": [0, 0, 0],
            "runtime": ["onnxruntime"] * 3,
            "round": [0, 1, 0],
            "position": [0, 1, 2],
            "n": [5, 5, 5],
            "median_ms": [1.0, 1.0, 0.5],
        }
    )
    rr = rounds.round_ratio(per_round, ("B", "onnxruntime"), ("A", "onnxruntime"))
    assert rr.reason == "B and A were not timed in the same rounds: [(1, 1)]"
    rr = rounds.round_ratio(per_round, ("C", "onnxruntime"), ("A", "onnxruntime"))
    assert rr.reason == "no timed rounds of C under onnxruntime"


def test_one_round_at_another_speed_does_not_move_the_ratio():
    ms = [0.62, 0.61, 0.63, 0.36, 0.62, 0.64, 0.61, 0.63, 0.62, 0.81, 0.62, 0.63]  # MoE / fp32
    rows = [
        dict(variant=v, fold=1, seed=0, runtime="ort", round=r, position=0, n=50, median_ms=m)
        for r, m in enumerate(ms)
        for v, m in (("moe", m), ("fp32", 1.0))
    ]
    rr = rounds.round_ratio(pd.DataFrame(rows), ("moe", "ort"), ("fp32", "ort"))
    assert rr.ratio == pytest.approx(0.62)  # the median; the (geometric) mean is pulled to 0.608
    assert rr.mean_ratio == pytest.approx(0.6083, abs=1e-4)
    # 12 rounds: the 3rd and 10th smallest bound the median at >= 95 % (96.1 %)
    assert (rr.low, rr.high) == pytest.approx((0.61, 0.63))
    assert rr.p == pytest.approx(2 * 0.5**12)  # every round below 1: the sign test's floor


def test_regimes_and_forms_are_blocks_of_their_own_and_are_paired_apart():
    """Two regimes of one target fill two sample arrays; a side names its form; rounds of two
    regimes at once are refused (a ratio pairs within one regime)."""
    order = []
    for t in range(2):
        for form, regime in (("whole", "warm"), ("whole", "after_backbone"), ("router", "warm")):
            order.append(
                dict(
                    turn=t,
                    batch_size=1,
                    variant="moe",
                    fold=1,
                    seed=0,
                    runtime="ort",
                    form=form,
                    regime=regime,
                    calls=2,
                )
            )
    samples = {
        ("moe", 1, 0, "ort", "whole", "warm"): np.array([1.0, 1.0, 2.0, 2.0]),
        ("moe", 1, 0, "ort", "whole", "after_backbone"): np.array([3.0, 3.0, 4.0, 4.0]),
        ("moe", 1, 0, "ort", "router", "warm"): np.array([0.5, 0.5, 0.25, 0.25]),
    }
    out = round_medians(order, samples)
    got = {(r.form, r.regime, r.round): r.median_ms for r in out.itertuples()}
    assert got == {
        ("whole", "warm", 0): 1.0,
        ("whole", "after_backbone", 0): 3.0,
        ("router", "warm", 0): 0.5,
        ("whole", "warm", 1): 2.0,
        ("whole", "after_backbone", 1): 4.0,
        ("router", "warm", 1): 0.25,
    }
    warm = out[out["regime"] == "warm"]
    logs = rounds.per_round_logs(warm, ("moe", "ort", "router"), ("moe", "ort"))
    assert np.exp(logs).tolist() == pytest.approx([0.5, 0.125])
    with pytest.raises(ValueError, match=r"regimes \['after_backbone', 'warm'\]: select one"):
        rounds.per_round_logs(out, ("moe", "ort", "router"), ("moe", "ort"))

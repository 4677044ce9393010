"""Per-round medians of the timed blocks (qmoe.bench.rounds)."""

from __future__ import annotations

import numpy as np
from round_orders import abba_order, keyed_warm

from qmoe.bench import rounds


def test_round_medians_cut_each_targets_samples_by_its_blocks():
    targets = [("fp32", 1, 0, "onnxruntime"), ("fp32", 1, 0, "torch")]
    order = abba_order(targets, 3, {"onnxruntime": 4, "torch": 2})
    samples = {
        targets[0]: np.array([1, 2, 3, 4, 10, 20, 30, 40, 5, 5, 5, 9.0]),
        targets[1]: np.array([7, 8, 1, 1, 2, 2.0]),
    }
    out = rounds.round_medians(order, keyed_warm(samples))
    assert list(out.columns) == rounds.ROUND_COLUMNS
    assert set(out["form"]) == {"whole"} and set(out["regime"]) == {"warm"}
    onnx = out[out["runtime"] == "onnxruntime"]
    assert onnx["round"].tolist() == [0, 1, 2]
    assert onnx["median_ms"].tolist() == [2.5, 25.0, 5.0]
    assert out.loc[out["runtime"] == "torch", "median_ms"].tolist() == [7.5, 1.0, 2.0]
    # positions index run.json's order, batch-8 blocks included: turn 1 runs backwards
    assert onnx["position"].tolist() == [0, 4, 6]
    assert out.loc[out["runtime"] == "torch", "position"].tolist() == [1, 3, 7]

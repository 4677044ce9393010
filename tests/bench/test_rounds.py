"""Per-round medians of the timed blocks (qmoe.bench.rounds)."""

from __future__ import annotations

import numpy as np

from qmoe.bench import rounds


def _order(targets: list[tuple], turns: int, calls: dict[str, int]) -> list[dict]:
    """An ABBA run order over `targets` (variant, fold, seed, runtime), with a batch-8 block
    after each turn (not part of the batch-1 rounds)."""
    order = []
    for t in range(turns):
        for v, f, s, r in targets if t % 2 == 0 else targets[::-1]:
            order.append(
                dict(turn=t, batch_size=1, variant=v, fold=f, seed=s, runtime=r, calls=calls[r])
            )
        order.append(
            dict(turn=t, batch_size=8, variant="fp32", fold=1, seed=0, runtime="x", calls=5)
        )
    return order


def _keyed(samples: dict) -> dict:
    """(variant, fold, seed, runtime) -> the full key of a whole model timed warm."""
    return {(*k, "whole", "warm"): v for k, v in samples.items()}


def test_round_medians_cut_each_targets_samples_by_its_blocks():
    targets = [("fp32", 1, 0, "onnxruntime"), ("fp32", 1, 0, "torch")]
    order = _order(targets, 3, {"onnxruntime": 4, "torch": 2})
    samples = {
        targets[0]: np.array([1, 2, 3, 4, 10, 20, 30, 40, 5, 5, 5, 9.0]),
        targets[1]: np.array([7, 8, 1, 1, 2, 2.0]),
    }
    out = rounds.round_medians(order, _keyed(samples))
    assert list(out.columns) == rounds.ROUND_COLUMNS
    assert set(out["form"]) == {"whole"} and set(out["regime"]) == {"warm"}
    onnx = out[out["runtime"] == "onnxruntime"]
    assert onnx["round"].tolist() == [0, 1, 2]
    assert onnx["median_ms"].tolist() == [2.5, 25.0, 5.0]
    assert out.loc[out["runtime"] == "torch", "median_ms"].tolist() == [7.5, 1.0, 2.0]
    # positions index run.json's order, batch-8 blocks included: turn 1 runs backwards
    assert onnx["position"].tolist() == [0, 4, 6]
    assert out.loc[out["runtime"] == "torch", "position"].tolist() == [1, 3, 7]

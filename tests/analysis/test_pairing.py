"""Pairing by key: latency is measured on the timed models only (one per fold), F1 on all."""

import numpy as np
import pandas as pd

from qmoe.analysis.pairing import Scope, pair_up


def _table(latency_w4: dict) -> pd.DataFrame:
    rows = []
    for variant, timed in (("w8a8", {(1, 0): 1.0, (2, 0): 2.0}), ("w4a8", latency_w4)):
        for fold in (1, 2):
            for seed in (0, 1, 2):
                rows.append(
                    {
                        "dataset": "d",
                        "protocol": "corrected",
                        "variant": variant,
                        "fold": fold,
                        "seed": seed,
                        "macro_f1": 0.8 + fold / 100,
                        "latency_median_ms": timed.get((fold, seed), np.nan),
                    }
                )
    return pd.DataFrame(rows)


def test_latency_pairs_on_the_timed_models_and_f1_on_every_model():
    table = _table({(1, 0): 0.5, (2, 0): 1.5})
    scope = Scope("d", "corrected")
    lat = pair_up(table, scope, "w4a8", "w8a8", "latency_median_ms")
    assert lat.reason is None and lat.keys == [(1, 0), (2, 0)]
    assert lat.a.tolist() == [0.5, 1.5] and lat.b.tolist() == [1.0, 2.0]
    assert len(pair_up(table, scope, "w4a8", "w8a8", "macro_f1").keys) == 6


def test_a_timed_model_missing_from_one_variant_is_named():
    table = _table({(1, 0): 0.5})
    lat = pair_up(table, Scope("d", "corrected"), "w4a8", "w8a8", "latency_median_ms")
    assert lat.reason == "incomplete pairs: w4a8 lacks latency_median_ms for fold 2 seed 0"

"""Escalating MoEs: the escalation table reads the train stage's routing records (shares, bank
stability, calibration size); route is judged against random escalation on its own weights
(tests/analysis/test_escalation.py), so the test families pair it with the plain MoE only."""

import json

import numpy as np
import pandas as pd
import pytest

from qmoe.analysis import families, results, routing


def test_route_is_paired_with_the_plain_moe_and_never_with_a_placebo(with_facts):
    runs = with_facts(
        pd.DataFrame(
            {"variant": ["moe", "moe_curiosity_route", "moe_route_random"], "macro_f1": 0.8}
        )
    )
    plan = families.plan(results.variant_facts(runs))
    pairs = {(p.family, p.variant, p.baseline) for group in plan for p in group}
    against_moes = {p for p in pairs if p[1] == "moe_curiosity_route" and p[2].startswith("moe")}
    assert against_moes == {
        (f"{family}_curiosity_vs_moe", "moe_curiosity_route", "moe")
        for family in (
            "f1",
            "latency_levene",
            "latency_dispersion",
            "latency",
            "f1_variance",
            "fold_latency_levene",
        )
    }
    assert not [p for p in pairs if "moe_route_random" in p[2:]]  # no pair has it as baseline


def _record(tmp_path, variant, key, escalated, sensitivity, counts, n_cal=32):
    folder = tmp_path / "esc10" / "corrected" / variant / "curiosity"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"fold{key[0]}_seed{key[1]}.json").write_text(
        json.dumps(
            {
                "u": [0.0] * len(escalated),
                "escalated": escalated,
                "moved": escalated,
                "sensitivity": sensitivity,
                "bank_counts": counts,
                "n_calibration": n_cal,
                "calibration": "validation split",
                "tau": 0.5,
            }
        )
    )


def test_escalation_table_reads_shares_bank_stability_and_calibration_size(tmp_path, with_facts):
    runs = with_facts(
        pd.DataFrame(
            [
                {
                    "dataset": "esc10",
                    "protocol": "corrected",
                    "variant": v,
                    "fold": f,
                    "seed": 0,
                    "macro_f1": 0.8,
                }
                for v in ("moe_curiosity_route", "moe_route_random", "moe")
                for f in (1, 2)
            ]
        )
    )
    sens = [
        {
            "mc_samples": t,
            "bank": b,
            "tau": 0.1,
            "share": share,
            "moved_share": share,
            "macro_f1": f1,
            "jaccard_vs_deployed": jac,
        }
        for t, b, share, f1, jac in (
            (10, 0, 0.10, 0.80, 1.0),
            (10, 1, 0.20, 0.78, 0.25),
            (50, 0, 0.12, 0.81, 0.8),
            (50, 1, 0.12, 0.81, 0.8),
        )
    ]
    # fold 1: 4 samples ever escalated at T = 10, 3 of them in only 1 of 2 banks (< half: no)
    counts = {"10": [2, 1, 1, 1, 0], "50": [2, 2, 0, 0, 0]}
    for fold in (1, 2):
        _record(
            tmp_path,
            "moe_curiosity_route",
            (fold, 0),
            [True, False, False, False, False],
            sens,
            counts,
            n_cal=32 + fold,
        )
        _record(tmp_path, "moe_route_random", (fold, 0), [False, True, False, False, False], [], {})
    table = routing.escalation(routing.load(tmp_path, runs), runs).set_index(
        ["variant", "mc_samples"]
    )
    t10 = table.loc[("moe_curiosity_route", 10)]
    assert (t10["n_models"], t10["n_calibration_min"]) == (2, 33)
    assert t10["share_mean"] == pytest.approx(0.10) and t10["f1_mean"] == pytest.approx(0.80)
    assert t10["share_sd_banks"] == pytest.approx(np.std([0.1, 0.2], ddof=1))
    assert t10["jaccard_mean"] == pytest.approx(0.625)
    assert t10["unstable_share"] == pytest.approx(0.0)  # 1 of 2 banks is not < half of 2
    assert table.loc[("moe_curiosity_route", 50), "unstable_share"] == pytest.approx(0.0)
    placebo = table.loc[("moe_route_random", 0)]
    assert placebo["share_mean"] == pytest.approx(0.2) and np.isnan(placebo["jaccard_mean"])
    assert "moe" not in table.index.get_level_values("variant")  # not an escalating MoE


def test_a_missing_routing_record_is_an_error_naming_the_file(tmp_path, with_facts):
    runs = with_facts(
        pd.DataFrame(
            [
                {
                    "dataset": "esc10",
                    "protocol": "corrected",
                    "variant": "moe_curiosity_route",
                    "fold": 1,
                    "seed": 0,
                    "macro_f1": 0.8,
                }
            ]
        )
    )
    with pytest.raises(FileNotFoundError, match="moe_curiosity_route/curiosity/fold1_seed0.json"):
        routing.load(tmp_path, runs)

"""Route vs its placebo: the planned comparison can tell informative escalation from random
escalation (and says 'tie' when u is noise); the escalation table reads the train stage's
routing records."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from repo_params import config

from qmoe.analysis import comparisons, families, results, routing
from qmoe.analysis.stats import StatsConfig
from qmoe.training.metrics import scores

K, S, N, C = 5, 3, 12_000, 10  # folds, seeds, test clips per fold (many: to show a tie), classes
CFG = config(StatsConfig, "stats")


def _model_f1(rng: np.random.Generator, u_informative: bool, escalate: str) -> float:
    """Macro-F1 of one simulated MoE: a cheap expert that fails on hard clips and a precise one
    that rarely does; 10 % of the clips escalate to the precise expert, chosen by u (route) or at
    random (placebo). u is the clip's difficulty plus noise, or pure noise."""
    hard = rng.random(N)  # difficulty in [0, 1)
    label = rng.integers(0, C, N)
    cheap_ok = rng.random(N) < 0.95 - 0.8 * hard
    precise_ok = rng.random(N) < 0.95 - 0.1 * hard
    u = hard + 0.1 * rng.standard_normal(N) if u_informative else rng.random(N)
    signal = u if escalate == "route" else rng.random(N)
    up = signal > np.quantile(signal, 0.9)
    ok = np.where(up, precise_ok, cheap_ok)
    wrong = (label + rng.integers(1, C, N)) % C
    pred = np.where(ok, label, wrong)
    return scores(torch.as_tensor(label), torch.as_tensor(pred), C).macro_f1


def _runs(u_informative: bool, with_facts) -> pd.DataFrame:
    rng = np.random.default_rng(7 if u_informative else 8)
    rows = [
        {
            "dataset": "esc10",
            "protocol": "corrected",
            "variant": v,
            "fold": k,
            "seed": s,
            "macro_f1": _model_f1(rng, u_informative, mode),
            "n_test": N,
            "n_train": 4 * N,
        }
        for v, mode in (("moe_curiosity_route", "route"), ("moe_route_random", "random"))
        for k in range(1, K + 1)
        for s in range(S)
    ]
    return with_facts(pd.DataFrame(rows))


def _route_vs_placebo(runs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    plan = families.plan(results.variant_facts(runs))
    f1 = [p for p in plan.f1 if p.family == "f1_route_vs_placebo"]
    tost = [p for p in plan.tost if p.family == "tost_route_vs_placebo"]
    assert [(p.variant, p.baseline) for p in f1 + tost] == [
        ("moe_curiosity_route", "moe_route_random")
    ] * 2
    test = comparisons.compare(runs, f1, "macro_f1", CFG, comparisons.Method.NADEAU_BENGIO)
    return test.iloc[0], comparisons.equivalence(runs, tost, "macro_f1", CFG).iloc[0]


def test_informative_uncertainty_makes_route_beat_its_placebo(with_facts):
    test, tost = _route_vs_placebo(_runs(True, with_facts))
    assert test["n_pairs"] == K and test["mean_diff"] > 0.02
    assert test["p_holm"] < 0.05 and test["ci_low"] > 0  # superiority shown
    assert not bool(tost["equivalent"])


def test_noise_uncertainty_ties_with_its_placebo(with_facts):
    test, tost = _route_vs_placebo(_runs(False, with_facts))
    assert abs(test["mean_diff"]) < 0.01 and test["p_holm"] > 0.05  # no difference shown ...
    assert bool(tost["equivalent"])  # ... and equivalence shown
    assert -0.01 < tost["ci_holm_low"] and tost["ci_holm_high"] < 0.01


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

"""The same-weights test of uncertainty routing (qmoe.analysis.escalation): F1 of any escalation
set from the two recorded predictions, the exact and the drawn permutation p, AUROC, and a test
that tells an informative u from a noise u."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from repo_params import config

from qmoe.analysis import escalation as esc
from qmoe.analysis.stats import StatsConfig
from qmoe.contract.runs import ModelKey
from qmoe.contract.study import RunId
from qmoe.io import InputError
from qmoe.training.metrics import scores

CFG = config(StatsConfig, "stats")


def _arms(label, none, up, escalated, u=None) -> esc.Arms:
    n = len(label)
    return esc.Arms(
        np.asarray(label),
        np.asarray(none),
        np.asarray(up),
        np.asarray(escalated, dtype=bool),
        np.asarray(u if u is not None else np.linspace(1, 0, n), dtype=float),
        0,
    )


# labels [0, 1, 0, 1]; unescalated clip 0 is wrong; escalating fixes clip 0, breaks clip 1
TINY = _arms([0, 1, 0, 1], [1, 1, 0, 1], [0, 0, 0, 1], [True, False, False, False])
# macro-F1 with only clip j escalated (by hand: class F1s from the confusion counts)
TINY_F1 = [1.0, 0.5, (2 / 3 + 4 / 5) / 2, (2 / 3 + 4 / 5) / 2]


def test_f1_of_any_escalation_set_is_the_metrics_macro_f1():
    rng = np.random.default_rng(0)
    n, c = 60, 7
    label = rng.integers(0, c, n)
    none = np.where(rng.random(n) < 0.6, label, rng.integers(0, c, n))
    up = np.where(rng.random(n) < 0.8, label, rng.integers(0, c, n))
    arm = _arms(label, none, up, rng.random(n) < 0.2)
    masks = rng.random((25, n)) < rng.random((25, 1))
    expect = [
        scores(torch.as_tensor(label), torch.as_tensor(np.where(m, up, none)), c).macro_f1
        for m in masks
    ]
    assert esc.macro_f1(arm, masks) == pytest.approx(expect, abs=1e-12)
    assert esc.macro_f1(TINY, np.eye(4, dtype=bool)) == pytest.approx(TINY_F1, abs=1e-12)


def test_exact_p_enumerates_every_joint_set():
    one = esc.permutation_test([TINY], draws=1000, seed=0)
    assert one.exact and one.observed == 1.0
    assert sorted(one.null) == pytest.approx(sorted(TINY_F1))
    assert one.p == 0.25  # 1 of the 4 single-clip sets reaches F1 1.0
    two = esc.permutation_test([TINY, TINY], draws=1000, seed=0)
    assert two.exact and len(two.null) == 16 and two.p == 1 / 16
    # escalating clip 1 instead (F1 0.5; mean 0.75): 7 of the 16 joint sets are at least as good
    worse = TINY._replace(escalated=np.array([False, True, False, False]))
    assert esc.permutation_test([worse, TINY], draws=1000, seed=0).p == 7 / 16


def test_drawn_p_counts_the_observed_set_and_approaches_the_exact_p():
    rng = np.random.default_rng(3)
    n = 16
    label = np.arange(n) % 3
    none = np.where(rng.random(n) < 0.5, label, (label + 1) % 3)
    arm = _arms(label, none, label, np.arange(n) < 4)  # 4 escalated: C(16, 4) = 1820 sets
    exact = esc.permutation_test([arm], draws=1820, seed=0)
    drawn = esc.permutation_test([arm], draws=999, seed=0)
    assert exact.exact and not drawn.exact and len(drawn.null) == 999
    hits = np.sum(drawn.null >= drawn.observed - 1e-12)
    assert drawn.p == (1 + hits) / 1000  # never 0: the observed set is one of the draws
    assert 0.05 < exact.p < 0.95
    assert drawn.p == pytest.approx(exact.p, abs=4 * math.sqrt(exact.p * (1 - exact.p) / 999))
    again = esc.permutation_test([arm], draws=999, seed=0)
    assert again.p == drawn.p and np.array_equal(again.null, drawn.null)  # seeded


def test_auroc_is_the_mann_whitney_probability_with_ties_halved():
    from sklearn.metrics import roc_auc_score

    assert esc.auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 1, 0, 1], bool)) == 1.0
    assert esc.auroc(np.array([0.5, 0.5]), np.array([1, 0], bool)) == 0.5
    assert math.isnan(esc.auroc(np.array([0.1, 0.2]), np.array([0, 0], bool)))
    rng = np.random.default_rng(1)
    u, err = rng.random(50).round(1), rng.random(50) < 0.3
    assert esc.auroc(u, err) == pytest.approx(roc_auc_score(err, u))


def _route_models(informative: bool, folds=5, seeds=3, n=80, c=10) -> list[esc.Arms]:
    """Simulated route models: the cheap experts fail on hard clips, the precise one rarely; 12 %
    of the clips escalate, the highest u, where u is difficulty plus noise or pure noise."""
    rng = np.random.default_rng(11 if informative else 12)
    out = []
    for _ in range(folds * seeds):
        hard = rng.random(n)
        label = rng.integers(0, c, n)
        wrong = (label + rng.integers(1, c, n)) % c
        none = np.where(rng.random(n) < 0.95 - 0.8 * hard, label, wrong)
        up = np.where(rng.random(n) < 0.95 - 0.1 * hard, label, wrong)
        u = hard + 0.1 * rng.standard_normal(n) if informative else rng.random(n)
        out.append(_arms(label, none, up, u > np.quantile(u, 0.88), u))
    return out


def _table(models: list[esc.Arms], variant="moe_curiosity_route") -> pd.Series:
    where = RunId("esc10", "corrected", variant)
    return esc.same_weights({where: models}, CFG).iloc[0]


def test_the_same_weights_test_tells_an_informative_u_from_noise():
    info, noise = _table(_route_models(True)), _table(_route_models(False))
    assert not info["exact"] and info["draws"] == CFG.permutation_draws
    assert info["n_models"] == 15 and info["n_clips"] == 15 * 80
    assert info["p_holm"] < 0.001 and info["ci_low"] > 0.02  # u picks the clips worth escalating
    assert info["diff"] == pytest.approx(info["f1_u"] - info["f1_random"])
    assert info["auroc"] > 0.7 and info["f1_u"] > info["f1_none"]
    assert noise["p_holm"] > 0.05 and noise["ci_low"] < 0 < noise["ci_high"]  # a tie
    assert abs(noise["diff"]) < 0.01 and abs(noise["auroc"] - 0.5) < 0.05
    assert info["share"] == pytest.approx(0.125) and info["mismatch"] == 0


def test_holm_runs_over_the_route_variants_of_a_protocol():
    info, noise = _route_models(True), _route_models(False)
    where = lambda v: RunId("esc10", "corrected", v)  # noqa: E731
    table = esc.same_weights({where("a"): noise, where("b"): info}, CFG).set_index("variant")
    p = table["p"].to_numpy()
    assert table["p_holm"].to_numpy() == pytest.approx(
        [min(1.0, max(2 * p.min(), p.max())), 2 * p.min()]
    )


def test_the_curve_runs_from_none_to_all_escalated_through_the_deployed_share():
    models = _route_models(True, folds=2, seeds=1)
    where = RunId("esc10", "corrected", "moe_curiosity_route")
    curve = esc.share_curve({where: models}, CFG).set_index("share")
    assert list(curve.index) == list(esc.SHARES)
    none = np.mean([esc.macro_f1(a, np.zeros(80, bool))[0] for a in models])
    every = np.mean([esc.macro_f1(a, np.ones(80, bool))[0] for a in models])
    for end, f1 in ((0.0, none), (1.0, every)):  # u and random agree at both ends
        assert curve.loc[end, ["f1_u", "f1_random", "f1_random_low"]].tolist() == pytest.approx(
            [f1] * 3
        )
    # 10 % = 8 clips = the top-u sets of the deployed rule at that share
    top = [esc.macro_f1(a, a.u >= np.sort(a.u)[-8])[0] for a in models]
    assert curve.loc[0.1, "f1_u"] == pytest.approx(np.mean(top))
    mid = curve.loc[0.5]
    assert mid["f1_random_low"] <= mid["f1_random"] <= mid["f1_random_high"]


def test_a_record_without_the_same_weights_predictions_names_the_model():
    where, key = RunId("esc10", "corrected", "moe_curiosity_route"), ModelKey(2, 1)
    record = {"u": [0.1], "label": [0], "pred": [0], "escalated": [False], "pred_none": [0]}
    with pytest.raises(
        InputError, match=r"moe_curiosity_route fold2_seed1: .* lacks \['pred_escalated'\]"
    ):
        esc.arms(record, where, key)
    full = {**record, "pred_escalated": [1], "escalated": [True]}  # composed 1 vs deployed 0
    assert esc.arms(full, where, key).mismatch == 1

from pathlib import Path

import numpy as np
import pytest
import torch

from qmoe import models
from qmoe import variants as v
from qmoe.io import load_params
from qmoe.moe import curiosity
from qmoe.variants import resolve

PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
VARIANTS, EXPERTS = PARAMS["variants"], PARAMS["study"]["experts"]
MLP = models.MLPConfig(in_dim=16, num_classes=5, hidden_sizes=(12, 8), dropout=0.2)
MODES = ["none", "log", "kl", "entropy", "route"]


def _moes(seed=0):
    """One MoE per curiosity mode, all with the same weights (dropout and strategies have none)."""
    torch.manual_seed(seed)
    out = {
        m: models.build(
            resolve(f"moe_curiosity_{m}" if m != "none" else "moe", VARIANTS, EXPERTS), MLP
        )
        for m in MODES
    }
    state = out["log"].state_dict()
    for m in MODES:
        missing, unexpected = out[m].load_state_dict(state, strict=False)
        assert not unexpected and missing in ([], ["strategy.tau"])
    return out


def _x(n=200, seed=1):
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


def _run(moe, x, seed=5):
    torch.manual_seed(seed)  # same MC masks for every model
    return moe(x)


def test_kl_and_entropy_rescale_are_noops_after_renormalisation():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(500, 3, generator=g), dim=-1)
    u = torch.rand(500, generator=g)
    for strategy in [
        curiosity.KLRescale(0.02),
        curiosity.EntropyRescale(0.1),
        curiosity.KLRescale(5.0),
        curiosity.EntropyRescale(5.0),
    ]:
        q = strategy(probs, u)
        assert torch.allclose(q, probs, atol=1e-6)
        assert torch.equal(q.argmax(-1), probs.argmax(-1))


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("mode", ["kl", "entropy"])
def test_reference_strategies_leave_every_decision_and_output_unchanged(mode, train):
    moes = _moes()
    x = _x()
    base, other = moes["log"].train(train), moes[mode].train(train)
    a, b = _run(base, x), _run(other, x)
    assert torch.equal(a.expert_index, b.expert_index)
    assert torch.equal(a.uncertainty, b.uncertainty)
    assert torch.allclose(a.logits, b.logits, atol=1e-6)
    assert torch.allclose(a.routing_probs, b.routing_probs, atol=1e-6)
    if not train:  # in eval the routing pass is deterministic, so `off` agrees too
        c = moes["none"].eval()(x)
        assert torch.equal(a.expert_index, c.expert_index) and c.uncertainty is None
        assert torch.allclose(a.logits, c.logits, atol=1e-6)


def test_route_is_log_until_a_threshold_exists():
    moes = _moes()
    x = _x()
    a, b = _run(moes["log"].eval(), x), _run(moes["route"].eval(), x)
    assert torch.isinf(moes["route"].strategy.tau)
    assert torch.equal(a.expert_index, b.expert_index) and torch.equal(a.logits, b.logits)


def test_route_changes_exactly_the_uncertain_decisions_after_calibration():
    moes = _moes()
    log, route = moes["log"].eval(), moes["route"].eval()
    x_val, x = _x(seed=2), _x(seed=3)
    torch.manual_seed(9)
    route.calibrate_(x_val)
    tau = route.strategy.tau
    assert torch.isfinite(tau)
    a, b = _run(log, x), _run(route, x)
    target = route.strategy.target
    escalated = b.uncertainty > tau  # route's own u (its T may differ from log's)
    changed = a.expert_index[:, 0] != b.expert_index[:, 0]
    assert changed.any()  # u really routes
    assert torch.equal(changed, escalated & (a.expert_index[:, 0] != target))
    assert (b.expert_index[escalated, 0] == target).all()
    # the escalated expert's gate is the router's top probability; q stays a distribution
    top = a.routing_probs.max(-1).values
    assert torch.equal(b.routing_probs[escalated, target], top[escalated])
    assert torch.allclose(b.routing_probs.sum(-1), torch.ones(len(x)))
    same = ~changed
    assert torch.allclose(a.logits[same], b.logits[same], atol=1e-6)


def test_calibration_sets_the_validation_quantile():
    route = _moes()["route"].eval()
    x_val = _x(n=200, seed=2)
    torch.manual_seed(9)
    route.calibrate_(x_val)
    torch.manual_seed(9)
    u = route.uncertainty(x_val)
    assert torch.equal(route.strategy.tau, torch.quantile(u, 0.9))
    assert (u > route.strategy.tau).sum().item() == 20


def test_calibration_is_a_noop_for_other_modes():
    for mode, moe in _moes().items():
        if mode == "route":
            continue
        before = {k: v.clone() for k, v in moe.state_dict().items()}
        moe.calibrate_(_x())
        after = moe.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_route_running_threshold_during_training_and_persisted_in_state_dict():
    moes = _moes()
    route = moes["route"].train()
    torch.manual_seed(0)
    route(_x(n=64))
    tau = route.strategy.tau.clone()
    assert torch.isfinite(tau)
    route(_x(n=64, seed=4))
    assert not torch.equal(route.strategy.tau, tau)  # running average moves
    fresh = _moes(seed=1)["route"]
    fresh.load_state_dict(route.state_dict())
    assert torch.equal(fresh.strategy.tau, route.strategy.tau)
    x = _x(seed=6)
    assert torch.equal(_run(fresh.eval(), x).expert_index, _run(route.eval(), x).expert_index)


def test_escalate_hand_computed():
    esc = curiosity.Escalate(target=2)
    esc.tau.fill_(0.5)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.1, 0.4], [0.1, 0.3, 0.6]])
    u = torch.tensor([1.0, 0.0, 2.0])
    q = esc.eval()(probs, u)
    assert torch.equal(q, torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.1, 0.4], [0.1, 0.3, 0.6]]))


def test_eval_uncertainty_uses_the_fixed_mask_bank_whatever_the_seed():
    moe = _moes()["log"].eval()
    x = _x()
    assert (_run(moe, x).uncertainty > 0).all()
    assert torch.equal(_run(moe, x, seed=1).uncertainty, _run(moe, x, seed=2).uncertainty)


def test_each_curiosity_config_sets_up_its_strategy_with_its_own_knobs():
    assert set(models.CURIOSITY_SETUP) == set(v.CURIOSITY.values())
    setup = {
        c.mode: models.CURIOSITY_SETUP[type(c)](c, 2)
        for c in (
            v.NoCuriosity(),
            v.LogCuriosity(mc_samples=7),
            v.KLCuriosity(mc_samples=7, alpha=0.02),
            v.EntropyCuriosity(mc_samples=7, alpha=0.1),
            v.RouteCuriosity(mc_samples=7, quantile=0.8, score="bald"),
            v.RandomCuriosity(quantile=0.8, seed=3),
        )
    }
    assert setup["none"] == (None, 0, "variance", None)
    kinds = {m: type(s.strategy) for m, s in setup.items() if s.strategy is not None}
    assert kinds == {
        "log": curiosity.LogOnly,
        "kl": curiosity.KLRescale,
        "entropy": curiosity.EntropyRescale,
        "route": curiosity.Escalate,
        "random": curiosity.RandomEscalate,
    }
    assert [setup[m].mc_samples for m in ("log", "kl", "entropy", "route", "random")] == [
        7,
        7,
        7,
        7,
        0,
    ]
    assert (setup["kl"].strategy.alpha, setup["entropy"].strategy.alpha) == (0.02, 0.1)
    route, placebo = setup["route"], setup["random"]
    assert (route.score, route.draw_seed, route.strategy.target) == ("bald", None, 2)
    assert route.strategy.quantile == placebo.strategy.quantile == 0.8
    assert (placebo.score, placebo.draw_seed) == ("variance", 3)
    with pytest.raises(ValueError, match=r"quantile 1.0 not in \(0, 1\)"):
        curiosity.Escalate(0, quantile=1.0)


def test_rescaling_strategies_have_finite_gradients_when_a_probability_underflows():
    from qmoe.moe.curiosity import EntropyRescale, KLRescale

    logits = torch.tensor([[0.0, 200.0, -200.0], [1.0, 2.0, 3.0]], requires_grad=True)
    probs = logits.softmax(dim=-1)  # first row: exact zeros
    assert (probs[0] == 0).any()
    for strategy in (KLRescale(0.02), EntropyRescale(0.1)):
        out = strategy(probs, torch.tensor([0.1, 0.2]))
        (out[:, 0].sum()).backward(retain_graph=True)
        assert torch.isfinite(logits.grad).all()
        logits.grad = None


# --- the `random` placebo and the u(x) options (issue 12 item 4) -------------------------------


def _moe(name: str, curiosity_cfg: dict | None = None, seed: int = 0):
    table = dict(VARIANTS)
    if curiosity_cfg is not None:
        table[name] = {**VARIANTS[name], "curiosity": curiosity_cfg}
    torch.manual_seed(seed)
    return models.build(resolve(name, table, EXPERTS), MLP)


def test_placebo_draw_is_per_sample_deterministic_uniform_and_batch_independent():
    placebo = _moe("moe_route_random").eval()
    x = _x(n=4000, seed=7)
    draw = placebo.uncertainty(x)
    assert torch.equal(placebo.uncertainty(x[:5]), draw[:5])
    assert torch.equal(torch.cat([placebo.uncertainty(x[i : i + 1]) for i in range(50)]), draw[:50])
    assert 0 <= draw.min() and draw.max() < 1
    counts = torch.histc(draw, bins=10, min=0, max=1)
    assert (counts - 400).abs().max() < 80  # uniform: 10 bins of about 400
    other = _moe("moe_route_random", {"mode": "random", "quantile": 0.9, "seed": 1}).eval()
    assert not torch.equal(other.uncertainty(x), draw)  # the seed is a knob


def test_placebo_escalates_the_same_share_at_random():
    route, placebo = _moe("moe_curiosity_route").eval(), _moe("moe_route_random").eval()
    x_val, x = _x(n=400, seed=2), _x(n=2000, seed=3)
    route.calibrate_(x_val)
    placebo.calibrate_(x_val)
    u = route.uncertainty(x)
    over_route = u > route.strategy.tau
    over_placebo = placebo.uncertainty(x) > placebo.strategy.tau
    assert abs(over_placebo.float().mean() - 0.1) < 0.03
    assert abs(over_route.float().mean() - over_placebo.float().mean()) < 0.05
    # random: the placebo's escalated samples have the typical u, route's the highest
    assert u[over_route].min() > u[~over_route].max()
    ratio = u[over_placebo].mean() / u.mean()
    assert 0.8 < ratio < 1.25
    out = placebo(x)
    assert (out.expert_index[over_placebo, 0] == placebo.strategy.target).all()


def test_entropy_and_bald_scores_by_hand():
    from qmoe.moe.router import bald, predictive_entropy

    p = torch.tensor([[[0.5, 0.5]], [[1.0, 0.0]]])  # (t=2, b=1, e=2)
    mean_h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert predictive_entropy(p).item() == pytest.approx(mean_h)
    assert bald(p).item() == pytest.approx(mean_h - 0.5 * np.log(2))
    same = torch.tensor([[[0.3, 0.7]], [[0.3, 0.7]]])  # no disagreement: BALD 0
    assert bald(same).item() == pytest.approx(0.0, abs=1e-7)
    route = _moe(
        "moe_curiosity_route", {"mode": "route", "mc_samples": 10, "quantile": 0.9, "score": "bald"}
    ).eval()
    x = _x()
    assert route.score == "bald" and (route.uncertainty(x) >= -1e-6).all()


def test_the_mask_bank_is_a_seeded_knob_of_the_check_not_of_the_model():
    route = _moe("moe_curiosity_route").eval()
    x = _x()
    u0 = route.uncertainty(x)
    route.router.bank_seed = 3
    u3 = route.uncertainty(x)
    route.router.bank_seed = 0
    assert not torch.equal(u0, u3) and torch.equal(route.uncertainty(x), u0)
    assert "bank_seed" not in str(route.state_dict().keys())

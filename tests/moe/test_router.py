import math

import pytest
import torch
from torch import nn

from qmoe.moe import router as R


@pytest.mark.parametrize("experts", [1, 3, 4, 7])
def test_router_parameter_count_of_reference_6_2(experts):
    r = R.Router(1536, experts, dropout=0.2)
    assert sum(p.numel() for p in r.parameters()) == 204_992 + 65 * experts
    bayes = R.Router(1536, experts, dropout=0.2, mc_dropout=True)  # dropout has no parameters
    assert sum(p.numel() for p in bayes.parameters()) == 204_992 + 65 * experts


def test_router_init_and_shapes():
    torch.manual_seed(0)
    r = R.Router(40, 3, dropout=0.2)
    for layer, (fan_out, fan_in) in [(r.fc1, (128, 40)), (r.fc2, (64, 128)), (r.out, (3, 64))]:
        assert layer.weight.shape == (fan_out, fan_in)
        assert layer.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out))
        assert torch.equal(layer.bias, torch.zeros(fan_out))
    assert r(torch.randn(5, 40)).shape == (5, 3) and r.num_experts == 3


def test_router_forward_matches_the_reference_layer_order():
    torch.manual_seed(0)
    r = R.Router(10, 4, dropout=0.3, mc_dropout=True).eval()
    seq = nn.Sequential(
        r.fc1, nn.ReLU(), nn.Dropout(0.3), r.fc2, nn.ReLU(), nn.Dropout(0.3), r.out
    ).eval()
    x = torch.randn(6, 10)
    assert torch.equal(r(x), seq(x))


def test_dropout_follows_mode_unless_told_otherwise():
    torch.manual_seed(0)
    r = R.Router(10, 3, dropout=0.5, mc_dropout=True).eval()
    x = torch.randn(8, 10)
    assert torch.equal(r(x), r(x))
    assert not torch.equal(r(x, stochastic=True), r(x, stochastic=True))
    r.train()
    assert torch.equal(r(x, stochastic=False), r.eval()(x))


@pytest.mark.parametrize("mc,calls", [(False, 1), (True, 2)])
def test_bayesian_router_has_the_second_dropout(monkeypatch, mc, calls):
    seen = []
    real = R.F.dropout

    def spy(h, p, training):
        seen.append(h.shape)
        return real(h, p, training)

    monkeypatch.setattr(R.F, "dropout", spy)
    R.Router(10, 3, dropout=0.5, mc_dropout=mc)(torch.randn(4, 10))
    assert seen == [(4, 128), (4, 64)][:calls]


def test_sample_probs_shape_and_rows_are_distributions():
    torch.manual_seed(0)
    r = R.Router(12, 3, dropout=0.3, mc_dropout=True).eval()
    p = r.sample_probs(torch.randn(7, 12), samples=10)
    assert p.shape == (10, 7, 3)
    assert torch.allclose(p.sum(-1), torch.ones(10, 7))
    assert not torch.equal(p[0], p[1])  # different masks per pass
    assert not r.training  # mode untouched


def test_sample_probs_without_dropout_equals_deterministic_pass_and_u_is_zero():
    torch.manual_seed(0)
    r = R.Router(12, 3, dropout=0.0, mc_dropout=True).eval()
    x = torch.randn(7, 12)
    p = r.sample_probs(x, samples=5)
    for t in range(5):
        assert torch.allclose(p[t], r(x).softmax(-1), atol=1e-6)
    assert torch.allclose(R.mc_uncertainty(p), torch.zeros(7), atol=1e-12)


def test_mc_sampling_is_reproducible_under_a_seed():
    r = R.Router(12, 3, dropout=0.3, mc_dropout=True).eval()
    x = torch.randn(7, 12)
    torch.manual_seed(123)
    a = r.sample_probs(x, 10)
    torch.manual_seed(123)
    assert torch.equal(a, r.sample_probs(x, 10))


def test_mc_uncertainty_is_the_sum_of_unbiased_variances():
    p = torch.tensor([[[0.2, 0.8]], [[0.4, 0.6]], [[0.6, 0.4]]])  # (t=3, b=1, e=2)
    # each expert: values spread (0.2, 0.4, 0.6): unbiased variance 0.04; sum over 2 experts 0.08
    assert torch.allclose(R.mc_uncertainty(p), torch.tensor([0.08]))
    with pytest.raises(ValueError, match="at least 2 MC samples"):
        R.mc_uncertainty(p[:1])


def test_top_k_keeps_raw_probabilities():
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    w, i = R.top_k(probs, 2)
    assert torch.equal(i, torch.tensor([[1, 2], [0, 2]]))
    assert torch.equal(w, torch.tensor([[0.6, 0.3], [0.5, 0.3]]))


def test_balance_losses():
    uniform = torch.full((8, 4), 0.25)
    collapsed = torch.zeros(8, 4)
    collapsed[:, 2] = 1.0
    idx_u = torch.arange(8)[:, None] % 4
    idx_c = torch.full((8, 1), 2)
    assert torch.allclose(R.reference_balance_loss(uniform, idx_u), torch.tensor(0.25))  # 1/e
    assert torch.allclose(R.reference_balance_loss(collapsed, idx_c), torch.tensor(1.0))
    assert torch.allclose(R.switch_balance_loss(uniform, idx_u), torch.tensor(1.0))
    assert torch.allclose(R.switch_balance_loss(collapsed, idx_c), torch.tensor(4.0))  # e
    assert R.no_balance_loss(uniform, idx_u).item() == 0.0
    assert set(R.BALANCE_LOSSES) == {"reference", "switch", "none"}


def test_routing_frequencies():
    idx = torch.tensor([[0], [2], [2], [2]])
    assert torch.equal(R.routing_frequencies(idx, 3), torch.tensor([0.25, 0.0, 0.75]))


def test_eval_mc_passes_use_a_fixed_bank_independent_of_batch_composition():
    torch.manual_seed(0)
    r = R.Router(12, 3, dropout=0.3, mc_dropout=True).eval()
    x = torch.randn(7, 12)
    together = R.mc_uncertainty(r.sample_probs(x, 10))  # (7,)
    torch.manual_seed(99)  # global RNG not used
    alone = torch.cat([R.mc_uncertainty(r.sample_probs(x[i : i + 1], 10)) for i in range(7)])
    assert torch.allclose(together, alone, rtol=0, atol=1e-7)
    assert (together > 0).all()
    bank = r.mask_bank(10)
    assert bank.first.shape == (10, 128) and bank.second.shape == (10, 64)
    assert set(bank.first.unique().tolist()) == {0.0, torch.tensor(1 / 0.7).item()}
    # pass t by hand: mask t of the bank after each ReLU
    h = torch.relu(r.fc2(torch.relu(r.fc1(x[:1])) * bank.first[3])) * bank.second[3]
    assert torch.allclose(r.sample_probs(x[:1], 10)[3], r.out(h).softmax(-1), atol=1e-7)


def test_training_mc_passes_draw_fresh_masks():
    torch.manual_seed(0)
    r = R.Router(12, 3, dropout=0.3, mc_dropout=True).train()
    x = torch.randn(1, 12).expand(4, 12)  # 4 copies of one sample
    p = r.sample_probs(x, 10)
    assert not torch.equal(p[:, 0], p[:, 1])  # masks differ per row

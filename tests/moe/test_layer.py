import pytest
import torch
from torch import nn

from qmoe import models
from qmoe.moe.curiosity import LogOnly
from qmoe.moe.layer import MoE, MoEOutput
from qmoe.moe.router import BALANCE_LOSSES, Router, reference_balance_loss
from qmoe.variants import resolve

D, C = 12, 4


class Recorder(nn.Module):
    """Linear expert that records how many rows it was asked to process."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(D, C)
        self.rows: list[int] = []

    def forward(self, x):
        self.rows.append(x.shape[0])
        return self.lin(x)


def _moe(n_experts=3, k=1, strategy=None, alpha=1e-3, seed=0):
    experts = [Recorder(seed + i) for i in range(n_experts)]
    torch.manual_seed(seed)
    router = Router(D, n_experts, dropout=0.2, mc_dropout=strategy is not None)
    return MoE(experts, router, k, reference_balance_loss, alpha, strategy, mc_samples=10).eval()


def test_single_expert_moe_with_gate_one_is_the_expert():
    """Reference equivalence: one expert, softmax over one output = 1, so the MoE is the expert."""
    mlp = models.MLPConfig(in_dim=D, num_classes=C, hidden_sizes=(16, 8), dropout=0.1)
    variants = {
        "w4a8": {"kind": "bitlinear", "weight_bits": 4},
        "one": {
            "kind": "moe",
            "top_k": 1,
            "balance": "reference",
            "balance_alpha": 1e-3,
            "curiosity": {"mode": "none"},
        },
    }
    torch.manual_seed(0)
    moe = models.build(resolve("one", variants, ["w4a8"]), mlp).eval()
    x = torch.randn(9, D)
    out = moe(x)
    assert torch.equal(out.routing_probs, torch.ones(9, 1))
    assert torch.equal(out.expert_index, torch.zeros(9, 1, dtype=torch.long))
    assert torch.equal(out.logits, moe.experts[0](x))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_output_is_sum_of_gated_chosen_experts_over_k(k):
    moe = _moe(k=k)
    x = torch.randn(20, D)
    out = moe(x)
    probs = moe.router(x).softmax(-1)  # (b, e)
    dense = torch.stack([e.lin(x) for e in moe.experts], dim=1)  # (b, e, c)
    w, idx = probs.topk(k, dim=-1)
    expected = (w[..., None] * dense.gather(1, idx[..., None].expand(-1, -1, C))).sum(1) / k
    assert torch.allclose(out.logits, expected, atol=1e-6)
    assert torch.equal(out.expert_index, idx)
    assert torch.allclose(out.routing_probs, probs)


def test_only_chosen_experts_are_evaluated():
    moe = _moe(k=1)
    x = torch.randn(30, D)
    out = moe(x)
    counts = torch.bincount(out.expert_index[:, 0], minlength=3).tolist()
    assert [sum(e.rows) for e in moe.experts] == counts
    assert all(len(e.rows) == (1 if n else 0) for e, n in zip(moe.experts, counts))


def test_output_fields_and_aux_loss():
    moe = _moe(alpha=0.5)
    x = torch.randn(10, D)
    out = moe(x)
    assert isinstance(out, MoEOutput) and out.uncertainty is None
    assert out.logits.shape == (10, C) and out.routing_probs.shape == (10, 3)
    assert out.expert_index.shape == (10, 1)
    assert torch.allclose(out.aux_loss, 0.5 * out.routing_probs.mean(0).square().sum())


def test_switch_balance_option():
    experts = [Recorder(i) for i in range(3)]
    moe = MoE(experts, Router(D, 3, 0.2), 1, BALANCE_LOSSES["switch"], 1.0).eval()
    out = moe(torch.randn(10, D))
    f = torch.bincount(out.expert_index[:, 0], minlength=3).float() / 10
    assert torch.allclose(out.aux_loss, 3 * (f * out.routing_probs.mean(0)).sum())


def test_gradient_reaches_router_and_chosen_experts():
    moe = _moe().train()
    x = torch.randn(16, D)
    out = moe(x)
    (out.logits.square().sum() + out.aux_loss).backward()
    assert moe.router.fc1.weight.grad.abs().sum() > 0
    chosen = set(out.expert_index[:, 0].tolist())
    for e, expert in enumerate(moe.experts):
        assert (expert.lin.weight.grad is not None) == (e in chosen)


def test_uncertainty_is_returned_when_a_strategy_is_set():
    moe = _moe(strategy=LogOnly())
    out = moe(torch.randn(10, D))
    assert out.uncertainty.shape == (10,) and (out.uncertainty >= 0).all()


def test_mismatched_experts_and_router_outputs_are_refused():
    with pytest.raises(ValueError, match="3 experts but the router has 2 outputs"):
        MoE([Recorder(i) for i in range(3)], Router(D, 2, 0.2), 1, reference_balance_loss, 0.0)
    with pytest.raises(ValueError, match=r"top_k=3 not in \[1, 2\]"):
        MoE([Recorder(i) for i in range(2)], Router(D, 2, 0.2), 3, reference_balance_loss, 0.0)


def test_moe_training_step_is_deterministic_under_a_seed():
    def step():
        moe = _moe(strategy=LogOnly()).train()
        torch.manual_seed(7)
        out = moe(torch.randn(16, D))
        return out.logits, out.uncertainty

    a, b = step(), step()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])

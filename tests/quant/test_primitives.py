import pytest
import torch

from qmoe.quant import primitives
from qmoe.quant.primitives import QuantizedWeight


def test_ste_has_the_exact_value_of_q_and_identity_gradient():
    x = torch.randn(1000, requires_grad=True)
    q = (x.detach() * 3.3).round() / 3.3
    y = primitives.ste(x, q)
    assert torch.equal(y.detach(), q)  # bit for bit, unlike x + (q - x).detach()
    (y * torch.arange(1000.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(1000.0))


def test_round_ste_rounds_forward_and_passes_gradient_through():
    x = torch.tensor([0.4, 0.5, 1.5, -2.6], requires_grad=True)
    y = primitives.round_ste(3 * x)
    # 3x = (1.2, 1.5, 4.5, -7.8) -> round half to even -> (1, 2, 4, -8)
    assert torch.equal(y.detach(), torch.tensor([1.0, 2.0, 4.0, -8.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 3.0))


def test_sign_ste_is_binary_with_sign_of_zero_positive():
    x = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    y = primitives.sign_ste(x)
    assert torch.equal(y.detach(), torch.tensor([-1.0, 1.0, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


def test_scales():
    x = torch.tensor([[1.0, -4.0], [0.5, 0.25]])
    assert torch.equal(primitives.absmax_scale(x, 2), torch.tensor(2.0))
    assert torch.equal(primitives.absmax_scale(x, 1, dim=1), torch.tensor([[4.0], [0.5]]))
    assert torch.equal(primitives.absmax_scale(torch.zeros(3), 1), torch.tensor(1e-5))
    assert torch.equal(primitives.absmean_scale(x), torch.tensor(5.75 / 4))
    assert torch.equal(primitives.absmean_scale(x, dim=1), torch.tensor([[2.5], [0.375]]))


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_kbit_weights_use_at_most_2_pow_bits_levels(bits):
    w = torch.randn(64, 256)
    codes, scale = primitives.kbit_codes(w, bits)
    assert (codes * scale).unique().numel() <= 2**bits
    if bits == 1:
        assert set(codes.unique().tolist()) == {-1.0, 1.0} and scale.item() == 1.0
    else:  # |W_c| / s <= q_max, so q_min = -2^(k-1) is never reached (7.1)
        qmax = 2 ** (bits - 1) - 1
        assert codes.min() >= -qmax and codes.abs().max() == qmax


def test_two_bit_weights_are_ternary_with_dead_zone_and_four_bit_has_15_levels():
    w = torch.randn(128, 512)
    codes2, s2 = primitives.kbit_codes(w, 2)
    wc = w - w.mean()
    assert torch.allclose(s2, wc.abs().max())  # s = max|W_c| / 1
    assert set(codes2.unique().tolist()) == {-1.0, 0.0, 1.0}
    assert torch.equal(codes2 == 0, (wc / s2).abs() <= 0.5)  # dead zone 0.5 * max|W_c|
    symmetric = torch.cat([w, -w])  # both extremes reach q_max
    codes4, _ = primitives.kbit_codes(symmetric, 4)
    assert codes4.unique().tolist() == list(range(-7, 8))  # 15 levels, -8 unused


def test_kbit_codes_hand_computed():
    w = torch.tensor([[1.0, 2.0], [3.0, 6.0]])  # mean 3 -> W_c = [-2, -1, 0, 3]
    codes, scale = primitives.kbit_codes(w, 3)  # q_max 3, s = 3 / 3 = 1
    assert torch.equal(scale, torch.tensor(1.0))
    assert torch.equal(codes, torch.tensor([[-2.0, -1.0], [0.0, 3.0]]))
    codes1, scale1 = primitives.kbit_codes(w, 1)
    assert torch.equal(codes1, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))


@pytest.mark.parametrize("bits", [0, 9, 16])
def test_kbit_codes_reject_unsupported_bits(bits):
    with pytest.raises(ValueError, match=f"weight bits {bits} not supported"):
        primitives.kbit_codes(torch.randn(2, 2), bits)


def test_act_absmax8_hand_computed_per_sample():
    x = torch.tensor([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]], requires_grad=True)
    y = primitives.act_absmax8(x)
    # row 0: s = 127; round(127, -63.5, 31.75) = (127, -64, 32) (half to even); row 1: all zero
    scale = torch.tensor([[127.0], [1.27e7]])  # 127 / max(max|x|, 1e-5)
    expected = torch.tensor([[127.0, -64.0, 32.0], [0.0, 0.0, 0.0]]) / scale
    assert torch.allclose(y.detach(), expected, rtol=0, atol=1e-7)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_act_absmax8_has_at_most_256_levels_per_sample():
    x = torch.randn(4, 4096)
    y = primitives.act_absmax8(x)
    for row in y:
        assert row.unique().numel() <= 256


def test_act_ternary_threshold():
    x = torch.tensor([[1.0, -0.04, 0.2, -3.0]], requires_grad=True)  # t = 0.05 * 1.06 = 0.053
    y = primitives.act_ternary_threshold(x)
    assert torch.equal(y.detach(), torch.tensor([[1.0, 0.0, 1.0, -1.0]]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_ternary_threshold_codes_rows_are_minus_a_zero_a():
    w = torch.randn(32, 100)
    codes, alpha = primitives.ternary_threshold_codes(w)
    assert alpha.shape == (32, 1)
    wq = codes * alpha
    for r in range(32):
        assert set(wq[r].unique().tolist()) <= {-alpha[r].item(), 0.0, alpha[r].item()}


def test_ternary_threshold_codes_hand_computed():
    w = torch.tensor([[1.0, 1.0, 1.1, 5.0], [2.0, 2.0, 2.0, 2.0]])
    # row 0: mean 2.025, W_c = (-1.025, -1.025, -0.925, 2.975); t = 0.15 * 1.4875 = 0.223,
    # so every code is non-zero and alpha = mean |W_c| = 1.4875
    codes, alpha = primitives.ternary_threshold_codes(w)
    assert torch.equal(codes, torch.tensor([[-1.0, -1.0, -1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(alpha, torch.tensor([[1.4875], [0.0]]))  # row 1: count clamped at 1


def test_bitnet158_codes_hand_computed():
    w = torch.tensor([[0.4, -0.1], [0.9, -0.6]])  # gamma = mean|W| = 0.5
    codes, gamma = primitives.absmean_ternary_codes(w)
    assert torch.allclose(gamma, torch.tensor(0.5))
    # W / 0.5 = (0.8, -0.2, 1.8, -1.2) -> round (1, 0, 2, -1) -> clip (1, 0, 1, -1)
    assert torch.equal(codes, torch.tensor([[1.0, 0.0], [1.0, -1.0]]))


def test_quantized_weight_dequantize():
    qw = QuantizedWeight(torch.tensor([[1, -2]], dtype=torch.int8), torch.tensor([[0.5]]), 3)
    assert torch.equal(qw.dequantize(), torch.tensor([[0.5, -1.0]]))

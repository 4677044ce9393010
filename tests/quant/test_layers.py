import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qmoe.quant.layers import (
    BitLinear,
    BitNet158Linear,
    PreNormLinear,
    QuantLinear,
    TernaryReferenceLinear,
    freeze_,
)

QUANT_LAYERS = {
    "w1a8": functools.partial(BitLinear, weight_bits=1),
    "w2a8": functools.partial(BitLinear, weight_bits=2),
    "w4a8": functools.partial(BitLinear, weight_bits=4),
    "w8a8": functools.partial(BitLinear, weight_bits=8),
    "ternary_reference": TernaryReferenceLinear,
    "bitnet158": BitNet158Linear,
}


def _layer(name, in_features=48, out_features=24, seed=0):
    torch.manual_seed(seed)
    layer = QUANT_LAYERS[name](in_features, out_features)
    with torch.no_grad():  # non-trivial LayerNorm and bias, so copies must carry them
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.uniform_(-0.1, 0.1)
        layer.bias.uniform_(-0.1, 0.1)
    return layer


def test_prenorm_linear_is_layernorm_then_linear():
    torch.manual_seed(0)
    q16 = PreNormLinear(12, 5)
    ref = nn.Sequential(nn.LayerNorm(12), nn.Linear(12, 5))
    ref[0].load_state_dict(q16.norm.state_dict())
    ref[1].load_state_dict({"weight": q16.weight, "bias": q16.bias})
    x = torch.randn(7, 12)
    assert torch.equal(q16(x), ref(x))


@pytest.mark.parametrize("cls", [PreNormLinear, *QUANT_LAYERS.values()])
def test_xavier_uniform_weights_and_zero_bias(cls):
    torch.manual_seed(0)
    layer = cls(200, 100)
    bound = math.sqrt(6 / 300)
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
    assert torch.equal(layer.bias, torch.zeros(100))
    assert isinstance(layer, nn.Linear)


@pytest.mark.parametrize("name", QUANT_LAYERS)
def test_quantized_weight_is_exactly_the_forward_weight(name):
    layer = _layer(name)
    qw = layer.quantized_weight()
    assert qw.codes.dtype == torch.int8 and qw.codes.shape == (24, 48)
    assert qw.scale.shape in {(), (24, 1)}
    assert torch.equal(qw.dequantize(), layer.forward_weight().detach())
    x = torch.randn(9, 48)
    manual = F.linear(layer.quantize_input(layer.norm(x)), qw.dequantize(), layer.bias)
    assert torch.equal(layer(x), manual)


@pytest.mark.parametrize("name", QUANT_LAYERS)
def test_from_quantized_round_trip_gives_identical_outputs(name):
    layer = _layer(name)
    qw = layer.quantized_weight()
    twin = type(layer).from_quantized(qw, bias=layer.bias, norm=layer.norm, **layer.init_kwargs())
    x = torch.randn(9, 48)
    assert torch.equal(twin(x), layer(x))
    again = twin.quantized_weight()
    assert torch.equal(again.codes, qw.codes) and torch.equal(again.scale, qw.scale)
    assert again.bits == qw.bits


@pytest.mark.parametrize(
    "name,max_levels,bits", [("w1a8", 2, 1), ("w2a8", 3, 2), ("w4a8", 15, 4), ("w8a8", 255, 8)]
)
def test_bitlinear_weight_levels(name, max_levels, bits):
    layer = _layer(name, 256, 128)
    w = layer.forward_weight().detach()
    assert w.unique().numel() <= max_levels
    qw = layer.quantized_weight()
    assert qw.bits == bits
    if bits == 2:  # dead zone: only {-s, 0, +s}
        s = qw.scale.item()
        assert set(w.unique().tolist()) == {-s, 0.0, s}


@pytest.mark.parametrize("name", ["ternary_reference", "bitnet158"])
def test_ternary_layers_have_three_values_per_row(name):
    layer = _layer(name)
    qw = layer.quantized_weight()
    assert set(qw.codes.unique().tolist()) <= {-1, 0, 1} and qw.bits == 2
    w = layer.forward_weight().detach()
    scale = qw.scale.expand(24, 1)
    for r in range(24):
        a = scale[r].item()
        assert set(w[r].unique().tolist()) <= {-a, 0.0, a}


def test_ternary_reference_activations_are_unscaled_ternary():
    layer = _layer("ternary_reference")
    a = layer.quantize_input(layer.norm(torch.randn(5, 48)))
    assert set(a.unique().tolist()) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("name", QUANT_LAYERS)
def test_ste_weight_gradient_is_that_of_the_quantised_weight(name):
    """dL/dW equals dL/dW_q: the whole weight quantiser is the identity backward."""
    layer = _layer(name)
    x = torch.randn(9, 48)
    g = torch.randn(9, 24)
    (layer(x) * g).sum().backward()
    x_q = layer.quantize_input(layer.norm(x)).detach()  # (b, in)
    assert torch.allclose(layer.weight.grad, g.T @ x_q, atol=1e-5)
    assert torch.allclose(layer.bias.grad, g.sum(dim=0), atol=1e-5)


@pytest.mark.parametrize("name", QUANT_LAYERS)
def test_ste_input_gradient_treats_the_activation_quantiser_as_identity(name):
    layer = _layer(name)
    x = torch.randn(9, 48, requires_grad=True)
    g = torch.randn(9, 24)
    (layer(x) * g).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    w_q = layer.forward_weight().detach()
    (F.linear(layer.norm(x2), w_q, layer.bias) * g).sum().backward()  # quantiser removed
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)


def test_bitlinear_rejects_unsupported_bits():
    with pytest.raises(ValueError, match=r"^weight bits 16 not supported; use 1..8$"):
        BitLinear(4, 4, weight_bits=16)


def test_state_dict_of_training_layer_has_no_frozen_buffers():
    layer = _layer("w4a8")
    assert sorted(layer.state_dict()) == ["bias", "norm.bias", "norm.weight", "weight"]


def test_freeze_swaps_every_quantised_layer_and_keeps_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(
        _layer("w4a8", 48, 24), nn.ReLU(), _layer("ternary_reference", 24, 24), nn.Linear(24, 3)
    )
    x = torch.randn(5, 48)
    ref = model(x)
    frozen = freeze_(model)
    quant_layers = [m for m in frozen.modules() if isinstance(m, QuantLinear)]
    assert len(quant_layers) == 2 and all(m.frozen_codes is not None for m in quant_layers)
    assert all(not m.weight.requires_grad for m in quant_layers)
    assert torch.equal(frozen(x), ref)
    assert freeze_(frozen) is frozen
    single = _layer("bitnet158")
    assert freeze_(single).frozen_codes is not None

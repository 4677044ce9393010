import pytest
import torch
from torch import nn

from qmoe import models
from qmoe.quant import ptq
from qmoe.quant.layers import BitLinear
from qmoe.variants import resolve

MLP = models.MLPConfig(in_dim=64, num_classes=10, hidden_sizes=(48, 32), dropout=0.1)


class Wrapper(nn.Module):
    """Stand-in for the lead's z-score wrapper: the network sits one level down."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("shift", torch.full((64,), 0.5))

    def forward(self, x):
        return self.net(x - self.shift)


def _fp32_net(kind: dict, seed=0):
    torch.manual_seed(seed)
    variants = {"v": kind}
    cfg = resolve("v", variants, ())
    return models.build(cfg, MLP), cfg


def test_select_engine_prefers_x86_family():
    engine = ptq.select_engine("auto")
    assert engine in ptq.ENGINE_PREFERENCE
    assert torch.backends.quantized.engine == engine
    with pytest.raises(RuntimeError, match="not supported here"):
        ptq.select_engine("no_such_engine")


def test_dynamic_int8_swaps_every_linear_and_stays_close_to_fp32():
    net, _ = _fp32_net({"kind": "fp32"})
    x = torch.randn(32, 64)
    ref = net.eval()(x)
    q = ptq.dynamic_int8(net)
    linears = [m for m in q.modules() if ptq.is_dynamic_int8(m)]
    assert len(linears) == 3
    assert not any(type(m) is nn.Linear for m in q.modules())
    assert any(isinstance(m, nn.LayerNorm) for m in q.modules())  # LayerNorm untouched
    out = q(x)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert type(net.head) is nn.Linear  # the original is not modified


def test_dynamic_int8_leaves_quantised_layer_subclasses_alone():
    seq = nn.Sequential(BitLinear(8, 4, weight_bits=4), nn.Linear(4, 2))
    q = ptq.dynamic_int8(seq)
    assert isinstance(q[0], BitLinear) and ptq.is_dynamic_int8(q[1])


def test_int8_weight_is_the_kernel_weight():
    q = ptq.dynamic_int8(nn.Sequential(nn.Linear(16, 8)))
    qw = ptq.int8_weight(q[0])
    assert qw.codes.dtype == torch.int8 and qw.codes.shape == (8, 16) and qw.bits == 8
    assert torch.equal(qw.dequantize(), q[0].weight().dequantize())
    with pytest.raises(TypeError, match="expected a dynamic int8 Linear"):
        ptq.int8_weight(nn.Linear(2, 2))


def test_deploy_ptq_inside_a_wrapper():
    net, cfg = _fp32_net({"kind": "ptq_int8", "engine": "auto"})
    wrapped = Wrapper(net)
    x = torch.randn(16, 64)
    ref = wrapped.eval()(x)
    deployed = models.deploy(wrapped, cfg)
    assert not deployed.training
    assert sum(ptq.is_dynamic_int8(m) for m in deployed.modules()) == 3
    assert torch.allclose(deployed(x), ref, atol=0.05 * ref.abs().max().item())
    with pytest.raises(ValueError, match="already deployed"):
        models.deploy(deployed, cfg)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_deploy_half_casts_weights_and_activations(dtype):
    net, cfg = _fp32_net({"kind": "half", "dtype": dtype})
    wrapped = Wrapper(net)
    x = torch.randn(16, 64)
    ref = wrapped.eval()(x)
    deployed = models.deploy(wrapped, cfg)
    torch_dtype = ptq.HALF_DTYPES[dtype]
    assert {p.dtype for p in deployed.net.parameters()} == {torch_dtype}
    assert deployed.shift.dtype == torch.float32  # the wrapper stays FP32
    seen = []
    first = deployed.net.body[0]
    hook = first.register_forward_hook(lambda m, i, o: seen.append((i[0].dtype, o.dtype)))
    out = deployed(x)
    hook.remove()
    assert seen == [(torch_dtype, torch_dtype)]  # activations really in half
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=0.05 * ref.abs().max().item())


def test_to_half_rejects_other_dtypes():
    with pytest.raises(ValueError, match="half dtype"):
        ptq.to_half(nn.Linear(2, 2), torch.float64)

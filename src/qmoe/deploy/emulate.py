"""The frozen torch model run with the deployment's activation arithmetic, for the logits check
(qmoe.deploy.verify): MatMulNBits at accuracy_level 4 quantises activations to int8 per block of
`block_size` (training: per sample), and the int8 layers quantise activations per call to 7-bit
unsigned codes (qmoe.deploy.graph.uint7_quantize). Everything else is the torch forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qmoe.deploy.graph import ACT_LEVELS
from qmoe.moe import curiosity
from qmoe.moe.layer import MoE
from qmoe.moe.router import top_k
from qmoe.quant import ptq
from qmoe.quant.layers import PreNormLinear, QuantLinear, TernaryReferenceLinear


def act_absmax8_blocks(x: Tensor, block: int) -> Tensor:
    """MatMulNBits accuracy_level 4 activations: int8 absmax per block of `block` along the last
    dim (the last block padded with zeros). x (b, k) -> (b, k) fake-quantised."""
    b, k = x.shape
    pad = -k % block
    xp = F.pad(x, (0, pad)).view(b, -1, block)  # (b, nb, block)
    s = xp.abs().amax(dim=-1, keepdim=True) / 127  # (b, nb, 1)
    q = torch.where(s > 0, (xp / s.clamp(min=1e-30)).round().clamp(-127, 127), 0.0)
    return (q * s).view(b, -1)[:, :k]


def act_uint7_dynamic(x: Tensor, rows: bool) -> Tensor:
    """qmoe.deploy.graph.uint7_quantize, fake-quantised: one scale for the whole tensor x (b, k),
    as in one call on the batch; `rows`: one per row, as in batch-1 calls."""
    dims = {"dim": 1, "keepdim": True} if rows else {}
    lo, hi = x.amin(**dims).clamp(max=0), x.amax(**dims).clamp(min=0)
    s = ((hi - lo) / ACT_LEVELS).clamp(min=1e-30)
    zp = (-lo / s).round().clamp(0, ACT_LEVELS)
    return ((x / s).round() + zp).clamp(0, 255).sub(zp).mul(s)  # QuantizeLinear saturates at 255


def _emulate_module(m: nn.Module, h: Tensor, block: int, rows: bool) -> Tensor:
    if isinstance(m, (nn.Dropout, nn.Identity)):
        return h
    if isinstance(m, nn.ReLU):
        return F.relu(h)
    if isinstance(m, nn.LayerNorm):
        return F.layer_norm(h, m.normalized_shape, m.weight.float(), m.bias.float(), m.eps)
    if ptq.is_dynamic_int8(m):
        return F.linear(act_uint7_dynamic(h, rows), ptq.int8_weight(m).dequantize(), m.bias())
    if isinstance(m, PreNormLinear):
        n = F.layer_norm(h, m.norm.normalized_shape, m.norm.weight, m.norm.bias, m.norm.eps)
        if not isinstance(m, QuantLinear):
            return F.linear(n, m.weight, m.bias)
        a = (
            m.quantize_input(n)
            if isinstance(m, TernaryReferenceLinear)
            else act_absmax8_blocks(n, block)
        )
        return F.linear(a, m.quantized_weight().dequantize(), m.bias)
    if type(m) is nn.Linear:
        return F.linear(h, m.weight.float(), None if m.bias is None else m.bias.float())
    raise TypeError(f"no emulation for {type(m).__name__}")


def emulate_mlp(mlp: nn.Module, x: Tensor, block: int, rows: bool = False) -> Tensor:
    """qmoe.models.MLP on standardised x (b, d) with the deployment's arithmetic -> (b, c)."""
    h = x.float()  # fp16 graphs: ONNX Runtime CPU upcasts float16 weights, the input stays float32
    for m in [*mlp.body, mlp.head]:
        h = _emulate_module(m, h, block, rows)
    return h.float()


def _routing(net: MoE, xs: Tensor) -> tuple[Tensor, Tensor]:
    """(gates (b, k), experts (b, k)) exactly as MoE.forward routes in eval mode."""
    probs = net.router(xs).softmax(dim=-1)
    if net.strategy is not None:
        probs = net.strategy(probs, net.uncertainty(xs))
    return top_k(probs, net.k)


@torch.inference_mode()
def emulate(
    model: nn.Module, x: Tensor, block: int, rows: bool = False, clip: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """Standardized model on raw x (b, d) -> (logits (b, c), top-1 expert (b,) or None), as one
    call on the batch, or (`rows`) as one batch-1 call per row; `clip` (d,): z-scores clipped to
    [-clip, clip] first. An MoE routes as the torch model does (fp32 router, banked MC passes)
    and mixes emulated experts."""
    xs = (x - model.norm_mean) / model.norm_std
    if clip is not None:
        xs = torch.minimum(torch.maximum(xs, -clip), clip)
    net = model.net.eval()
    if not isinstance(net, MoE):
        return emulate_mlp(net, xs, block, rows), None
    if rows and isinstance(net.strategy, curiosity.EntropyRescale):  # u normalised per batch
        parts = [_routing(net, xs[i : i + 1]) for i in range(len(xs))]
        gates, index = (torch.cat(p) for p in zip(*parts))
    else:
        gates, index = _routing(net, xs)  # (b, k) x 2
    each = torch.stack([emulate_mlp(e, xs, block, rows) for e in net.experts], dim=1)  # (b, e, c)
    picked = each.gather(1, index[..., None].expand(-1, -1, each.shape[-1]))  # (b, k, c)
    return (gates[..., None] * picked).sum(dim=1) / net.k, index[:, 0]

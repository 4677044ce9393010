"""Every artefact is checked at export: its integer codes are the trained model's, and its logits
match the frozen torch model within a stated tolerance; otherwise it is refused, not timed.

Logits are compared with the frozen torch model evaluated with the deployment's activation
arithmetic (`emulate`): MatMulNBits at accuracy_level 4 quantises activations to int8 per block of
`block_size` (training: per sample), and ONNX's DynamicQuantizeLinear uses the full uint8 range
(torch's fbgemm dynamic int8: 7 bits, reduce_range). Everything else is the torch forward.
Bound: max |onnx - emulated| <= atol + rtol * max |emulated| (fp16 graphs: fp16_rtol), on the
test fold as one batch and as batch-1 calls. The gap to the training form itself (the torch model
as trained and scored) is reported beside it, never hidden: `training_max_abs_diff`,
`argmax_agreement`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qmoe.deploy import nbits
from qmoe.deploy.export import Exported, WeightRecord
from qmoe.deploy.runtime import run, run_rows
from qmoe.io import InputError, require
from qmoe.moe.layer import MoE
from qmoe.quant import ptq
from qmoe.quant.layers import PreNormLinear, QuantLinear, TernaryReferenceLinear


@dataclass(frozen=True)
class CheckConfig:
    """params.yaml `export.check`: the stated tolerance of the logits check."""

    atol: float
    rtol: float
    fp16_rtol: float
    min_routing_agreement: float   # MoE: share of samples routed alike (near-ties may differ)

    def __post_init__(self) -> None:
        for name in ("atol", "rtol", "fp16_rtol"):
            require(getattr(self, name) >= 0, f"export.check.{name}", "must be >= 0")
        require(0.0 < self.min_routing_agreement <= 1.0, "export.check.min_routing_agreement",
                f"{self.min_routing_agreement} not in (0, 1]")


class ArtefactRefused(InputError):
    """An artefact whose codes or logits disagree with its checkpoint; names variant, fold, seed."""


class Check(NamedTuple):
    max_abs_diff: float            # onnx vs emulated frozen torch model, worst of both batchings
    bound: float                   # the tolerance it had to meet
    training_max_abs_diff: float   # onnx vs the torch model as trained and scored (batch 1)
    argmax_agreement: float        # share of test samples with the same predicted class
    routing_agreement: float       # MoE: share routed to the same top-1 expert (1.0 otherwise)
    layers_checked: int            # quantised layers whose codes and scales were compared


# --- integer codes ------------------------------------------------------------------------------


def _initializers(graph: onnx.GraphProto, out: dict[str, onnx.TensorProto]) -> dict:
    """Every initialiser of the model, subgraphs (If branches) included, by name."""
    for t in graph.initializer:
        out[t.name] = t
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _initializers(attr.g, out)
    return out


def _stored(rec: WeightRecord, inits: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes (out, in) int8, scales (out, blocks) or ()) as the artefact holds them."""
    w = onnx.numpy_helper.to_array(inits[rec.weight_name])
    s = onnx.numpy_helper.to_array(inits[rec.scale_name])
    if rec.op == "MatMulInteger":
        return w.T.astype(np.int8), s
    blob = nbits.NBitsWeight(w, s, rec.bits, w.shape[2] * 8 // rec.bits, k, w.shape[0])
    return nbits.unpack(blob), nbits.row_scales(blob)


def check_codes(exported: Exported, context: str) -> int:
    """Refuse unless every quantised layer's stored codes and scales equal the torch model's."""
    inits = _initializers(exported.proto.graph, {})
    for rec in exported.weights:
        codes, scales = _stored(rec, inits, rec.codes.shape[1])
        if codes.shape != rec.codes.shape or not np.array_equal(codes, rec.codes):
            raise ArtefactRefused(f"{context}: {rec.path}: the artefact's {rec.op} codes differ "
                                  f"from the trained model's ({int((codes != rec.codes).sum())} "
                                  "entries)")
        want = np.broadcast_to(rec.scale.reshape(-1, 1) if rec.scale.ndim else rec.scale,
                               scales.shape)
        if not np.array_equal(scales, want):
            raise ArtefactRefused(f"{context}: {rec.path}: the artefact's {rec.op} scales differ "
                                  "from the trained model's")
    return len(exported.weights)


# --- the deployment's arithmetic in torch -------------------------------------------------------


def act_absmax8_blocks(x: Tensor, block: int) -> Tensor:
    """MatMulNBits accuracy_level 4 activations: int8 absmax per block of `block` along the last
    dim (the last block padded with zeros). x (b, k) -> (b, k) fake-quantised."""
    b, k = x.shape
    pad = -k % block
    xp = F.pad(x, (0, pad)).view(b, -1, block)                                # (b, nb, block)
    s = xp.abs().amax(dim=-1, keepdim=True) / 127                             # (b, nb, 1)
    q = torch.where(s > 0, (xp / s.clamp(min=1e-30)).round().clamp(-127, 127), 0.0)
    return (q * s).view(b, -1)[:, :k]


def act_uint8_dynamic(x: Tensor) -> Tensor:
    """ONNX DynamicQuantizeLinear (per tensor, uint8, range including 0), fake-quantised."""
    lo, hi = x.min().clamp(max=0), x.max().clamp(min=0)
    s = (hi - lo) / 255
    if s == 0:
        return torch.zeros_like(x)
    zp = (-lo / s).round().clamp(0, 255)
    return ((x / s).round() + zp).clamp(0, 255).sub(zp).mul(s)


def _emulate_module(m: nn.Module, h: Tensor, block: int) -> Tensor:
    if isinstance(m, (nn.Dropout, nn.Identity)):
        return h
    if isinstance(m, nn.ReLU):
        return F.relu(h)
    if isinstance(m, nn.LayerNorm):
        return F.layer_norm(h, m.normalized_shape, m.weight.float(), m.bias.float(), m.eps)
    if ptq.is_dynamic_int8(m):
        qw = ptq.int8_weight(m)
        return F.linear(act_uint8_dynamic(h), qw.dequantize(), m.bias())
    if isinstance(m, PreNormLinear):
        n = F.layer_norm(h, m.norm.normalized_shape, m.norm.weight, m.norm.bias, m.norm.eps)
        if not isinstance(m, QuantLinear):
            return F.linear(n, m.weight, m.bias)
        a = m.quantize_input(n) if isinstance(m, TernaryReferenceLinear) else act_absmax8_blocks(n, block)
        return F.linear(a, m.quantized_weight().dequantize(), m.bias)
    if type(m) is nn.Linear:
        return F.linear(h, m.weight.float(), None if m.bias is None else m.bias.float())
    raise TypeError(f"no emulation for {type(m).__name__}")


def emulate_mlp(mlp: nn.Module, x: Tensor, block: int) -> Tensor:
    """qmoe.models.MLP on standardised x (b, d) with the deployment's arithmetic -> (b, c)."""
    h = x.float()   # fp16 graphs: ONNX Runtime CPU upcasts float16 weights, the input stays float32
    for m in [*mlp.body, mlp.head]:
        h = _emulate_module(m, h, block)
    return h.float()


@torch.inference_mode()
def emulate(model: nn.Module, x: Tensor, block: int) -> tuple[Tensor, Tensor | None]:
    """Standardized model on raw x (b, d) -> (logits (b, c), top-1 expert (b,) or None). An MoE
    routes as the torch model does (fp32 router, banked MC passes) and mixes emulated experts."""
    xs = (x - model.norm_mean) / model.norm_std
    net = model.net
    if not isinstance(net, MoE):
        return emulate_mlp(net, xs, block), None
    out = net.eval()(xs)
    gates = out.routing_probs.gather(1, out.expert_index)                         # (b, k)
    each = torch.stack([emulate_mlp(e, xs, block) for e in net.experts], dim=1)   # (b, e, c)
    picked = each.gather(1, out.expert_index[..., None].expand(-1, -1, each.shape[-1]))
    return (gates[..., None] * picked).sum(dim=1) / net.k, out.expert_index[:, 0]


@torch.inference_mode()
def _torch_logits(model: nn.Module, x: Tensor) -> Tensor:
    out = model.eval()(x)
    return (out if isinstance(out, Tensor) else out.logits).float()


# --- the check ----------------------------------------------------------------------------------


def _compare(onnx_out: dict, emu: tuple[Tensor, Tensor | None], bound_of) -> tuple[float, float, float]:
    """(max |diff| on rows routed alike, its bound, routing agreement)."""
    logits, expert = emu[0].numpy(), emu[1]
    same = np.ones(len(logits), bool) if expert is None else onnx_out["expert"] == expert.numpy()
    diff = np.abs(onnx_out["logits"][same] - logits[same]).max(initial=0.0)
    return float(diff), bound_of(logits), float(same.mean())


class Verified(NamedTuple):
    check: Check
    deployed_pred: np.ndarray    # (n,) classes predicted by the artefact, batch-1 calls
    torch_pred: np.ndarray       # (n,) classes predicted by the torch model, batch-1 calls


def verify(model: nn.Module, exported: Exported, sess, x: np.ndarray, block: int,
           cfg: CheckConfig, context: str) -> Verified:
    """Codes, then logits on x (n, d) raw test inputs, as one batch and as batch-1 calls."""
    layers = check_codes(exported, context)
    rtol = cfg.fp16_rtol if "fp16" in exported.artefact else cfg.rtol
    bound_of = lambda ref: cfg.atol + rtol * float(np.abs(ref).max())      # noqa: E731
    xt = torch.from_numpy(x)
    batch = _compare(run(sess, x), emulate(model, xt, block), bound_of)
    rows = run_rows(sess, x)
    single = _compare(rows, _stack_rows(model, xt, block), bound_of)
    worst, bound = max(batch[0], single[0]), min(batch[1], single[1])
    routing = min(batch[2], single[2])
    if not math.isfinite(worst) or worst > bound:
        raise ArtefactRefused(f"{context}: artefact logits differ from the frozen torch model by "
                              f"{worst:.3g} > tolerance {bound:.3g}")
    if routing < cfg.min_routing_agreement:
        raise ArtefactRefused(f"{context}: artefact routes {routing:.1%} of samples like the torch "
                              f"model (< {cfg.min_routing_agreement:.1%})")
    trained = np.concatenate([_torch_logits(model, xt[i:i + 1]).numpy() for i in range(len(x))])
    deployed_pred, torch_pred = rows["logits"].argmax(1), trained.argmax(1)
    check = Check(worst, bound, float(np.abs(rows["logits"] - trained).max()),
                  float((deployed_pred == torch_pred).mean()), routing, layers)
    return Verified(check, deployed_pred, torch_pred)


def _stack_rows(model: nn.Module, x: Tensor, block: int) -> tuple[Tensor, Tensor | None]:
    parts = [emulate(model, x[i:i + 1], block) for i in range(len(x))]
    expert = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
    return torch.cat([p[0] for p in parts]), expert

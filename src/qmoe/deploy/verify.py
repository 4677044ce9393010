"""Every artefact is checked at export: its integer codes are the trained model's, and its logits
match the frozen torch model within a stated tolerance; otherwise it is refused, not timed.

Logits are compared with the frozen torch model evaluated with the deployment's activation
arithmetic (`emulate`): MatMulNBits at accuracy_level 4 quantises activations to int8 per block of
`block_size` (training: per sample), and the int8 layers quantise activations per call to 7-bit
unsigned codes (qmoe.deploy.graph.uint7_quantize). Everything else is the torch forward.
Bound: as batch-1 calls (the deployment), |onnx - emulated| <= atol + rtol * max |emulated|
(fp16 graphs: fp16_rtol) on at least `min_exact_share` of the test samples; as batch-1 calls and
as one call on the whole fold, <= loose_rtol * max |emulated| on every sample. The share exists
because the emulation is float arithmetic, not the kernel's integer one: a value within ~1e-6 of
an int8 rounding boundary, or a ternary activation at its threshold, can land on the other side
(up to ~6 % of the test samples measured on ESC-10). The batched call gets only the loose bound:
one activation scale spans the whole fold there. The gap to the training form itself (the torch
model as trained and scored) is reported beside it, never hidden: `training_max_abs_diff`,
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
from qmoe.deploy.graph import ACT_LEVELS, initializers
from qmoe.deploy.runtime import run, run_rows
from qmoe.io import InputError, require
from qmoe.moe import curiosity
from qmoe.moe.layer import MoE
from qmoe.moe.router import top_k
from qmoe.quant import ptq
from qmoe.quant.layers import PreNormLinear, QuantLinear, TernaryReferenceLinear

# Plausibility ceilings of the check's tolerances, so that a typo (1000 for 1e-3) cannot switch it
# off: logits differ by ~1e-6 from float rounding and a wrong graph moves them by a large part of
# their range, so no sound check needs an atol above 1e-2, a tight rtol above a tenth of the range
# (rtol, fp16_rtol) or a bound on every sample above half of it (loose_rtol).
TOLERANCE_CEILINGS = {"atol": 1e-2, "rtol": 0.1, "fp16_rtol": 0.1, "loose_rtol": 0.5}


@dataclass(frozen=True)
class CheckConfig:
    """params.yaml `export.check`: the stated tolerance of the logits check."""

    atol: float
    rtol: float
    fp16_rtol: float
    loose_rtol: float  # every sample, rounding-boundary flips included
    min_exact_share: float  # share of samples within atol + rtol
    min_routing_agreement: float  # MoE: share of samples routed alike (near-ties may differ)

    def __post_init__(self) -> None:
        require(
            0.0 < self.min_exact_share <= 1.0,
            "export.check.min_exact_share",
            f"{self.min_exact_share} not in (0, 1]",
        )
        for name, most in TOLERANCE_CEILINGS.items():
            value = getattr(self, name)
            require(
                0 <= value <= most,
                f"export.check.{name}",
                f"{value} not in [0, {most}]: a wider tolerance would pass a wrong graph",
            )
        require(
            0.0 < self.min_routing_agreement <= 1.0,
            "export.check.min_routing_agreement",
            f"{self.min_routing_agreement} not in (0, 1]",
        )


class ArtefactRefused(InputError):
    """An artefact whose codes or logits disagree with its checkpoint; names variant, fold, seed."""


class Check(NamedTuple):
    max_abs_diff: float  # onnx vs emulated frozen torch model, worst of both batchings
    bound: float  # atol + rtol * max |logit| (the tight tolerance)
    exact_share: float  # share of samples within `bound` (batch-1 calls)
    loose_bound: float  # loose_rtol * max |logit|: no sample may exceed it
    training_max_abs_diff: float  # onnx vs the torch model as trained and scored (batch 1)
    argmax_agreement: float  # share of test samples with the same predicted class
    routing_agreement: float  # MoE: share routed to the same top-1 expert (1.0 otherwise)
    layers_checked: int  # quantised layers whose codes and scales were compared


# --- integer codes ------------------------------------------------------------------------------


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
    inits = initializers(exported.proto.graph)
    for rec in exported.weights:
        codes, scales = _stored(rec, inits, rec.codes.shape[1])
        if codes.shape != rec.codes.shape or not np.array_equal(codes, rec.codes):
            raise ArtefactRefused(
                f"{context}: {rec.path}: the artefact's {rec.op} codes differ "
                f"from the trained model's ({int((codes != rec.codes).sum())} "
                "entries)"
            )
        want = np.broadcast_to(
            rec.scale.reshape(-1, 1) if rec.scale.ndim else rec.scale, scales.shape
        )
        if not np.array_equal(scales, want):
            raise ArtefactRefused(
                f"{context}: {rec.path}: the artefact's {rec.op} scales differ "
                "from the trained model's"
            )
    return len(exported.weights)


# --- the deployment's arithmetic in torch -------------------------------------------------------


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


@torch.inference_mode()
def _torch_logits(model: nn.Module, x: Tensor) -> Tensor:
    out = model.eval()(x)
    return (out if isinstance(out, Tensor) else out.logits).float()


# --- the check ----------------------------------------------------------------------------------


class _Diff(NamedTuple):
    worst: float  # max |diff| over samples routed alike
    exact: float  # share of those within the tight bound
    routing: float  # share routed alike


def _compare(onnx_out: dict, emu: tuple[Tensor, Tensor | None], bound: float) -> _Diff:
    logits, expert = emu[0].numpy(), emu[1]
    same = np.ones(len(logits), bool) if expert is None else onnx_out["expert"] == expert.numpy()
    diff = np.abs(onnx_out["logits"][same] - logits[same]).max(axis=1, initial=0.0)  # (n_same,)
    return _Diff(
        float(diff.max(initial=0.0)),
        float((diff <= bound).mean()) if len(diff) else 0.0,
        float(same.mean()),
    )


class Verified(NamedTuple):
    check: Check
    deployed_pred: np.ndarray  # (n,) classes predicted by the artefact, batch-1 calls
    torch_pred: np.ndarray  # (n,) classes predicted by the torch model, batch-1 calls
    deployed_expert: np.ndarray | None  # (n,) MoE: top-1 expert of each batch-1 call


def verify(
    model: nn.Module,
    exported: Exported,
    sess,
    x: np.ndarray,
    block: int,
    cfg: CheckConfig,
    context: str,
    clip: np.ndarray | None = None,
) -> Verified:
    """Codes, then logits on x (n, d) raw test inputs, as one batch and as batch-1 calls.
    `clip` (d,): the artefact clips z-scores to [-clip, clip] (the z-clipped int8 artefact)."""
    layers = check_codes(exported, context)
    rtol = cfg.fp16_rtol if "fp16" in exported.artefact else cfg.rtol
    xt = torch.from_numpy(x)
    zclip = None if clip is None else torch.from_numpy(clip.astype(np.float32))
    emu_batch = emulate(model, xt, block, clip=zclip)
    scale = float(np.abs(emu_batch[0].numpy()).max())
    bound, loose = cfg.atol + rtol * scale, cfg.loose_rtol * scale
    rows = run_rows(sess, x)
    diffs = [
        _compare(run(sess, x), emu_batch, bound),
        _compare(rows, emulate(model, xt, block, rows=True, clip=zclip), bound),
    ]
    # the tight share is judged on the batch-1 calls (the deployment); one batched call must meet
    # the loose bound (one activation scale over the whole fold)
    worst, exact = max(d.worst for d in diffs), diffs[1].exact
    routing = min(d.routing for d in diffs)
    if not math.isfinite(worst) or worst > loose:
        raise ArtefactRefused(
            f"{context}: artefact logits differ from the frozen torch model by "
            f"{worst:.3g} > tolerance {loose:.3g} (loose_rtol)"
        )
    if exact < cfg.min_exact_share:
        raise ArtefactRefused(
            f"{context}: artefact logits differ from the frozen torch model: "
            f"{exact:.1%} of test samples within {bound:.3g}, need "
            f"{cfg.min_exact_share:.0%} (max diff {worst:.3g})"
        )
    if routing < cfg.min_routing_agreement:
        raise ArtefactRefused(
            f"{context}: artefact routes {routing:.1%} of samples like the torch "
            f"model (< {cfg.min_routing_agreement:.1%})"
        )
    if zclip is not None:  # the torch model itself has no clip: give it clipped inputs
        xt = torch.clamp(
            xt, model.norm_mean - zclip * model.norm_std, model.norm_mean + zclip * model.norm_std
        )
    trained = np.concatenate([_torch_logits(model, xt[i : i + 1]).numpy() for i in range(len(x))])
    deployed_pred, torch_pred = rows["logits"].argmax(1), trained.argmax(1)
    check = Check(
        worst,
        bound,
        exact,
        loose,
        float(np.abs(rows["logits"] - trained).max()),
        float((deployed_pred == torch_pred).mean()),
        routing,
        layers,
    )
    return Verified(check, deployed_pred, torch_pred, rows.get("expert"))

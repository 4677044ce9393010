"""A deployed torch classifier (qmoe.training.artefacts.Standardized) -> its ONNX artefact.

Driven by the module tree, layer by layer, so the graph is the model that was trained and scored:

| torch module (as deployed)            | ONNX                                                     |
|---------------------------------------|----------------------------------------------------------|
| nn.Linear float32 / float16           | MatMul + Add in that dtype                               |
| PreNormLinear (q16_reference)         | LayerNormalization, MatMul + Add                         |
| BitLinear k = 2, 4, 8                 | LayerNormalization, MatMulNBits bits k                   |
| BitLinear k = 1 (sign codes)          | LayerNormalization, MatMulNBits bits 2 holding +-1 codes |
| BitNet158Linear (ternary codes)       | LayerNormalization, MatMulNBits bits 2 holding {-1,0,1}  |
| TernaryReferenceLinear                | LayerNormalization, threshold-ternary ops, MatMulNBits 2 |
| dynamic int8 Linear (ptq_int8)        | 7-bit QuantizeLinear, MatMulInteger (int8 codes), scale  |
| LayerNorm, ReLU, Dropout (eval)       | LayerNormalization, Relu, nothing                        |
| MoE                                   | router, curiosity, TopK, one `If` per expert (moe_graph) |

MatMulNBits carries the layer's own integer codes and its trained scale in every block; with
`accuracy_level` 4 the kernel quantises activations to int8 per block of `block_size` (training:
per sample), which is the one arithmetic difference from training (qmoe.deploy.emulate emulates it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import onnx
import torch
from torch import nn

from qmoe.deploy import graph as G
from qmoe.deploy import nbits
from qmoe.io import InputError, require
from qmoe.moe.layer import MoE
from qmoe.quant import ptq
from qmoe.quant.layers import (
    BitLinear,
    BitNet158Linear,
    PreNormLinear,
    QuantLinear,
    TernaryReferenceLinear,
)


@dataclass(frozen=True)
class ExportConfig:
    """params.yaml `export` (graph form): MatMulNBits block size and accuracy level."""

    block_size: int  # MatMulNBits block along K; its activations are quantised per block
    accuracy_level: int  # 4 = int8 activations, int32 accumulation (0 = float compute)

    def __post_init__(self) -> None:
        require(
            self.block_size in nbits.SUPPORTED_BLOCKS,
            "export.block_size",
            f"{self.block_size} not in {list(nbits.SUPPORTED_BLOCKS)}",
        )
        require(
            self.accuracy_level in (0, 1, 2, 3, 4),
            "export.accuracy_level",
            f"{self.accuracy_level} not in [0, 4]",
        )


class ExportError(InputError):
    """A module with no ONNX form, or a bit-width with no kernel; names the module."""


class WeightRecord(NamedTuple):
    """One quantised layer: where its integer weight sits in the graph, and what it must hold."""

    path: str  # module path in the torch model, e.g. net.body.0
    op: str  # MatMulNBits | MatMulInteger
    codes: np.ndarray  # (out, in) int8, the torch model's codes
    scale: np.ndarray  # () or (out, 1) float32, the torch model's scale(s)
    weight_name: str  # initialiser holding the codes (blob or int8 matrix)
    scale_name: str  # initialiser holding the scale(s)
    bits: int  # container bits in the graph (2, 4, 8)


class Exported(NamedTuple):
    proto: onnx.ModelProto
    artefact: str  # what the artefact is, in words
    half: bool  # a float16 graph (the logits check allows fp16 rounding)
    weights: list[WeightRecord]  # every quantised layer, in graph order
    outputs: tuple[str, ...]  # logits [, expert, uncertainty]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class _Emitter:
    """Writes modules into a Graph and records their integer weights."""

    def __init__(self, cfg: ExportConfig):
        self.cfg = cfg
        self.weights: list[WeightRecord] = []
        self.kinds: set[str] = set()
        self.half = False  # some MLP computes in float16

    def mlp(self, g: G.Graph, x: str, mlp: nn.Module, path: str) -> str:
        """MLP (b, d) -> logits (b, c) float32 (qmoe.models.MLP: body, head, compute_dtype)."""
        dtype = getattr(mlp, "compute_dtype", torch.float32)
        if dtype not in (torch.float32, torch.float16):
            raise ExportError(
                f"{path}: compute dtype {dtype} has no ONNX Runtime CPU form here; "
                "supported: float32, float16"
            )
        h = G.cast(g, x, G.FLOAT16) if dtype == torch.float16 else x
        if dtype == torch.float16:
            self.kinds.add("fp16 weights and activations (float16 graph)")
            self.half = True
        for name, module in mlp.body.named_children():
            h = self.module(g, h, module, f"{path}.body.{name}")
        h = self.module(g, h, mlp.head, f"{path}.head")
        return G.cast(g, h, G.FLOAT) if dtype == torch.float16 else h

    def module(self, g: G.Graph, x: str, m: nn.Module, path: str) -> str:
        if isinstance(m, nn.Dropout):
            return x
        if isinstance(m, nn.ReLU):
            return g.op("Relu", [x])
        if isinstance(m, nn.LayerNorm):
            return G.layer_norm(g, x, _np(m.weight), _np(m.bias), m.eps)
        if ptq.is_dynamic_int8(m):
            return self.int8(g, x, m, path)
        if isinstance(m, QuantLinear):
            return self.nbits(
                g, G.layer_norm(g, x, _np(m.norm.weight), _np(m.norm.bias), m.norm.eps), m, path
            )
        if type(m) is PreNormLinear:
            x = G.layer_norm(g, x, _np(m.norm.weight), _np(m.norm.bias), m.norm.eps)
            return G.linear(g, x, _np(m.weight), None if m.bias is None else _np(m.bias))
        if type(m) is nn.Linear:
            return G.linear(g, x, _np(m.weight), None if m.bias is None else _np(m.bias))
        raise ExportError(f"{path}: no ONNX form for {type(m).__name__}")

    def int8(self, g: G.Graph, x: str, m: nn.Module, path: str) -> str:
        qw = ptq.int8_weight(m)
        bias = m.bias()
        y, w_name, s_name = G.int8_linear(
            g, x, _np(qw.codes), float(qw.scale), None if bias is None else _np(bias)
        )
        self.weights.append(
            WeightRecord(
                path,
                "MatMulInteger",
                _np(qw.codes),
                _np(qw.scale).astype(np.float32),
                w_name,
                s_name,
                8,
            )
        )
        self.kinds.add("int8 MatMulInteger (torch PTQ codes and scales)")
        return y

    def nbits(self, g: G.Graph, x: str, m: QuantLinear, path: str) -> str:
        """x (b, k) already layer-normed -> MatMulNBits with the layer's codes and scale(s)."""
        ternary = isinstance(m, (TernaryReferenceLinear, BitNet158Linear))
        try:
            bits = nbits.container_bits(m.bits, ternary)
        except nbits.UnsupportedBits as e:
            raise ExportError(f"{path}: {e}") from None
        if isinstance(m, TernaryReferenceLinear):
            x = G.ternary_activation(g, x, m.act_threshold)
        qw = m.quantized_weight()
        codes, scale = _np(qw.codes), _np(qw.scale).astype(np.float32)
        w = nbits.pack(codes, scale, bits, self.cfg.block_size)
        y, w_name, s_name = G.matmul_nbits(
            g, x, w, None if m.bias is None else _np(m.bias), self.cfg.accuracy_level
        )
        self.weights.append(WeightRecord(path, "MatMulNBits", codes, scale, w_name, s_name, bits))
        self.kinds.add(_describe(m, bits))
        return y


def _describe(m: QuantLinear, bits: int) -> str:
    if isinstance(m, TernaryReferenceLinear):
        return f"MatMulNBits {bits}-bit holding ternary codes, threshold-ternary activation ops"
    if isinstance(m, BitNet158Linear):
        return f"MatMulNBits {bits}-bit holding ternary codes (BitNet b1.58)"
    if isinstance(m, BitLinear) and m.bits == 1:
        return f"MatMulNBits {bits}-bit holding 1-bit sign codes"
    return f"MatMulNBits {bits}-bit"


def export(model: nn.Module, cfg: ExportConfig, clip: np.ndarray | None = None) -> Exported:
    """ONNX artefact of a deployed Standardized(net): input `x` (batch, d) raw embeddings; outputs
    `logits` (batch, c) float32, and for an MoE `expert` (batch,) int64 (top-1) and, with
    curiosity, `uncertainty` (batch,) float32. `clip` (d,): z-scores clipped to [-clip, clip]
    before the network (the z-clipped int8 deployment)."""
    from qmoe.deploy import moe_graph

    net = model.net
    d = int(model.norm_mean.numel())
    g = G.Graph()
    x = G.zscore(g, "x", _np(model.norm_mean), _np(model.norm_std))
    em = _Emitter(cfg)
    if clip is not None:
        x = g.op(
            "Min",
            [
                g.op("Max", [x, g.const(-clip.astype(np.float32), "z_lo")]),
                g.const(clip.astype(np.float32), "z_hi"),
            ],
        )
        em.kinds.add("z-scores clipped to the training range")
    if isinstance(net, MoE):
        outs = moe_graph.emit(g, x, net, em)
        em.kinds.add("MoE graph: router and experts in one graph (If per expert)")
    else:
        outs = {"logits": em.mlp(g, x, net, "net")}
    if not em.kinds:
        em.kinds.add("fp32 MatMul")
    for name, value in outs.items():
        g.alias(value, name)
    types = {"logits": G.FLOAT, "expert": G.INT64, "uncertainty": G.FLOAT}
    shapes = {"logits": ["batch", _classes(net)], "expert": ["batch"], "uncertainty": ["batch"]}
    proto = G.to_model(
        g, [G.value("x", G.FLOAT, ["batch", d])], [G.value(k, types[k], shapes[k]) for k in outs]
    )
    return Exported(proto, "; ".join(sorted(em.kinds)), em.half, em.weights, tuple(outs))


def _classes(net: nn.Module) -> int:
    head = net.experts[0].head if isinstance(net, MoE) else net.head
    return int(head.out_features)

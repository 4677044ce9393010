"""ONNX graphs written with the `onnx.helper` API: a small builder and the layers the study needs.

    g = Graph()
    h = layer_norm(g, "x", gamma, beta, 1e-5)
    y = matmul_nbits(g, h, weight, bias, accuracy_level=4)       # com.microsoft MatMulNBits
    model = to_model(g, inputs=[("x", FLOAT, ["batch", 1280])], outputs=[(y, FLOAT, ["batch", 10])])

Every array is an initialiser of the graph that uses it (an `If` branch keeps its own, so ONNX
Runtime pre-packs them like the main graph's). Shapes in comments: b batch, k in, n out.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qmoe.deploy.nbits import NBitsWeight

OPSET = 17  # LayerNormalization (17), ScatterND reduction (16)
MS_DOMAIN = "com.microsoft"
IR_VERSION = 9
FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
INT64, BOOL = TensorProto.INT64, TensorProto.BOOL


class Graph:
    """Nodes and initialisers of one (sub)graph; value names are unique across the whole model."""

    def __init__(self, counter: Any = None):
        self._counter = counter if counter is not None else itertools.count()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def name(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    def const(self, array: Any, hint: str = "c") -> str:
        """An initialiser holding `array` (its numpy dtype kept)."""
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        hint: str = "",
        *,
        outputs: int = 1,
        domain: str = "",
        **attrs: Any,
    ) -> Any:
        """Append a node; returns its output name (or a list when `outputs` > 1)."""
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(
            helper.make_node(
                op_type,
                list(inputs),
                names,
                name=self.name(op_type),
                domain=domain or None,
                **attrs,
            )
        )
        return names[0] if outputs == 1 else names

    def alias(self, x: str, name: str) -> str:
        """Identity x -> `name` (graph outputs get fixed names; ONNX Runtime removes the node)."""
        self.nodes.append(helper.make_node("Identity", [x], [name], name=self.name("Identity")))
        return name

    def branch(self) -> Graph:
        """An empty subgraph (for an `If` branch) sharing this graph's names."""
        return Graph(self._counter)

    def to_graph(
        self,
        name: str,
        inputs: Sequence[onnx.ValueInfoProto],
        outputs: Sequence[onnx.ValueInfoProto],
    ) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, name, list(inputs), list(outputs), self.initializers)


def value(name: str, elem_type: int, shape: Sequence[Any] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def to_model(
    g: Graph,
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    doc: str = "",
) -> onnx.ModelProto:
    """A checked model (ONNX opset 17 + com.microsoft 1)."""
    model = helper.make_model(
        g.to_graph("qmoe", inputs, outputs),
        doc_string=doc,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="qmoe.deploy",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def initializers(graph: onnx.GraphProto, out: dict | None = None) -> dict[str, onnx.TensorProto]:
    """Every initialiser of a graph, its subgraphs' (If branches) included, by name."""
    out = {} if out is None else out
    for t in graph.initializer:
        out[t.name] = t
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                initializers(attr.g, out)
    return out


# --- layers -------------------------------------------------------------------------------------


def zscore(g: Graph, x: str, mean: np.ndarray, std: np.ndarray) -> str:
    """(x - mean) / std, as qmoe.training.artefacts.Standardized computes it. x (b, d)."""
    return g.op("Div", [g.op("Sub", [x, g.const(mean, "norm_mean")]), g.const(std, "norm_std")])


def linear(g: Graph, x: str, weight: np.ndarray, bias: np.ndarray | None) -> str:
    """x (b, k) @ weight.T + bias, weight (n, k) in its own dtype (float32 or float16)."""
    y = g.op("MatMul", [x, g.const(np.ascontiguousarray(weight.T), "w")])
    return y if bias is None else g.op("Add", [y, g.const(bias, "b")])


def layer_norm(g: Graph, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float) -> str:
    """LayerNorm over the last dim of x (b, k)."""
    return g.op(
        "LayerNormalization",
        [x, g.const(gamma, "ln_g"), g.const(beta, "ln_b")],
        axis=-1,
        epsilon=float(eps),
    )


class QuantOut(NamedTuple):
    y: str  # output value name
    weight: str  # initialiser holding the integer codes
    scale: str  # initialiser holding the scale(s)


def matmul_nbits(
    g: Graph, x: str, w: NBitsWeight, bias: np.ndarray | None, accuracy_level: int
) -> QuantOut:
    """x (b, k) @ dequantised(w).T (+ bias) with com.microsoft MatMulNBits. accuracy_level 4: the
    kernel quantises x to int8 per block of `w.block` along k and accumulates in int32."""
    blob, scales = g.const(w.blob, "nbits_b"), g.const(w.scales, "nbits_s")
    inputs = [x, blob, scales]
    if bias is not None:
        inputs += ["", "", g.const(bias.astype(np.float32), "b")]  # zero_points, g_idx, bias
    y = g.op(
        "MatMulNBits",
        inputs,
        domain=MS_DOMAIN,
        K=w.k,
        N=w.n,
        bits=w.bits,
        block_size=w.block,
        accuracy_level=accuracy_level,
    )
    return QuantOut(y, blob, scales)


# Activations of the int8 layers take 7 bits (0..127), as torch's fbgemm dynamic int8 does
# (reduce_range): ONNX Runtime's u8s8 kernel on AVX2 without VNNI sums pairs of u8 x s8 products in
# int16 with saturation (vpmaddubsw), which 8-bit activations overflow (255 * 127 * 2 > 32767).
ACT_LEVELS = 127


def uint7_quantize(g: Graph, x: str) -> tuple[str, str, str]:
    """x (b, k) float -> (codes uint8 in 0..ACT_LEVELS, scale (), zero point () uint8): asymmetric,
    one scale for the tensor (a batch-1 call: per clip), range including 0 like ONNX
    DynamicQuantizeLinear but over ACT_LEVELS steps."""
    zero, levels = g.const(np.float32(0.0), "zero"), g.const(np.float32(ACT_LEVELS), "levels")
    lo = g.op("Min", [g.op("ReduceMin", [x], keepdims=0), zero])
    hi = g.op("Max", [g.op("ReduceMax", [x], keepdims=0), zero])
    # an all-zero input has scale 0: a tiny scale quantises it to the zero point, exactly 0 after
    xs = g.op("Max", [g.op("Div", [g.op("Sub", [hi, lo]), levels]), g.const(np.float32(1e-30))])
    zp = g.op("Clip", [g.op("Round", [g.op("Div", [g.op("Neg", [lo]), xs])]), zero, levels])
    xz = g.op("Cast", [zp], to=TensorProto.UINT8)
    return g.op("QuantizeLinear", [x, xs, xz], "xq"), xs, xz


def int8_linear(
    g: Graph, x: str, codes: np.ndarray, scale: float, bias: np.ndarray | None
) -> QuantOut:
    """Dynamic int8 linear: x quantised per call to 7-bit unsigned codes (`uint7_quantize`), int8
    weight codes (n, k) with one symmetric scale, int32 MatMulInteger, then rescaled to float."""
    xq, xs, xz = uint7_quantize(g, x)
    w = g.const(np.ascontiguousarray(codes.T).astype(np.int8), "w_int8")
    s = g.const(np.float32(scale), "w_scale")
    acc = g.op("MatMulInteger", [xq, w, xz])  # (b, n) int32
    y = g.op("Mul", [g.op("Cast", [acc], to=FLOAT), g.op("Mul", [xs, s])])
    y = y if bias is None else g.op("Add", [y, g.const(bias.astype(np.float32), "b")])
    return QuantOut(y, w, s)


def ternary_activation(g: Graph, x: str, factor: float) -> str:
    """The reference ternary's activations (7.4): 0 where |x| < factor * mean_j |x_j| (per sample),
    else sign(x); x (b, k) -> (b, k) in {-1, 0, +1}."""
    a = g.op("Abs", [x])
    t = g.op(
        "Mul",
        [g.op("ReduceMean", [a], axes=[-1], keepdims=1), g.const(np.float32(factor), "act_t")],
    )  # (b, 1)
    return g.op(
        "Where", [g.op("Less", [a, t]), g.const(np.float32(0.0), "zero"), g.op("Sign", [x])]
    )


def cast(g: Graph, x: str, to: int) -> str:
    return g.op("Cast", [x], to=to)

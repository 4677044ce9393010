"""The MoE as one ONNX graph: router, curiosity and experts with no Python between them.

    router (fp32) -> probs (b, e) -> [curiosity: T MC passes as one batched call, fixed masks]
    -> TopK -> for each expert e: If(any sample chose e) then run e on exactly those rows and
    scatter-add gate * logits into the output, else pass the output through.

At batch 1 only the chosen expert's matmuls run (the other `If`s take their empty branch).
MC passes: the router's first layer runs once; its (b, 128) output is multiplied by the T fixed
masks of `Router.mask_bank` as one (T, b, 128) tensor (the torch model uses the same bank), so
u(x) depends on the sample only. Mirrors qmoe.moe.layer.MoE.forward and qmoe.moe.curiosity.
Legend: b batch, e experts, k chosen per sample, c classes, t MC passes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from torch import nn

from qmoe.deploy import graph as G
from qmoe.moe import curiosity
from qmoe.moe.layer import MoE
from qmoe.moe.router import Router


def _linear(g: G.Graph, x: str, layer: nn.Linear) -> str:
    return G.linear(g, x, layer.weight.detach().numpy(), layer.bias.detach().numpy())


def _const(g: G.Graph, value: Any, dtype: Any, hint: str = "c") -> str:
    return g.const(np.asarray(value, dtype=dtype), hint)


def router_probs(g: G.Graph, h1: str, r: Router) -> str:
    """Deterministic routing pass (eval: no dropout): h1 (b, 128) -> softmax (b, e)."""
    h2 = g.op("Relu", [_linear(g, h1, r.fc2)])
    return g.op("Softmax", [_linear(g, h2, r.out)], axis=-1)


def mc_probs(g: G.Graph, h1: str, r: Router, samples: int) -> str:
    """Softmax (t, b, e) of the t banked MC passes (the router's fixed mask bank)."""
    bank = r.mask_bank(samples)
    hb = g.op(
        "Mul",
        [
            g.op("Unsqueeze", [h1, _const(g, [0], np.int64)]),
            g.const(bank.first.numpy()[:, None, :], "mc_mask1"),
        ],
    )  # (t, b, 128)
    h2 = g.op("Relu", [_linear(g, hb, r.fc2)])  # (t, b, 64)
    if r.mc_dropout:
        h2 = g.op("Mul", [h2, g.const(bank.second.numpy()[:, None, :], "mc_mask2")])
    return g.op("Softmax", [_linear(g, h2, r.out)], axis=-1)  # (t, b, e)


def mc_uncertainty(g: G.Graph, h1: str, r: Router, samples: int) -> str:
    """u(x) (b,): sum over experts of the unbiased variance of the t banked passes' softmax."""
    p = mc_probs(g, h1, r, samples)
    dev = g.op("Sub", [p, g.op("ReduceMean", [p], axes=[0], keepdims=1)])
    ss = g.op("ReduceSum", [g.op("Mul", [dev, dev]), _const(g, [0], np.int64)], keepdims=0)
    var = g.op("Div", [ss, _const(g, samples - 1, np.float32)])  # (b, e)
    return g.op("ReduceSum", [var, _const(g, [-1], np.int64)], keepdims=0)  # (b,)


def _entropy(g: G.Graph, p: str) -> str:
    """-sum_e p log max(p, 1e-12) over the last axis (qmoe.moe.router._entropy)."""
    log = g.op("Log", [g.op("Max", [p, _const(g, 1e-12, np.float32)])])
    return g.op(
        "Neg", [g.op("ReduceSum", [g.op("Mul", [p, log]), _const(g, [-1], np.int64)], keepdims=0)]
    )


def mc_score(g: G.Graph, h1: str, r: Router, samples: int, score: str) -> str:
    """u(x) (b,) by the MoE's `score`: variance (the reference's), entropy of the MC mean, BALD."""
    if score == "variance":
        return mc_uncertainty(g, h1, r, samples)
    p = mc_probs(g, h1, r, samples)
    mean_entropy = _entropy(g, g.op("ReduceMean", [p], axes=[0], keepdims=0))  # (b,)
    if score == "entropy":
        return mean_entropy
    if score == "bald":
        return g.op(
            "Sub", [mean_entropy, g.op("ReduceMean", [_entropy(g, p)], axes=[0], keepdims=0)]
        )
    raise ValueError(f"no ONNX form for uncertainty score {score!r}")


def input_draw(g: G.Graph, x: str, weights: np.ndarray) -> str:
    """The `random` placebo's draw (b,) in [0, 1): qmoe.moe.curiosity.input_draw in integers."""
    scaled = g.op("Round", [g.op("Mul", [x, _const(g, curiosity.DRAW_SCALE, np.float32)])])
    clipped = g.op(
        "Clip",
        [
            scaled,
            _const(g, -curiosity.DRAW_CLIP, np.float32),
            _const(g, curiosity.DRAW_CLIP, np.float32),
        ],
    )
    q = g.op("Cast", [clipped], to=G.onnx.TensorProto.INT64)  # (b, d)
    h = g.op(
        "ReduceSum",
        [g.op("Mul", [q, g.const(weights.astype(np.int64), "draw_w")]), _const(g, [-1], np.int64)],
        keepdims=0,
    )  # (b,)
    h = g.op("Mod", [h, _const(g, curiosity.DRAW_PRIME, np.int64)], fmod=0)
    ratio = g.op(
        "Div",
        [
            g.op("Cast", [h], to=G.onnx.TensorProto.DOUBLE),
            _const(g, float(curiosity.DRAW_PRIME), np.float64),
        ],
    )
    return g.op("Cast", [ratio], to=G.FLOAT)


def _normalise(g: G.Graph, scaled: str) -> str:
    return g.op("Div", [scaled, g.op("ReduceSum", [scaled, _const(g, [-1], np.int64)], keepdims=1)])


def _plogp(g: G.Graph, probs: str, inside: str) -> str:
    """sum_e p * log(max(inside, TINY)) (b, 1)."""
    log = g.op("Log", [g.op("Max", [inside, _const(g, curiosity.TINY, np.float32)])])
    return g.op("ReduceSum", [g.op("Mul", [probs, log]), _const(g, [-1], np.int64)], keepdims=1)


def strategy(g: G.Graph, probs: str, u: str, s: nn.Module, e: int) -> str:
    """The curiosity strategy's routing distribution (b, e) from probs (b, e) and u (b,)."""
    if isinstance(s, curiosity.LogOnly):
        return probs
    if isinstance(s, curiosity.KLRescale):
        kl = _plogp(g, probs, g.op("Mul", [probs, _const(g, e, np.float32)]))
        factor = g.op("Exp", [g.op("Mul", [kl, _const(g, s.alpha, np.float32)])])
        return _normalise(g, g.op("Mul", [probs, factor]))
    if isinstance(s, curiosity.EntropyRescale):
        h = g.op("Neg", [_plogp(g, probs, probs)])  # (b, 1)
        lo, hi = g.op("ReduceMin", [u], keepdims=1), g.op("ReduceMax", [u], keepdims=1)
        span = g.op("Add", [g.op("Sub", [hi, lo]), _const(g, s.eps, np.float32)])
        un = g.op("Div", [g.op("Sub", [u, lo]), span])  # (b,)
        un = g.op("Unsqueeze", [un, _const(g, [1], np.int64)])  # (b, 1)
        weight = g.op("Mul", [g.op("Mul", [un, h]), _const(g, s.alpha, np.float32)])
        factor = g.op("Add", [weight, _const(g, 1.0, np.float32)])
        return _normalise(g, g.op("Mul", [probs, factor]))
    if isinstance(s, curiosity.Escalate):  # route and its random placebo
        return _escalate(g, probs, u, s, e)
    raise ValueError(f"no ONNX form for curiosity strategy {type(s).__name__}")


def _escalate(g: G.Graph, probs: str, u: str, s: curiosity.Escalate, e: int) -> str:
    """Samples with u > tau swap their top expert's probability with the target's (b, e)."""
    top = g.op("ArgMax", [probs], axis=-1, keepdims=1)  # (b, 1)
    target = _const(g, [[s.target]], np.int64)  # (1, 1)
    over = g.op("Greater", [u, _const(g, float(s.tau), np.float32)])  # (b,)
    over = g.op("Unsqueeze", [over, _const(g, [1], np.int64)])  # (b, 1)
    swap = g.op("And", [over, g.op("Not", [g.op("Equal", [top, target])])])  # (b, 1)
    p_top = g.op("GatherElements", [probs, top], axis=1)  # (b, 1)
    p_target = g.op(
        "GatherElements", [probs, g.op("Expand", [target, g.op("Shape", [top])])], axis=1
    )  # (b, 1)
    experts = _const(g, np.arange(e)[None, :], np.int64)  # (1, e)
    at_top = g.op("And", [swap, g.op("Equal", [experts, top])])  # (b, e)
    at_target = g.op("And", [swap, g.op("Equal", [experts, target])])  # (b, e)
    return g.op("Where", [at_top, p_target, g.op("Where", [at_target, p_top, probs])])


class Routed(NamedTuple):
    """The routing part of the MoE graph: value names of its outputs."""

    weights: str  # (b, k) gate of each chosen expert, best first
    index: str  # (b, k) int64 chosen experts
    extra: dict[str, str]  # {"uncertainty": (b,)} with curiosity, else {}


def route(g: G.Graph, x: str, moe: MoE) -> Routed:
    """x (b, d) standardised -> router, curiosity strategy and TopK (qmoe.moe.layer.MoE.forward)."""
    r = moe.router
    e = r.num_experts
    h1 = g.op("Relu", [_linear(g, x, r.fc1)])  # (b, 128)
    probs = router_probs(g, h1, r)
    outs: dict[str, str] = {}
    if moe.strategy is not None:
        outs["uncertainty"] = (
            input_draw(g, x, moe.draw_weights.numpy())
            if moe.draw_weights is not None  # the `random` placebo
            else mc_score(g, h1, r, moe.mc_samples, moe.score)
        )
        probs = strategy(g, probs, outs["uncertainty"], moe.strategy, e)
    weights, index = g.op(
        "TopK", [probs, _const(g, [moe.k], np.int64)], outputs=2, axis=-1, largest=1, sorted=1
    )  # (b, k) x 2
    return Routed(weights, index, outs)


class _Choice(NamedTuple):
    """Which rows chose which expert, as graph values."""

    gates: str  # (b, e) each expert's gate, 0 where not chosen
    chosen: str  # (b, e) 1.0 where chosen
    count: str  # (e,) rows that chose each expert


def emit(g: G.Graph, x: str, moe: MoE, em: Any) -> dict[str, str]:
    """x (b, d) standardised -> {logits (b, c), expert (b,), [uncertainty (b,)]}; `em` writes the
    experts (qmoe.deploy.export._Emitter)."""
    weights, index, outs = route(g, x, moe)
    choice = _choice(g, weights, index, moe.router.num_experts)
    c = int(moe.experts[0].head.out_features)
    rows_dim = g.op(
        "Slice", [g.op("Shape", [x]), _const(g, [0], np.int64), _const(g, [1], np.int64)]
    )
    acc = g.op(
        "ConstantOfShape",
        [g.op("Concat", [rows_dim, _const(g, [c], np.int64)], axis=0)],
        value=G.helper.make_tensor("zero", G.FLOAT, [1], [0.0]),
    )  # (b, c)
    for i, expert in enumerate(moe.experts):
        acc = _expert_if(g, x, acc, choice, i, expert, em)
    logits = acc if moe.k == 1 else g.op("Div", [acc, _const(g, moe.k, np.float32)])
    return {"logits": logits, "expert": _first_column(g, index), **outs}


def _choice(g: G.Graph, weights: str, index: str, e: int) -> _Choice:
    """Gates and choices per expert from TopK's weights and index (b, k)."""
    hit = g.op(
        "Equal",
        [
            g.op("Unsqueeze", [index, _const(g, [2], np.int64)]),
            _const(g, np.arange(e)[None, None, :], np.int64),
        ],
    )  # (b, k, e)
    gated = g.op(
        "Where",
        [
            hit,
            g.op("Unsqueeze", [weights, _const(g, [2], np.int64)]),
            _const(g, 0.0, np.float32),
        ],
    )
    gates = g.op("ReduceSum", [gated, _const(g, [1], np.int64)], keepdims=0)  # (b, e)
    chosen = g.op("ReduceMax", [g.op("Cast", [hit], to=G.FLOAT)], axes=[1], keepdims=0)  # (b, e)
    count = g.op("ReduceSum", [chosen, _const(g, [0], np.int64)], keepdims=0)  # (e,)
    return _Choice(gates, chosen, count)


def _first_column(g: G.Graph, index: str) -> str:
    """index (b, k) -> (b,): the top-1 expert."""
    one = [_const(g, [0], np.int64), _const(g, [1], np.int64), _const(g, [1], np.int64)]
    return g.op("Squeeze", [g.op("Slice", [index, *one]), _const(g, [1], np.int64)])


def _expert_if(
    g: G.Graph, x: str, acc: str, choice: _Choice, i: int, expert: nn.Module, em: Any
) -> str:
    """acc (b, c) + gate_i * expert_i(x) on the rows that chose expert i, inside an `If`."""
    idx = _const(g, i, np.int64)
    cond = g.op(
        "Greater", [g.op("Gather", [choice.count, idx], axis=0), _const(g, 0.0, np.float32)]
    )
    then = g.branch()
    rows = then.op(
        "Squeeze",
        [
            then.op("NonZero", [then.op("Gather", [choice.chosen, idx], axis=1)]),
            _const(then, [0], np.int64),
        ],
    )  # (n,)
    y = em.mlp(then, then.op("Gather", [x, rows], axis=0), expert, f"net.experts.{i}")
    out = _scatter_add(then, acc, rows, y, then.op("Gather", [choice.gates, idx], axis=1))
    other = g.branch()
    passed = other.op("Identity", [acc])
    return g.op(
        "If",
        [cond],
        then_branch=then.to_graph(f"expert{i}", [], [G.value(out, G.FLOAT, None)]),
        else_branch=other.to_graph(f"skip{i}", [], [G.value(passed, G.FLOAT, None)]),
    )


def _scatter_add(then: G.Graph, acc: str, rows: str, y: str, gate_column: str) -> str:
    """acc (b, c) plus gate * y (n, c) at `rows` (n,); `gate_column` (b,): the expert's gates."""
    gate = then.op(
        "Unsqueeze",
        [then.op("Gather", [gate_column, rows], axis=0), _const(then, [1], np.int64)],
    )  # (n, 1)
    return then.op(
        "ScatterND",
        [acc, then.op("Unsqueeze", [rows, _const(then, [1], np.int64)]), then.op("Mul", [y, gate])],
        reduction="add",
    )  # (b, c)

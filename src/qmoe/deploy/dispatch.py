"""The MoE split for host dispatch: a router graph and one artefact per expert, checked against the
one-graph artefact (qmoe.deploy.moe_graph) on the test fold.

    parts = split(model, cfg)                      # MoE as deployed -> router proto, expert protos
    check = agree(one_graph_session, host, x)      # same top-1 expert and logits for every clip

The one-graph form runs every expert's `If` (empty branches included), a NonZero, gathers and a
ScatterND per call; the host form runs the router, then only the chosen expert's artefact
(qmoe.deploy.runtime.HostDispatch). Both route exactly alike: the router graph is the same
nodes (`moe_graph.route`), and each expert artefact is the expert's own export.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import onnx
from torch import nn

from qmoe.deploy import graph as G
from qmoe.deploy import moe_graph
from qmoe.deploy.export import ExportConfig, export
from qmoe.deploy.runtime import ROUTER, HostDispatch, expert_part, run_rows, session
from qmoe.io import InputError
from qmoe.moe.layer import MoE
from qmoe.training.artefacts import Standardized


class Parts(NamedTuple):
    router: onnx.ModelProto  # x (b, d) raw -> index (b, k) int64, gates (b, k) [, uncertainty]
    experts: tuple[onnx.ModelProto, ...]  # expert i alone: x (b, d) raw -> logits (b, c)

    def named(self) -> dict[str, onnx.ModelProto]:
        """Part name (qmoe.deploy.runtime.part_file) -> graph."""
        return {ROUTER: self.router} | {expert_part(i): p for i, p in enumerate(self.experts)}


class DispatchError(InputError):
    """The host-dispatch parts disagree with the one-graph artefact; names the model."""


class Agreement(NamedTuple):
    expert_agreement: float  # share of test clips routed to the same top-1 expert
    max_abs_diff: float  # largest |logit| difference over the test clips (batch-1 calls)


def split(model: nn.Module, cfg: ExportConfig) -> Parts:
    """A deployed Standardized(MoE) -> its router graph (z-score, router, curiosity, TopK) and one
    artefact per expert (z-score, expert), each a graph of its own."""
    net = model.net
    if not isinstance(net, MoE):
        raise TypeError(f"split needs an MoE, got {type(net).__name__}")
    mean, std = model.norm_mean.numpy(), model.norm_std.numpy()
    g = G.Graph()
    routed = moe_graph.route(g, G.zscore(g, "x", mean, std), net)
    outs = {"index": routed.index, "gates": routed.weights, **routed.extra}
    for name, value in outs.items():
        g.alias(value, name)
    k, types = ["batch", net.k], {"index": G.INT64, "gates": G.FLOAT, "uncertainty": G.FLOAT}
    shapes = {"index": k, "gates": k, "uncertainty": ["batch"]}
    router = G.to_model(
        g,
        [G.value("x", G.FLOAT, ["batch", int(mean.size)])],
        [G.value(n, types[n], shapes[n]) for n in outs],
    )
    experts = tuple(
        export(Standardized(e, model.norm_mean, model.norm_std).eval(), cfg).proto
        for e in net.experts
    )
    return Parts(router, experts)


def agree(one_graph, host: HostDispatch, x: np.ndarray, bound: float, context: str) -> Agreement:
    """Both forms on every row of x (n, d) as batch-1 calls; refused unless every clip goes to the
    same expert and its logits differ by at most `bound`."""
    whole = run_rows(one_graph, x)
    calls = [host(x[i : i + 1]) for i in range(len(x))]
    expert = np.concatenate([c["expert"] for c in calls])
    logits = np.concatenate([c["logits"] for c in calls])
    found = Agreement(
        float((expert == whole["expert"]).mean()), float(np.abs(logits - whole["logits"]).max())
    )
    if found.expert_agreement < 1.0 or not found.max_abs_diff <= bound:
        raise DispatchError(
            f"{context}: host dispatch (router graph + expert artefacts) disagrees with the "
            f"one-graph artefact: {found.expert_agreement:.1%} of clips routed alike, max "
            f"|logit diff| {found.max_abs_diff:.3g} (bound {bound:.3g})"
        )
    return found


def host_parts(
    model: nn.Module, cfg: ExportConfig, one_graph, x: np.ndarray, bound: float, context: str
) -> tuple[dict[str, bytes], dict[str, float]]:
    """The export stage's unit of work for an MoE's parts: the serialised graphs by part name,
    refused (DispatchError) unless they agree with the one-graph session on every row of x; and
    the deployed table's `dispatch_expert_agreement`, `dispatch_max_abs_diff`."""
    parts = {n: p.SerializeToString() for n, p in split(model, cfg).named().items()}
    sessions = {n: session(b) for n, b in parts.items()}
    experts = [sessions[expert_part(i)] for i in range(len(parts) - 1)]
    found = agree(one_graph, HostDispatch(sessions[ROUTER], experts), x, bound, context)
    return parts, {f"dispatch_{k}": v for k, v in found._asdict().items()}

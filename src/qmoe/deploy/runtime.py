"""ONNX Runtime sessions for the study's artefacts: CPU provider, fixed threads, batch-1 scoring."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from qmoe.io import InputError

SessionSource = onnx.ModelProto | bytes | Path | str


def session(source: SessionSource, threads: int = 1):
    """An InferenceSession on the CPU provider with `threads` intra-op threads, one inter-op
    thread, sequential execution and every graph optimisation (the fusions are the deployment).
    A file that is not a loadable model (truncated, corrupted) is an InputError naming it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # warnings about optimised-model serialisation: not ours
    if isinstance(source, onnx.ModelProto):
        source = source.SerializeToString()
    if isinstance(source, bytes):  # a graph built here: a failure is a bug, with its traceback
        return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    try:
        return ort.InferenceSession(str(source), so, providers=["CPUExecutionProvider"])
    except (state.InvalidProtobuf, state.InvalidGraph, state.Fail, state.NoSuchFile) as e:
        reason = str(e).rsplit("failed:", 1)[-1].strip()  # ORT repeats the path before it
        raise InputError(
            f"{source}: not a loadable ONNX model ({reason}); rerun the export stage"
        ) from None


def run(sess, x: np.ndarray) -> dict[str, np.ndarray]:
    """All outputs of one call on x (b, d) float32."""
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})))


def run_rows(sess, x: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of one batch-1 call per row of x (n, d), stacked (what deployment sees)."""
    calls = [run(sess, x[i : i + 1]) for i in range(len(x))]
    return {k: np.concatenate([c[k] for c in calls]) for k in calls[0]}


def ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def keeps_fp16(proto: onnx.ModelProto) -> bool:
    """Whether ONNX Runtime's CPU provider still computes anything in float16 after it optimised
    `proto` (False: it inserted casts and computes in float32 from float16-stored weights)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        optimised = onnx.load(so.optimized_model_filepath)
    half = onnx.TensorProto.FLOAT16
    if any(t.data_type == half for t in optimised.graph.initializer):
        return True
    return any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == half for a in n.attribute)
        for n in optimised.graph.node
    )


# --- an MoE split into a router graph and one artefact per expert (qmoe.deploy.dispatch) --------

ROUTER = "router"  # part names: <stem>.router.onnx, <stem>.expert<i>.onnx beside <stem>.onnx


def part_file(stem: str, part: str) -> str:
    return f"{stem}.{part}.onnx"


def expert_part(i: int) -> str:
    return f"expert{i}"


class HostDispatch:
    """The MoE run by the host: the router graph's call, then only the chosen experts' artefacts,
    their logits scaled by the gates and summed / k in numpy (qmoe.moe.layer.MoE._combine). No
    `If` subgraph, gather or scatter runs: at batch 1 it costs router + one expert + a multiply."""

    def __init__(self, router, experts: list):
        self.router, self.experts = router, experts

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """x (b, d) float32 -> {logits (b, c), expert (b,) top-1, gates (b, k)}."""
        index, gates = self.router.run(["index", "gates"], {"x": x})  # (b, k) x 2
        k = index.shape[1]
        if index.shape[0] == 1 and k == 1:  # the deployment's call: one expert, no gathering
            y = self.experts[int(index[0, 0])].run(None, {"x": x})[0]
            return {"logits": y * gates, "expert": index[:, 0], "gates": gates}
        out = None
        for e in np.unique(index):
            hit = index == e  # (b, k)
            rows = np.flatnonzero(hit.any(axis=1))
            y = self.experts[int(e)].run(None, {"x": x[rows]})[0]  # (n_e, c)
            out = np.zeros((len(x), y.shape[1]), np.float32) if out is None else out
            out[rows] += (gates * hit).sum(axis=1)[rows, None] * y
        return {"logits": out / np.float32(k), "expert": index[:, 0], "gates": gates}

"""Every artefact is checked at export: its integer codes are the trained model's, and its logits
match the frozen torch model within a stated tolerance; otherwise it is refused, not timed.

Logits are compared with the frozen torch model run with the deployment's activation arithmetic
(qmoe.deploy.emulate). Bound: as batch-1 calls, |onnx - emulated| <= atol + rtol *
max |emulated| (fp16 graphs: fp16_rtol) on at least `min_exact_share` of the test samples, and
<= loose_rtol * max |emulated| on every sample, also as one call on the whole fold (one activation
scale spans it). The share exists because the emulation is float arithmetic, not the kernel's
integer one: a value at an int8 rounding boundary or a ternary threshold can land on the other
side. The gap to the torch model as trained is reported beside it: `training_max_abs_diff`,
`argmax_agreement`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from qmoe.deploy import nbits
from qmoe.deploy.emulate import emulate
from qmoe.deploy.export import Exported, WeightRecord
from qmoe.deploy.graph import initializers
from qmoe.deploy.runtime import run, run_rows
from qmoe.io import InputError, require

# Ceilings, so that a typo (1000 for 1e-3) cannot switch the check off: rounding moves logits by
# ~1e-6 and a wrong graph by a large part of their range.
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


class _Tolerance(NamedTuple):
    bound: float  # atol + rtol * max |logit|: the tight bound
    loose: float  # loose_rtol * max |logit|: no sample may exceed it


def _tolerance(cfg: CheckConfig, half: bool, logits: Tensor) -> _Tolerance:
    scale = float(np.abs(logits.numpy()).max())
    rtol = cfg.fp16_rtol if half else cfg.rtol
    return _Tolerance(cfg.atol + rtol * scale, cfg.loose_rtol * scale)


def _judge(diffs: list[_Diff], tol: _Tolerance, cfg: CheckConfig, context: str) -> _Diff:
    """The verdict over (one batched call, batch-1 calls): the tight share is judged on the batch-1
    calls (the deployment), the loose bound on both (one activation scale over the whole fold)."""
    worst, exact = max(d.worst for d in diffs), diffs[1].exact
    routing = min(d.routing for d in diffs)
    if not math.isfinite(worst) or worst > tol.loose:
        raise ArtefactRefused(
            f"{context}: artefact logits differ from the frozen torch model by "
            f"{worst:.3g} > tolerance {tol.loose:.3g} (loose_rtol)"
        )
    if exact < cfg.min_exact_share:
        raise ArtefactRefused(
            f"{context}: artefact logits differ from the frozen torch model: "
            f"{exact:.1%} of test samples within {tol.bound:.3g}, need "
            f"{cfg.min_exact_share:.0%} (max diff {worst:.3g})"
        )
    if routing < cfg.min_routing_agreement:
        raise ArtefactRefused(
            f"{context}: artefact routes {routing:.1%} of samples like the torch "
            f"model (< {cfg.min_routing_agreement:.1%})"
        )
    return _Diff(worst, exact, routing)


def _trained_logits(model: nn.Module, xt: Tensor, zclip: Tensor | None) -> np.ndarray:
    """The torch model's own logits, batch-1 calls; it has no clip: it gets clipped inputs."""
    if zclip is not None:
        xt = torch.clamp(
            xt, model.norm_mean - zclip * model.norm_std, model.norm_mean + zclip * model.norm_std
        )
    return np.concatenate([_torch_logits(model, xt[i : i + 1]).numpy() for i in range(len(xt))])


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
    xt = torch.from_numpy(x)
    zclip = None if clip is None else torch.from_numpy(clip.astype(np.float32))
    emu_batch = emulate(model, xt, block, clip=zclip)
    tol = _tolerance(cfg, exported.half, emu_batch[0])
    rows = run_rows(sess, x)
    diffs = [
        _compare(run(sess, x), emu_batch, tol.bound),
        _compare(rows, emulate(model, xt, block, rows=True, clip=zclip), tol.bound),
    ]
    judged = _judge(diffs, tol, cfg, context)
    trained = _trained_logits(model, xt, zclip)
    deployed_pred, torch_pred = rows["logits"].argmax(1), trained.argmax(1)
    check = Check(
        judged.worst,
        tol.bound,
        judged.exact,
        tol.loose,
        float(np.abs(rows["logits"] - trained).max()),
        float((deployed_pred == torch_pred).mean()),
        judged.routing,
        layers,
    )
    return Verified(check, deployed_pred, torch_pred, rows.get("expert"))

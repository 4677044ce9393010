"""Quantisation primitives: pure, stateless functions (layer 1 of 3; layers.py, models.py on top).

Formulas follow reference-method.md 7.1 (k-bit BitLinear), 7.4 (the reference's threshold ternary)
and BitNet b1.58 (arXiv 2402.17764, anchors.md 2.2). Weight quantisers return integer *codes* and a
*scale* (`codes * scale` is the weight the forward pass uses); activation quantisers return the
fake-quantised activation directly.

Straight-through estimator (STE): `ste(x, q)` returns `q` itself (a view, bit for bit) with the
gradient of the identity in `x`. The usual `x + (q - x).detach()` rounds (x + (q - x) != q in
floating point), and the deployable integer form must reproduce the forward weight exactly; it also
costs two extra passes over the weight on every forward. The weight quantisers run without autograd
and in place, because they run on every training step (speed matters for the study's grid).

Granularity: `dim=None` per tensor, `dim=-1` per sample (activations, (b, d)), `dim=1` per output
row (weights, (out, in)).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from qmoe.bits import check_quantiser_bits

ABSMAX_EPS = 1e-5  # reference 7.1: max(max|.|, 1e-5)
ACT_QMAX, ACT_QMIN = 127, -128


class QuantizedWeight(NamedTuple):
    """Deployable integer form of a quantised weight: `codes * scale` is the forward weight exactly.

    codes: (out, in) int8. k-bit BitLinear (k >= 2): integers in [-2^(k-1), 2^(k-1) - 1]
        (the top-of-range level -2^(k-1) is never used, 7.1); 1-bit: {-1, +1}; ternary: {-1, 0, +1}.
    scale: float32, shape () (one scale per tensor) or (out, 1) (one per output row).
    bits: bits per code a packed store needs: k for k-bit, 2 for ternary (3 levels).
    """

    codes: Tensor
    scale: Tensor
    bits: int

    def dequantize(self) -> Tensor:
        """(out, in) float32 weight: codes * scale."""
        return self.codes.to(self.scale.dtype) * self.scale


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, q: Tensor) -> Tensor:
        return q.view_as(q)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def ste(x: Tensor, q: Tensor) -> Tensor:
    """Value of `q` (exactly, no copy), gradient of the identity with respect to `x`."""
    if q.shape != x.shape:
        raise ValueError(f"ste: shapes differ, x {tuple(x.shape)} vs q {tuple(q.shape)}")
    return _StraightThrough.apply(x, q.detach())


def round_ste(x: Tensor) -> Tensor:
    """round() forward (half to even, as torch.round), identity backward."""
    return ste(x, x.round())


def sign_ste(x: Tensor) -> Tensor:
    """sign() forward with sign(0) = +1 (so the result is strictly binary), identity backward."""
    return ste(x, torch.where(x >= 0, 1.0, -1.0).to(x.dtype))


def absmax_scale(x: Tensor, qmax: int, dim: int | None = None, eps: float = ABSMAX_EPS) -> Tensor:
    """max(max|x|, eps) / qmax over `dim` (kept as a size-1 dim) or the whole tensor (shape ())."""
    amax = x.abs().amax() if dim is None else x.abs().amax(dim=dim, keepdim=True)
    return amax.clamp(min=eps) / qmax


def absmean_scale(x: Tensor, dim: int | None = None) -> Tensor:
    """mean|x| over `dim` (kept) or the whole tensor (shape ())."""
    return x.abs().mean() if dim is None else x.abs().mean(dim=dim, keepdim=True)


# --- activations (b, d): fake-quantised with STE ----------------------------------------------


def act_absmax8(x: Tensor) -> Tensor:
    """8-bit absmax per sample (7.1 step 2): s = 127 / max(max_j |x_j|, 1e-5);
    clip(round(x * s), -128, 127) / s. x (b, d) -> (b, d)."""
    xd = x.detach()
    s = ACT_QMAX / xd.abs().amax(dim=-1, keepdim=True).clamp(min=ABSMAX_EPS)  # (b, 1)
    return ste(x, (xd * s).round_().clamp_(ACT_QMIN, ACT_QMAX).div_(s))


def act_ternary_threshold(x: Tensor, factor: float = 0.05) -> Tensor:
    """Reference ternary activations (7.4): 0 where |x| < factor * mean_j|x_j| (per sample), else
    sign(x); no scale. x (b, d) -> (b, d) with values in {-1, 0, +1}."""
    xd = x.detach()
    t = factor * xd.abs().mean(dim=-1, keepdim=True)  # (b, 1)
    return ste(x, torch.where(xd.abs() < t, torch.zeros_like(xd), xd.sign()))


# --- weights (out, in): integer codes and scales (no autograd; the layer applies the STE) -----


def kbit_codes(w: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Reference k-bit weights (7.1 step 3), per tensor, centred: W_c = W - mean(W).

    bits = 1: codes = sign(W_c) (0 -> +1), scale 1 (the reference uses no scale).
    bits >= 2: s = max(max|W_c|, 1e-5) / (2^(k-1) - 1); codes = clip(round(W_c / s), -2^(k-1),
    2^(k-1) - 1). Returns codes (out, in) as float and scale (), float32.
    """
    check_quantiser_bits(bits)
    w = w.detach()
    mean = w.mean()
    if bits == 1:  # W - mean >= 0 exactly when W >= mean (IEEE subtraction)
        return torch.where(w >= mean, 1.0, -1.0).to(w.dtype), torch.ones((), dtype=w.dtype)
    qmax, qmin = 2 ** (bits - 1) - 1, -(2 ** (bits - 1))
    lo, hi = torch.aminmax(w)
    amax = torch.maximum(hi - mean, mean - lo)  # == max|W - mean|, without a pass for abs
    s = amax.clamp(min=ABSMAX_EPS) / qmax
    return (w - mean).div_(s).round_().clamp_(qmin, qmax), s


def ternary_threshold_codes(w: Tensor, factor: float = 0.15) -> tuple[Tensor, Tensor]:
    """Reference threshold-ternary weights (7.4), per output row: W_c = W - rowmean(W);
    code = 0 where |W_c| < factor * mean|W_c| (row), else sign(W_c); alpha_row = mean of |W_c|
    over the row's non-zero codes (count clamped at 1). Returns codes (out, in), alpha (out, 1)."""
    w = w.detach()
    wc = w - w.mean(dim=1, keepdim=True)  # (out, in)
    a = wc.abs()
    keep = (a >= factor * a.mean(dim=1, keepdim=True)).to(w.dtype)  # (out, in) 0/1
    codes = wc.sign_().mul_(keep)
    # kept entries are the non-zero codes, except in an all-zero row (alpha 0 either way)
    count = keep.sum(dim=1, keepdim=True).clamp_(min=1)  # (out, 1)
    alpha = a.mul_(keep).sum(dim=1, keepdim=True) / count
    return codes, alpha


def absmean_ternary_codes(w: Tensor, eps: float = ABSMAX_EPS) -> tuple[Tensor, Tensor]:
    """BitNet b1.58 weights: gamma = mean|W| (per tensor); codes = RoundClip(W / (gamma + eps),
    -1, 1); the forward weight is codes * gamma. Returns codes (out, in), gamma ()."""
    w = w.detach()
    gamma = absmean_scale(w)
    return (w / (gamma + eps)).round_().clamp_(-1, 1), gamma

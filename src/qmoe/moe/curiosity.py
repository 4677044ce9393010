"""Curiosity strategies: what the MoE does with the MC-dropout uncertainty u(x) (reference 9).

Each strategy maps the routing distribution p (b, e) and u (b,) to the distribution routed on.

- `log`     (reference `main`, 9.3): p unchanged; u is only returned.
- `kl`      (reference rebuttal "Equation 8", 9.4): p_cur ∝ p * exp(alpha * KL(p || uniform)).
- `entropy` (9.4): p_cur ∝ p * (1 + alpha * u_norm * H(p)), u min-max normalised within the batch.
  Both factors are the same for every expert of a sample, so renormalising gives p back: these two
  are implemented as written and are no-ops up to rounding (tests/test_curiosity.py proves it).
- `route`   (OUR deviation, not in the reference): uncertainty-triggered precision escalation.
  A sample whose u exceeds a threshold tau is routed to the highest-precision expert e*:

      q = p                                    if u <= tau
      q = p with entries argmax(p) and e* swapped  if u >  tau

  so e* becomes the top choice and its gate weight is the router's top probability (the logit
  scale the sample would have had; the swap keeps q a distribution). tau is a FIXED number, not a
  per-batch statistic: the `quantile` (default 0.9) of u over the validation split, set by
  `calibrate_` once the checkpoint is chosen. During training tau is a running estimate (exponential
  average of the per-batch quantile, like BatchNorm's running statistics), so the escalated
  expert is trained on the inputs it will receive at deployment.
  Rationale: u measures how unstable the router's choice is under dropout (epistemic doubt about
  *which* expert fits). Where that doubt is high, a cheap low-bit expert is the risky choice;
  spending the extra bits of the most precise expert on exactly those inputs is a cascade-style
  use of uncertainty ("when in doubt, use more precision") whose cost is bounded by the quantile.
  u may also be the predictive entropy of the MC-mean routing distribution or BALD
  (`qmoe.moe.router.UNCERTAINTY`).
- `random`  (OUR placebo for `route`): the same rule, with u replaced by a pseudo-random draw in
  [0, 1) per sample (`input_draw`: a seeded hash of the sample's input, so deterministic and
  independent of the batch, and reproducible in the ONNX graph), so about the same share of
  samples escalates, at random. Route beating this placebo is evidence that u carries
  information; a tie says the escalation might as well be random.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LogOnly(nn.Module):
    """Reference `main`: u is computed and returned; routing is untouched."""

    def forward(self, probs: Tensor, u: Tensor) -> Tensor:
        return probs


TINY = 1e-12  # floor inside logs: finite gradients where a routing probability underflows to 0


class KLRescale(nn.Module):
    """Rebuttal `kl_divergence`: p_cur ∝ p * exp(alpha * KL(p || uniform)); u unused."""

    def __init__(self, alpha: float = 0.02):
        super().__init__()
        self.alpha = alpha

    def forward(self, probs: Tensor, u: Tensor) -> Tensor:
        e = probs.shape[-1]
        # clamp inside the log: a probability that underflows to 0 would make xlogy's gradient NaN
        kl = (probs * torch.log((probs * e).clamp_min(TINY))).sum(dim=-1, keepdim=True)  # (b, 1)
        scaled = probs * torch.exp(self.alpha * kl)  # (b, e)
        return scaled / scaled.sum(dim=-1, keepdim=True)


class EntropyRescale(nn.Module):
    """Rebuttal `entropy_regularization`: p_cur ∝ p * (1 + alpha * u_norm * H(p)), with u min-max
    normalised over the current batch."""

    def __init__(self, alpha: float = 0.1, eps: float = 1e-8):
        super().__init__()
        self.alpha, self.eps = alpha, eps

    def forward(self, probs: Tensor, u: Tensor) -> Tensor:
        h = -(probs * torch.log(probs.clamp_min(TINY))).sum(dim=-1, keepdim=True)  # (b, 1)
        u_norm = ((u - u.min()) / (u.max() - u.min() + self.eps))[:, None]  # (b, 1)
        scaled = probs * (1 + self.alpha * u_norm * h)  # (b, e)
        return scaled / scaled.sum(dim=-1, keepdim=True)


class Escalate(nn.Module):
    """Our `route`: samples with u > tau go to expert `target` (see the module docstring).

    Buffer `tau` (state dict): +inf until the first training batch (no escalation), then a running
    estimate, then the validation quantile after `calibrate_`.
    """

    def __init__(self, target: int, quantile: float = 0.9, momentum: float = 0.1):
        super().__init__()
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile {quantile} not in (0, 1)")
        self.target, self.quantile, self.momentum = target, quantile, momentum
        self.register_buffer("tau", torch.tensor(float("inf")))

    @torch.no_grad()
    def _update_running(self, u: Tensor) -> None:
        q = torch.quantile(u.float(), self.quantile)
        if torch.isinf(self.tau):
            self.tau.copy_(q)
        else:
            self.tau.lerp_(q, self.momentum)

    @torch.no_grad()
    def calibrate_(self, u_val: Tensor) -> None:
        """Fix tau to the `quantile` of u over the (n,) validation values."""
        if u_val.numel() == 0:
            raise ValueError("calibrate_: empty validation set")
        self.tau.copy_(torch.quantile(u_val.float(), self.quantile))

    def escalated(self, u: Tensor) -> Tensor:
        """(b,) bool: samples routed to the target expert."""
        return u > self.tau

    def forward(self, probs: Tensor, u: Tensor) -> Tensor:
        if self.training:
            self._update_running(u)
        b = torch.arange(probs.shape[0], device=probs.device)
        top = probs.argmax(dim=-1)  # (b,)
        swap = self.escalated(u) & (top != self.target)  # (b,)
        p_top, p_target = probs[b, top], probs[:, self.target]  # (b,), (b,)
        q = probs.clone()
        q[b, top] = torch.where(swap, p_target, p_top)
        q[:, self.target] = torch.where(swap, p_top, p_target)
        return q

    def extra_repr(self) -> str:
        return f"target={self.target}, quantile={self.quantile}, tau={self.tau.item():.3g}"


class RandomEscalate(Escalate):
    """The `random` placebo: `Escalate` driven by `input_draw` instead of an uncertainty (the MoE
    passes the draw as u)."""


# input_draw: q = round(x * DRAW_SCALE) clipped to +-DRAW_CLIP (int64); h = sum_j q_j a_j with
# fixed random a_j in [1, DRAW_PRIME); draw = (h mod DRAW_PRIME) / DRAW_PRIME. Integer arithmetic:
# bit-identical in any batch and in ONNX Runtime (|h| < 2^20 * 2^31 * d < 2^63 for d < 4096).
DRAW_SCALE, DRAW_CLIP, DRAW_PRIME = 64.0, 2**20, 2**31 - 1


def draw_weights(in_dim: int, seed: int) -> Tensor:
    """The hash's (in_dim,) int64 multipliers, from a generator seeded with `seed`."""
    if in_dim >= 4096:
        raise ValueError(f"input_draw supports inputs of < 4096 features, got {in_dim}")
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, DRAW_PRIME, (in_dim,), generator=g, dtype=torch.int64)


def input_draw(x: Tensor, weights: Tensor) -> Tensor:
    """A pseudo-random number in [0, 1) per sample, a function of the sample alone: x (b, d) ->
    (b,) float32. Unrelated to difficulty (a modular hash), so escalating on it is random."""
    q = torch.round(x.float() * DRAW_SCALE).clamp(-DRAW_CLIP, DRAW_CLIP).to(torch.int64)
    h = torch.remainder((q * weights).sum(dim=-1), DRAW_PRIME)  # (b,) int64
    return (h.to(torch.float64) / DRAW_PRIME).to(torch.float32)

"""Router MLPs, MC-dropout sampling, top-k gating and load-balancing losses.

Refs: reference-method.md 8.2-8.4 and 9.1-9.2; Switch Transformer (Fedus et al., arXiv 2101.03961)
for the balance loss E * sum_e f_e * P_e; MC dropout (Gal & Ghahramani, ICML 2016).
Legend: b batch, d features, e experts, k chosen experts, t MC samples.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HIDDEN = (128, 64)  # reference router widths (8.2)
MASK_BANK_SEED = 0  # seed of the fixed eval-mode MC dropout masks (Router.mask_bank)


class MaskBank(NamedTuple):
    """Fixed dropout masks of t MC passes: entries 0 or 1 / (1 - p)."""

    first: Tensor  # (t, 128): dropout after the first ReLU
    second: Tensor  # (t, 64): dropout after the second ReLU (Bayesian router only)


class Router(nn.Module):
    """Linear(d, 128) -> ReLU -> Dropout -> Linear(128, 64) -> ReLU [-> Dropout] -> Linear(64, e).

    `mc_dropout=False` is the deterministic router of 8.2; `mc_dropout=True` the Bayesian router of
    9.1 (second dropout after the second ReLU). Xavier-uniform weights, zero biases. Dropout follows
    `self.training` unless `forward(x, stochastic=...)` says otherwise (MC passes in eval mode).

    MC passes in eval mode use a fixed bank of t dropout masks (`mask_bank`), the same for every
    sample: u(x) is then deterministic per sample and independent of the batch it arrives in, and
    the deployed ONNX graph (qmoe.deploy) holds the very same masks. Training draws fresh masks.
    """

    def __init__(self, in_dim: int, num_experts: int, dropout: float, mc_dropout: bool = False):
        super().__init__()
        self.bank_seed = MASK_BANK_SEED  # which fixed bank eval-mode MC passes use (a check may
        # swap it to measure how much routing depends on the bank; deployed models use the default)
        self.fc1 = nn.Linear(in_dim, HIDDEN[0])
        self.fc2 = nn.Linear(HIDDEN[0], HIDDEN[1])
        self.out = nn.Linear(HIDDEN[1], num_experts)
        self.p, self.mc_dropout = dropout, mc_dropout
        for layer in (self.fc1, self.fc2, self.out):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def num_experts(self) -> int:
        return self.out.out_features

    def _tail(self, h: Tensor, stochastic: bool) -> Tensor:
        """h (n, 128) after the first ReLU -> logits (n, e)."""
        h = F.relu(self.fc2(F.dropout(h, self.p, training=stochastic)))
        if self.mc_dropout:
            h = F.dropout(h, self.p, training=stochastic)
        return self.out(h)

    def forward(self, x: Tensor, stochastic: bool | None = None) -> Tensor:
        """x (b, d) -> routing logits (b, e)."""
        return self._tail(F.relu(self.fc1(x)), self.training if stochastic is None else stochastic)

    def sample_probs(self, x: Tensor, samples: int) -> Tensor:
        """T stochastic passes (dropout on, whatever the mode) as one batch -> softmax (t, b, e).

        The first Linear+ReLU has no dropout before it, so it runs once; its (b, 128) output is
        repeated t times. Training: fresh dropout masks per row, i.e. per pass and sample (global
        torch RNG). Eval: pass t applies mask t of `mask_bank(samples)` to every sample.
        """
        h = F.relu(self.fc1(x))  # (b, 128)
        b = h.shape[0]
        if not self.training:
            return self.banked_probs(h, self.mask_bank(samples))  # (t, b, e)
        h = h.unsqueeze(0).expand(samples, b, h.shape[1]).reshape(samples * b, -1)  # (t*b, 128)
        return self._tail(h, stochastic=True).softmax(dim=-1).view(samples, b, -1)  # (t, b, e)

    def banked_probs(self, h: Tensor, bank: MaskBank) -> Tensor:
        """h (b, 128) after the first ReLU -> softmax (t, b, e) of the t passes of `bank`."""
        h = F.relu(self.fc2(h.unsqueeze(0) * bank.first[:, None, :]))  # (t, b, 64)
        if self.mc_dropout:
            h = h * bank.second[:, None, :]
        return self.out(h).softmax(dim=-1)  # (t, b, e)

    def mask_bank(self, samples: int) -> MaskBank:
        """The fixed dropout masks of eval-mode MC passes (see `mask_bank`)."""
        return mask_bank(samples, self.p, self.bank_seed)

    def extra_repr(self) -> str:
        return f"p={self.p}, mc_dropout={self.mc_dropout}"


@functools.lru_cache(maxsize=64)
def mask_bank(samples: int, p: float, seed: int = MASK_BANK_SEED) -> MaskBank:
    """t = `samples` dropout masks, Bernoulli(1 - p) / (1 - p), drawn once from a generator seeded
    with `seed` (MASK_BANK_SEED for every deployed model; not the global RNG, not a state dict:
    every router with the same p and t gets the same bank). Cached: the tensors must not be
    modified."""
    if samples < 1:
        raise ValueError(f"mc samples {samples} < 1")
    g = torch.Generator().manual_seed(seed)
    keep = 1.0 - p
    draw = [torch.bernoulli(torch.full((samples, w), keep), generator=g) for w in HIDDEN[:2]]
    scale = 1.0 / keep if keep > 0 else 0.0
    return MaskBank(draw[0] * scale, draw[1] * scale)


def mc_uncertainty(probs: Tensor) -> Tensor:
    """Curiosity u(x) (9.2): sum over experts of the unbiased variance over the t passes.
    probs (t, b, e) -> (b,)."""
    if probs.shape[0] < 2:
        raise ValueError(f"need at least 2 MC samples for a variance, got {probs.shape[0]}")
    return probs.var(dim=0, unbiased=True).sum(dim=-1)


def _entropy(p: Tensor) -> Tensor:
    """Entropy over the last axis (nats), 0 log 0 = 0."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=-1)


def predictive_entropy(probs: Tensor) -> Tensor:
    """Entropy of the MC-mean routing distribution: probs (t, b, e) -> (b,)."""
    return _entropy(probs.mean(dim=0))


def bald(probs: Tensor) -> Tensor:
    """BALD (Houlsby et al. 2011, arXiv 1112.5745): the mutual information between the routing
    choice and the dropout mask, H(mean_t p_t) - mean_t H(p_t). probs (t, b, e) -> (b,)."""
    return _entropy(probs.mean(dim=0)) - _entropy(probs).mean(dim=0)


# u(x) from the t MC routing distributions, by RouteCuriosity.score
UNCERTAINTY = {"variance": mc_uncertainty, "entropy": predictive_entropy, "bald": bald}


def top_k(probs: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """probs (b, e) -> gate weights (b, k) (the chosen probabilities, not renormalised: 8.3) and
    expert indices (b, k), highest first."""
    return probs.topk(k, dim=-1)


def reference_balance_loss(probs: Tensor, index: Tensor) -> Tensor:
    """Reference load balancing (8.4): sum_e (mean_b r_be)^2; minimal (1/e) for uniform routing."""
    return probs.mean(dim=0).square().sum()


def switch_balance_loss(probs: Tensor, index: Tensor) -> Tensor:
    """Switch Transformer: e * sum_e f_e * P_e (f_e share of top-1 picks, P_e mean probability)."""
    e = probs.shape[-1]
    f = F.one_hot(index[:, 0], e).to(probs.dtype).mean(dim=0)  # (e,)
    return e * (f * probs.mean(dim=0)).sum()


def no_balance_loss(probs: Tensor, index: Tensor) -> Tensor:
    return probs.new_zeros(())


BALANCE_LOSSES = {
    "reference": reference_balance_loss,
    "switch": switch_balance_loss,
    "none": no_balance_loss,
}


@torch.no_grad()
def routing_frequencies(index: Tensor, num_experts: int) -> Tensor:
    """Share of samples whose top-1 expert is e: index (b, k) -> (e,)."""
    return torch.bincount(index[:, 0], minlength=num_experts).float() / max(index.shape[0], 1)

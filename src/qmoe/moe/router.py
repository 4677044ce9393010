"""Router MLPs, MC-dropout sampling, top-k gating and load-balancing losses.

Refs: reference-method.md 8.2-8.4 and 9.1-9.2; Switch Transformer (Fedus et al., arXiv 2101.03961)
for the balance loss E * sum_e f_e * P_e; MC dropout (Gal & Ghahramani, ICML 2016).
Legend: b batch, d features, e experts, k chosen experts, t MC samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HIDDEN = (128, 64)   # reference router widths (8.2)


class Router(nn.Module):
    """Linear(d, 128) -> ReLU -> Dropout -> Linear(128, 64) -> ReLU [-> Dropout] -> Linear(64, e).

    `mc_dropout=False` is the deterministic router of 8.2; `mc_dropout=True` the Bayesian router of
    9.1 (second dropout after the second ReLU). Xavier-uniform weights, zero biases. Dropout follows
    `self.training` unless `forward(x, stochastic=...)` says otherwise (MC passes in eval mode).
    """

    def __init__(self, in_dim: int, num_experts: int, dropout: float, mc_dropout: bool = False):
        super().__init__()
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
        repeated t times and the dropout masks differ per row, i.e. per pass (global torch RNG).
        """
        h = F.relu(self.fc1(x))                                          # (b, 128)
        b = h.shape[0]
        h = h.unsqueeze(0).expand(samples, b, h.shape[1]).reshape(samples * b, -1)  # (t*b, 128)
        return self._tail(h, stochastic=True).softmax(dim=-1).view(samples, b, -1)  # (t, b, e)

    def extra_repr(self) -> str:
        return f"p={self.p}, mc_dropout={self.mc_dropout}"


def mc_uncertainty(probs: Tensor) -> Tensor:
    """Curiosity u(x) (9.2): sum over experts of the unbiased variance over the t passes.
    probs (t, b, e) -> (b,)."""
    if probs.shape[0] < 2:
        raise ValueError(f"need at least 2 MC samples for a variance, got {probs.shape[0]}")
    return probs.var(dim=0, unbiased=True).sum(dim=-1)


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
    f = F.one_hot(index[:, 0], e).to(probs.dtype).mean(dim=0)        # (e,)
    return e * (f * probs.mean(dim=0)).sum()


def no_balance_loss(probs: Tensor, index: Tensor) -> Tensor:
    return probs.new_zeros(())


BALANCE_LOSSES = {"reference": reference_balance_loss, "switch": switch_balance_loss,
                  "none": no_balance_loss}


@torch.no_grad()
def routing_frequencies(index: Tensor, num_experts: int) -> Tensor:
    """Share of samples whose top-1 expert is e: index (b, k) -> (e,)."""
    return torch.bincount(index[:, 0], minlength=num_experts).float() / max(index.shape[0], 1)

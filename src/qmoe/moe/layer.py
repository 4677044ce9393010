"""Sparse top-k mixture of heterogeneous, injected experts behind one router (reference 8, 9).

Experts are any modules (b, d) -> (b, c), built elsewhere (qmoe.models resolves variant names);
the MoE only routes, combines and reports. Refs: lucidrains/st-moe-pytorch (injected experts,
NamedTuple output); Switch Transformer (arXiv 2101.03961); the reference's Bayesian router (9.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from qmoe.moe.curiosity import draw_weights, input_draw
from qmoe.moe.router import UNCERTAINTY, Router, top_k

BalanceLoss = Callable[[Tensor, Tensor], Tensor]


class MoEOutput(NamedTuple):
    logits: Tensor  # (b, c) combined expert logits
    routing_probs: Tensor  # (b, e) the distribution routed on (after any curiosity strategy)
    aux_loss: Tensor  # () weighted load-balancing loss; add it to the task loss
    uncertainty: Tensor | None  # (b,) curiosity u(x) (9.2), None when no MC passes run
    expert_index: Tensor  # (b, k) chosen experts, best first


class MoE(nn.Module):
    """output = sum over the k chosen experts of r_e * f_e(x) / k (8.3); only chosen experts run.

    Args:
        experts: one module per router output, (b, d) -> (b, c).
        router: a Router with `len(experts)` outputs (Bayesian when a strategy is given).
        top_k: experts per sample.
        balance_loss, balance_alpha: aux_loss = alpha * balance_loss(routing_probs, expert_index).
        strategy: curiosity strategy (qmoe.moe.curiosity) or None (no MC passes, uncertainty None).
        mc_samples: T, the MC-dropout passes that estimate u(x).
        score: how u(x) is read from the T passes (a key of qmoe.moe.router.UNCERTAINTY).
        draw_seed: the `random` placebo: u(x) is `input_draw` with this seed, no MC passes.
    """

    def __init__(
        self,
        experts: Sequence[nn.Module],
        router: Router,
        top_k: int,
        balance_loss: BalanceLoss,
        balance_alpha: float,
        strategy: nn.Module | None = None,
        mc_samples: int = 10,
        score: str = "variance",
        draw_seed: int | None = None,
    ):
        super().__init__()
        if score not in UNCERTAINTY:
            raise ValueError(f"unknown uncertainty score {score!r}; valid: {sorted(UNCERTAINTY)}")
        self.score, self.draw_seed = score, draw_seed
        # not in the state dict: rebuilt from the seed (checkpoints store the config)
        self.register_buffer(
            "draw_weights",
            None if draw_seed is None else draw_weights(router.fc1.in_features, draw_seed),
            persistent=False,
        )
        if len(experts) != router.num_experts:
            raise ValueError(
                f"{len(experts)} experts but the router has {router.num_experts} "
                "outputs; they must match (reference-method.md 8.8)"
            )
        if not 1 <= top_k <= len(experts):
            raise ValueError(f"top_k={top_k} not in [1, {len(experts)}]")
        if strategy is not None and draw_seed is None and mc_samples < 2:
            raise ValueError(f"mc_samples={mc_samples}: need >= 2 for a variance")
        self.experts = nn.ModuleList(experts)
        self.router, self.strategy = router, strategy
        self.k, self.mc_samples = top_k, mc_samples
        self.balance_loss, self.balance_alpha = balance_loss, balance_alpha

    @torch.no_grad()
    def uncertainty(self, x: Tensor) -> Tensor:
        """u(x) (b,): `score` of `mc_samples` stochastic router passes (dropout on in any mode), or
        the placebo's per-sample draw."""
        if self.draw_weights is not None:
            return input_draw(x, self.draw_weights)
        return UNCERTAINTY[self.score](self.router.sample_probs(x, self.mc_samples))

    def forward(self, x: Tensor) -> MoEOutput:
        """x (b, d) -> MoEOutput.

        Legend: b batch, d features, e experts, k chosen per sample, c classes, t MC passes.
        As in the reference (9.1), the t MC passes run first, then the routing pass (stochastic in
        training, deterministic in eval). u carries no gradient: nothing differentiates through it.
        """
        u = self.uncertainty(x) if self.strategy is not None else None  # (b,) or None
        probs = self.router(x).softmax(dim=-1)  # (b, e)
        if self.strategy is not None:
            probs = self.strategy(probs, u)  # (b, e)
        weights, index = top_k(probs, self.k)  # (b, k), (b, k)
        logits = self._combine(x, weights, index) / self.k  # (b, c)
        aux = self.balance_alpha * self.balance_loss(probs, index)  # ()
        return MoEOutput(logits, probs, aux, u, index)

    def _combine(self, x: Tensor, weights: Tensor, index: Tensor) -> Tensor:
        """sum_k weights[:, k] * expert_{index[:, k]}(x): each expert sees only its rows."""
        out = None
        for e, expert in enumerate(self.experts):
            hit = index == e  # (b, k)
            rows = hit.any(dim=-1).nonzero().squeeze(-1)  # (n_e,)
            if rows.numel() == 0:
                continue
            y = expert(x[rows])  # (n_e, c)
            gate = (weights * hit).sum(dim=-1)[rows, None].to(y.dtype)  # (n_e, 1)
            if out is None:
                out = y.new_zeros(x.shape[0], y.shape[1])
            out = out.index_add(0, rows, gate * y)
        if out is None:
            raise ValueError("empty batch: the MoE needs at least one sample")
        return out

    @torch.no_grad()
    def calibrate_(self, x_val: Tensor) -> None:
        """Fix the curiosity strategy's statistics on (n, d) standardised validation inputs (our
        `route` mode: the escalation threshold); a no-op for the other modes."""
        if self.strategy is None or not hasattr(self.strategy, "calibrate_"):
            return
        self.strategy.calibrate_(self.uncertainty(x_val))

    def extra_repr(self) -> str:
        signal = (
            f"draw_seed={self.draw_seed}"
            if self.draw_seed is not None
            else f"mc_samples={self.mc_samples}, score={self.score}"
        )
        return f"top_k={self.k}, {signal}, balance_alpha={self.balance_alpha}"

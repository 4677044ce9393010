"""Uncertainty routing that can be judged: what the `route` threshold was calibrated on, which
test samples escalated, and how much that depends on T and on the dropout-mask bank.

For a deployed MoE whose curiosity strategy escalates (`route`, or its `random` placebo),
`routing_record` returns the JSON-able record the train stage adds to curiosity/<model>.json:

- `tau`, `calibration` (which part), `n_calibration` (how many clips set the threshold);
- per test sample `escalated` (u > tau) and `moved` (escalated and routed away from its top
  expert), so the escalation share is read off the record;
- per test sample `pred_none` and `pred_escalated`: the same weights' prediction when no sample
  escalates (tau = +inf) and when every sample does (tau = -inf). Any escalation set's
  predictions follow from these two, so the analysis compares escalating by u with escalating
  other clips (at random, or none) on the same weights without loading a checkpoint;
- `sensitivity` (route only): for each T of `check_mc_samples` and each of `check_banks` mask
  banks, the threshold recalibrated on the same clips, the escalation share, the macro-F1 and the
  Jaccard overlap of the escalated set with the deployed one (T = the model's own, bank 0). Same
  trained weights; only the MC estimate of u changes. `bank_counts` {T: per test sample, in how
  many of the banks it escalated} measures how much escalation is the bank's doing.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from qmoe.moe.curiosity import Escalate, RandomEscalate
from qmoe.training.fit import predict
from qmoe.training.metrics import scores


def escalates(model: nn.Module) -> bool:
    """True for a (Standardized) MoE whose strategy escalates uncertain samples."""
    return isinstance(getattr(getattr(model, "net", None), "strategy", None), Escalate)


def _escalation(model: nn.Module, x: torch.Tensor, batch: int) -> tuple[np.ndarray, ...]:
    """(pred, over, moved) of a Standardized MoE on raw inputs x (n, d), `batch` rows per call:
    over = u > tau; moved = over and the router's own top expert was not the target."""
    pred = predict(model, x, batch)
    s = model.net.strategy
    with torch.no_grad():  # eval: the routing pass is deterministic, per sample
        top = model.net.router((x - model.norm_mean) / model.norm_std).argmax(dim=-1)
    over = (pred.uncertainty > s.tau).numpy()
    moved = over & (top.numpy() != s.target)
    return pred.pred.numpy(), over, moved


def forced(model: nn.Module, x: torch.Tensor, batch: int, tau: float) -> np.ndarray:
    """Predictions (n,) of a copy of the escalating MoE `model` with its threshold set to `tau`
    (+inf: nothing escalates; -inf: everything does); `model` is not changed."""
    probe = copy.deepcopy(model).eval()
    probe.net.strategy.tau.fill_(tau)
    return predict(probe, x, batch).pred.numpy()


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.sum(a | b)
    return float(np.sum(a & b) / union) if union else 1.0


def sensitivity(
    model: nn.Module,
    x_cal: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    num_classes: int,
    batch: int,
    mc_samples: tuple[int, ...],
    banks: int,
    deployed_over: np.ndarray,
) -> tuple[list[dict[str, Any]], dict]:
    """One row per (T, bank): tau recalibrated on x_cal, escalation share, F1, overlap; and per
    T the number of banks in which each test sample escalated."""
    probe = copy.deepcopy(model).eval()
    net, rows, counts = probe.net, [], {}
    z_cal = (x_cal - probe.norm_mean) / probe.norm_std
    for t in mc_samples:
        counts[str(t)] = np.zeros(len(x_test), dtype=int)
        for bank in range(banks):
            net.mc_samples, net.router.bank_seed = t, bank
            with torch.no_grad():
                net.calibrate_(z_cal)
            pred, over, moved = _escalation(probe, x_test, batch)
            counts[str(t)] += over
            rows.append(
                {
                    "mc_samples": t,
                    "bank": bank,
                    "tau": float(net.strategy.tau),
                    "share": float(over.mean()),
                    "moved_share": float(moved.mean()),
                    "macro_f1": scores(y_test, torch.as_tensor(pred), num_classes).macro_f1,
                    "jaccard_vs_deployed": _jaccard(over, deployed_over),
                }
            )
    return rows, {t: c.tolist() for t, c in counts.items()}


def routing_record(
    model: nn.Module,
    x_cal: torch.Tensor,
    calibration: str,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    num_classes: int,
    batch: int,
    mc_samples: tuple[int, ...],
    banks: int,
) -> dict[str, Any]:
    """The record of a deployed escalating MoE (see the module docstring); `model` is not changed.
    `calibration` names the part x_cal comes from (the protocol's choice)."""
    _, over, moved = _escalation(model, x_test, batch)
    record = {
        "tau": float(model.net.strategy.tau),
        "calibration": calibration,
        "n_calibration": int(len(x_cal)),
        "escalated": over.tolist(),
        "moved": moved.tolist(),
        "pred_none": forced(model, x_test, batch, float("inf")).tolist(),
        "pred_escalated": forced(model, x_test, batch, float("-inf")).tolist(),
        "sensitivity": [],
        "bank_counts": {},
    }
    if not isinstance(model.net.strategy, RandomEscalate):  # the placebo has no MC passes
        record["sensitivity"], record["bank_counts"] = sensitivity(
            model, x_cal, x_test, y_test, num_classes, batch, mc_samples, banks, over
        )
    return record

"""Training recipes of the reference (reference-method.md 6.3-6.4 single models, 8.4-8.5 MoE).

All data lives in tensors (a few thousand clips at most), so an epoch is a handful of matrix
products rather than a DataLoader's per-batch Python overhead. No file I/O here.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qmoe.io import require
from qmoe.training.metrics import scores
from qmoe.training.protocols import Monitor, Selection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MoETrainConfig:
    """params.yaml `train.moe`: the reference's MoE recipe (8.5: Adam, no label smoothing)."""

    lr: float
    patience: int
    min_delta: float
    check_mc_samples: tuple[int, ...]  # escalating MoEs: T values the routing check re-measures
    check_banks: int  # ... with this many dropout-mask banks each

    def __post_init__(self) -> None:
        few = [t for t in self.check_mc_samples if t < 2]
        require(
            not few,
            "train.moe.check_mc_samples",
            f"{list(self.check_mc_samples)}: {few} < 2 (a variance needs 2 passes)",
        )
        require(self.check_banks >= 1, "train.moe.check_banks", f"{self.check_banks} < 1")
        require(self.lr > 0, "train.moe.lr", f"{self.lr} must be > 0")
        require(self.patience >= 1, "train.moe.patience", f"{self.patience} < 1")
        require(self.min_delta >= 0, "train.moe.min_delta", f"{self.min_delta} < 0")


@dataclass(frozen=True)
class TrainConfig:
    """params.yaml `train`: the reference's hyper-parameters (6.4) and the protocols' knobs."""

    labels: str
    seeds: tuple[int, ...]
    split_seed: int
    faithful_folds: int
    val_fraction: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    patience: int
    lr_factor: float
    loss_min_delta: float  # a validation-loss improvement must exceed this (loss-monitored models)
    moe: MoETrainConfig  # the MoE recipe (train.moe); single models ignore it

    def __post_init__(self) -> None:
        require(len(self.seeds) >= 1, "train.seeds", "needs at least one seed")
        # a seed names its checkpoint (fold{k}_seed{s}.pt): a repeat would overwrite one, and
        # every stage below reads seeds as non-negative integers
        negative = [x for x in self.seeds if x < 0]
        require(not negative, "train.seeds", f"{list(self.seeds)}: negative seed(s) {negative}")
        repeated = sorted({x for x in self.seeds if self.seeds.count(x) > 1})
        require(not repeated, "train.seeds", f"{list(self.seeds)}: seed(s) {repeated} repeated")
        require(self.epochs >= 1, "train.epochs", f"{self.epochs} < 1")
        require(self.batch_size >= 1, "train.batch_size", f"{self.batch_size} < 1")
        require(self.lr > 0, "train.lr", f"{self.lr} must be > 0")
        require(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        require(0 <= self.label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)")
        require(self.patience >= 1, "train.patience", "must be >= 1")
        require(0 < self.lr_factor < 1, "train.lr_factor", f"{self.lr_factor} not in (0, 1)")
        require(self.loss_min_delta >= 0, "train.loss_min_delta", f"{self.loss_min_delta} < 0")


@dataclass(frozen=True)
class Recipe:
    """How one model family is optimised and which epoch is kept."""

    lr: float
    weight_decay: float
    label_smoothing: float
    patience: int
    min_delta: float  # improvement of the monitored value needed to reset early stopping / be best
    use_scheduler: bool  # ReduceLROnPlateau on the monitored value
    lr_factor: float
    select_best: bool  # True: best epoch by `monitor`; False: last epoch (reference singles)
    epochs: int
    batch_size: int
    monitor: Monitor  # what judges an epoch: checkpoint, early stopping, LR schedule


def recipe_for(cfg: TrainConfig, moe: MoETrainConfig | None, selection: Selection) -> Recipe:
    """Single models: AdamW + label smoothing + plateau LR (6.3); MoE (`moe` given): Adam, no
    smoothing, no scheduler (8.5). `selection` (the protocol's) says what judges an epoch; the
    reference's F1 improvement is strict for single models and `train.moe.min_delta` for MoEs."""
    if selection.monitor is Monitor.VAL_LOSS:
        min_delta = cfg.loss_min_delta
    else:
        min_delta = moe.min_delta if moe is not None else 0.0
    if moe is not None:  # (lr, weight decay, label smoothing, patience, LR scheduler)
        optimiser = (moe.lr, 0.0, 0.0, moe.patience, False)
    else:
        optimiser = (cfg.lr, cfg.weight_decay, cfg.label_smoothing, cfg.patience, True)
    lr, decay, smoothing, patience, scheduler = optimiser
    return Recipe(
        lr,
        decay,
        smoothing,
        patience,
        min_delta,
        scheduler,
        cfg.lr_factor,
        selection.keep_best,
        cfg.epochs,
        cfg.batch_size,
        selection.monitor,
    )


class FitResult(NamedTuple):
    history: list[dict]
    best_epoch: int
    selected_epoch: int
    epochs_run: int


class Prediction(NamedTuple):
    pred: Tensor  # (n,) predicted class
    expert: Tensor | None  # (n,) chosen expert (MoE only)
    gate_prob: Tensor | None  # (n,) routing probability of the chosen expert
    uncertainty: Tensor | None  # (n,) curiosity u(x), where the router computes it


def class_weights(y: Tensor, num_classes: int) -> Tensor:
    """w_c = 1 / count_c on the training part (6.3); absent classes get weight 0."""
    counts = torch.bincount(y, minlength=num_classes).float()
    return torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))


def _forward(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None, object]:
    """Logits and auxiliary loss from a single model (Tensor) or an MoE (MoEOutput)."""
    out = model(x)
    if isinstance(out, Tensor):
        return out, None, out
    return out.logits, out.aux_loss, out


def fit(
    model: nn.Module,
    x_tr: Tensor,
    y_tr: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    num_classes: int,
    recipe: Recipe,
    generator: torch.Generator,
    context: str = "",
) -> FitResult:
    """Train in place; on return `model` holds the selected epoch's weights. An epoch is best
    when its monitored value beats the best so far by more than `recipe.min_delta` (a tie keeps
    the earlier epoch)."""
    opt, sched = _optimiser(model, recipe)
    loss_monitor = recipe.monitor is Monitor.VAL_LOSS
    weights = class_weights(y_tr, num_classes)
    keeper, history = _Keeper(recipe), []
    for epoch in range(1, recipe.epochs + 1):
        train_loss = _train_epoch(
            model, opt, x_tr, y_tr, weights, recipe, generator, context, epoch
        )
        val_loss, s = _validate(model, x_val, y_val, weights, num_classes)
        history.append(_epoch_row(epoch, train_loss, val_loss, s, opt.param_groups[0]["lr"]))
        # `best` is higher-is-better: the negated loss when the loss is monitored
        keeper.see(-val_loss if loss_monitor else s.weighted_f1, epoch, model)
        if recipe.use_scheduler:
            sched.step(val_loss if loss_monitor else s.weighted_f1)
        if keeper.bad >= recipe.patience:
            break
    if recipe.select_best and keeper.state is not None:
        model.load_state_dict(keeper.state)
    selected = keeper.epoch if recipe.select_best else len(history)
    return FitResult(history, keeper.epoch, selected, len(history))


def _epoch_row(epoch: int, train_loss: float, val_loss: float, s, lr: float) -> dict:
    """One history.csv row."""
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_weighted_f1": s.weighted_f1,
        "val_macro_f1": s.macro_f1,
        "lr": lr,
    }


def _optimiser(model: nn.Module, recipe: Recipe):
    """(AdamW, ReduceLROnPlateau on the monitored value); fused: one kernel for the whole step
    (about a third of an MoE epoch otherwise)."""
    opt = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True
    )
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt,
        mode="min" if recipe.monitor is Monitor.VAL_LOSS else "max",
        patience=recipe.patience,
        factor=recipe.lr_factor,
    )
    return opt, sched


class _Keeper:
    """The best epoch so far (higher is better), its weights, and epochs since it improved."""

    def __init__(self, recipe: Recipe):
        self.recipe, self.best, self.epoch, self.bad, self.state = recipe, -math.inf, 0, 0, None

    def see(self, value: float, epoch: int, model: nn.Module) -> None:
        if value > self.best + self.recipe.min_delta:
            self.best, self.epoch, self.bad = value, epoch, 0
            if self.recipe.select_best:
                self.state = copy.deepcopy(model.state_dict())
        else:
            self.bad += 1


def _train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    weights: Tensor,
    recipe: Recipe,
    generator: torch.Generator,
    context: str,
    epoch: int,
) -> float:
    model.train()
    order = torch.randperm(len(y), generator=generator)
    total = 0.0
    for start in range(0, len(y), recipe.batch_size):
        idx = order[start : start + recipe.batch_size]
        logits, aux, _ = _forward(model, x[idx])
        loss = F.cross_entropy(
            logits, y[idx], weight=weights, label_smoothing=recipe.label_smoothing
        )
        if aux is not None:
            loss = loss + aux
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{context}: loss became {loss.item()} at epoch {epoch}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / len(y)


@torch.no_grad()
def _validate(model: nn.Module, x: Tensor, y: Tensor, weights: Tensor, num_classes: int):
    model.eval()
    logits, _, _ = _forward(model, x)
    loss = F.cross_entropy(logits.float(), y, weight=weights).item()
    return loss, scores(y, logits.argmax(dim=1), num_classes)


@torch.inference_mode()
def predict(model: nn.Module, x: Tensor, batch_size: int | None = None) -> Prediction:
    """Predictions of a (deployed) model on (n, d) inputs, `batch_size` rows per forward call
    (None: all n at once), with routing details for an MoE. At batch 1 no prediction depends on
    another input (dynamic int8 quantises activations over the whole call's tensor)."""
    model.eval()
    step = len(x) if batch_size is None else batch_size
    if step < 1:
        raise ValueError(f"predict: batch_size {batch_size} < 1")
    parts = [_predict_batch(model, x[i : i + step]) for i in range(0, len(x), step)]
    return Prediction(*(None if f[0] is None else torch.cat(f) for f in zip(*parts)))


def _predict_batch(model: nn.Module, x: Tensor) -> Prediction:
    logits, _, out = _forward(model, x)
    pred = logits.argmax(dim=1)
    if isinstance(out, Tensor):
        return Prediction(pred, None, None, None)
    expert = out.expert_index[:, 0]  # (n,) top-1 expert
    gate = out.routing_probs.gather(1, expert[:, None]).squeeze(1)  # (n,)
    return Prediction(pred, expert, gate.float(), out.uncertainty)

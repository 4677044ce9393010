"""Evaluation protocols: per fold, which clips train, validate and test a model, which epoch it
keeps and how its test clips are scored.

- `corrected`: official folds as test folds and an inner validation split of the training part
  that makes every choice (epoch, LR schedule, route threshold), so no test clip influences one;
  test clips scored one at a time, as deployed.
- `faithful`: what the reference code does (reference-method.md 4.1, 5.2, 6.3, 6.5): its folds,
  its held-out fold as validation, its batches of 64, features and labels.

Each protocol's `describe()` lines are printed in the report's methods section and appear verbatim
in docs/protocols.md (tests/training/test_protocols.py checks both against the code).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np

from qmoe.io import InputError, choose, require

if TYPE_CHECKING:
    import pandas as pd

    from qmoe.training.fit import TrainConfig

REFERENCE_PROJECTION_SEED = 0  # the reference's random head was unseeded (5.2); ours is seeded
SCRAMBLED_DATASETS = ("esc50",)  # where the reference trained its scrambled 5-way task (4.1)


class Monitor(Enum):
    """What each epoch is judged on: checkpoint choice, early stopping and the LR schedule."""

    VAL_LOSS = "validation loss"  # class-weighted cross-entropy, lower is better (continuous)
    WEIGHTED_F1 = "validation weighted F1"  # the reference's (6.3, 8.5); higher is better


class Selection(NamedTuple):
    """Which epoch a model keeps: the best by `monitor`, or (keep_best False) its last."""

    monitor: Monitor
    keep_best: bool


class Split(NamedTuple):
    """Row indices into the feature table for one fold (validation may equal test: faithful)."""

    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Corrected:
    """Official folds as test folds + an inner stratified validation split of the training part."""

    val_fraction: float
    fallback_folds: int = 5  # grouped stratified folds for datasets without official folds
    name: ClassVar[str] = "corrected"
    frozen_deploy: ClassVar[bool] = True  # deployed models store their quantised weights once
    eval_batch: ClassVar[int] = 1  # as deployed: no prediction depends on another test clip
    calibration: ClassVar[str] = "validation split"  # see calibration_rows
    # TrainConfig fields it never reads: editing them cannot change its models (qmoe.training.reuse)
    unused_train_fields: ClassVar[tuple[str, ...]] = ("faithful_folds",)

    @classmethod
    def from_train(cls, cfg: TrainConfig) -> Corrected:
        return cls(val_fraction=cfg.val_fraction)

    def seeds(self, cfg: TrainConfig) -> tuple[int, ...]:
        """Every model seed of `train.seeds`."""
        return cfg.seeds

    def selection(self, moe: bool) -> Selection:
        """Every variant keeps its epoch of lowest validation loss."""
        return Selection(Monitor.VAL_LOSS, keep_best=True)

    def calibration_rows(self, split: Split) -> np.ndarray:
        """Where the `route` threshold is calibrated: the validation split."""
        return split.val

    @staticmethod
    def feature_table(table: pd.DataFrame) -> pd.DataFrame:
        """The features its models see: the feature table as the features stage wrote it."""
        return table

    @staticmethod
    def label_set(dataset: str, configured: str) -> str:
        """The label set its models learn: `train.labels`."""
        return configured

    def describe(self) -> list[str]:
        return [
            f"Test folds: the official folds (grouped stratified {self.fallback_folds}-fold by "
            "source recording where a dataset has none).",
            f"Validation: about {self.val_fraction:.0%} of the training part, stratified by "
            "class and grouped by source recording, drawn anew for every model seed.",
            "Checkpoint: the epoch of lowest validation loss (class-weighted cross-entropy; an "
            "improvement must exceed `train.loss_min_delta`) of every variant; early stopping "
            "and the LR schedule follow the same loss.",
            "Seeds: every seed of `train.seeds`.",
            "Features: the pooled backbone embeddings, z-scored on the training part.",
            "Labels: `train.labels`.",
            f"Scoring: each test clip alone (batch {self.eval_batch}), as deployed.",
            f"Route threshold: calibrated on the {self.calibration}.",
            "Deployed form: quantised weights frozen once (what a deployment stores).",
        ]

    def __post_init__(self) -> None:
        require(
            0.0 < self.val_fraction < 0.5,
            "train.val_fraction",
            f"{self.val_fraction} not in (0, 0.5)",
        )
        require(self.fallback_folds >= 2, "corrected.fallback_folds", "needs at least 2 folds")

    def splits(
        self,
        labels: np.ndarray,
        folds: np.ndarray,
        groups: np.ndarray,
        seed: int,
        model_seed: int = 0,
    ) -> list[Split]:
        """Test folds from `seed` (the split seed: the same for every model, so folds pair up);
        the inner validation split from (`seed`, `model_seed`, fold)."""
        test_folds = _official_or_grouped(labels, folds, groups, self.fallback_folds, seed)
        out = []
        for k in np.unique(test_folds):
            rest = np.flatnonzero(test_folds != k)
            inner = int(np.random.SeedSequence([seed, model_seed, int(k)]).generate_state(1)[0])
            train, val = grouped_validation(rest, labels, groups, self.val_fraction, inner)
            out.append(Split(int(k), train, val, np.flatnonzero(test_folds == k)))
        return out


@dataclass(frozen=True)
class Faithful:
    """The reference: StratifiedKFold(n_folds, shuffle, seed); validation = the held-out fold."""

    n_folds: int
    seed: int
    name: ClassVar[str] = "faithful"
    frozen_deploy: ClassVar[bool] = False  # the reference timed its fake-quantised modules
    # the reference's DataLoader batches (6.3): transductive for ptq_int8 (a scale per batch)
    eval_batch: ClassVar[int] = 64
    calibration: ClassVar[str] = "training part"  # see calibration_rows
    # TrainConfig fields it never reads: editing them cannot change its models (qmoe.training.reuse)
    unused_train_fields: ClassVar[tuple[str, ...]] = ("seeds", "val_fraction", "loss_min_delta")

    @classmethod
    def from_train(cls, cfg: TrainConfig) -> Faithful:
        return cls(n_folds=cfg.faithful_folds, seed=cfg.split_seed)

    def seeds(self, cfg: TrainConfig) -> tuple[int, ...]:
        """The reference's single seed (the split seed)."""
        return (self.seed,)

    def selection(self, moe: bool) -> Selection:
        """The reference (6.3, 8.5): weighted F1 on the held-out (= test) fold; single models keep
        their last epoch, the MoE its best."""
        return Selection(Monitor.WEIGHTED_F1, keep_best=moe)

    def calibration_rows(self, split: Split) -> np.ndarray:
        """Where the `route` threshold is calibrated: the training part (validation is the test
        fold here, whose own quantile would set the escalation share on test)."""
        return split.train

    @staticmethod
    def feature_table(table: pd.DataFrame) -> pd.DataFrame:
        """The reference's features (5.2): its random Linear(D, D) head on the pooled embeddings,
        seeded so it is reproducible. Train, export and benchmark read the table through this."""
        import torch

        cols = [c for c in table.columns if c.startswith("emb_")]
        weight, bias = reference_projection(len(cols), REFERENCE_PROJECTION_SEED)
        # float64 sums rounded to float32: the same numbers whatever the thread count or the
        # stage (train, export and benchmark each project the table)
        x = torch.from_numpy(table[cols].to_numpy(dtype=np.float64, copy=True))
        projected = (x @ weight.double().T + bias.double()).float().numpy()
        out = table.copy()
        out[cols] = projected
        return out

    @staticmethod
    def label_set(dataset: str, configured: str) -> str:
        """The reference's task: its scrambled 5-way ESC-50 (4.1); elsewhere `train.labels`."""
        return "scrambled" if dataset in SCRAMBLED_DATASETS else configured

    def describe(self) -> list[str]:
        return [
            f"Test folds: StratifiedKFold({self.n_folds}, shuffle, seed {self.seed}) on the "
            "labels; the official folds are ignored.",
            "Validation: the test fold itself (the reference's held-out fold).",
            "Checkpoint: single models at their last epoch, MoEs at their best test-fold epoch "
            "(weighted F1).",
            f"Seeds: one, the split seed {self.seed}.",
            "Features: the reference's head, a random Linear(D, D) of the pooled embeddings "
            f"(seeded: {REFERENCE_PROJECTION_SEED}), z-scored on the training part.",
            "Labels: on ESC-50 the reference's scrambled 5-way mapping; elsewhere `train.labels`.",
            f"Scoring: batches of {self.eval_batch} test clips (transductive for `ptq_int8`).",
            f"Route threshold: calibrated on the {self.calibration} (never the test fold).",
            "Deployed form: the fake-quantised training modules (as the reference timed them).",
        ]

    def __post_init__(self) -> None:
        require(self.n_folds >= 2, "train.faithful_folds", f"{self.n_folds} < 2")

    def splits(
        self,
        labels: np.ndarray,
        folds: np.ndarray,
        groups: np.ndarray,
        seed: int,
        model_seed: int = 0,
    ) -> list[Split]:
        # The reference seeds the split once (42) whatever the model seed: folds are shared by runs.
        from sklearn.model_selection import StratifiedKFold  # see grouped_validation

        skf = StratifiedKFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        idx = np.arange(len(labels))
        return [
            Split(k + 1, np.sort(tr), np.sort(te), np.sort(te))
            for k, (tr, te) in enumerate(skf.split(idx, labels))
        ]


def grouped_validation(
    rest: np.ndarray, labels: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sorted row indices of `rest`: one fold of a shuffled StratifiedGroupKFold
    with about 1 / val_fraction folds, so val is about `val_fraction` of `rest`, stratified by
    class and never sharing a source recording (`groups`) with train. Tiny sets get fewer, larger
    folds so validation can hold about one clip per class."""
    # sklearn (1.3 s to import) only where splits are drawn, never in the training workers
    from sklearn.model_selection import StratifiedGroupKFold

    n_classes, n_groups = len(np.unique(labels[rest])), len(np.unique(groups[rest]))
    n_splits = max(2, min(round(1 / val_fraction), n_groups, len(rest) // max(n_classes, 1)))
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only n members": tiny sets
        warnings.simplefilter("ignore", UserWarning)
        train, val = next(sgkf.split(rest, labels[rest], groups[rest]))
    return np.sort(rest[train]), np.sort(rest[val])


Protocol = Corrected | Faithful
PROTOCOLS: dict[str, type] = {"corrected": Corrected, "faithful": Faithful}


def protocol_class(name: str) -> type:
    """Protocol class by name; an unknown name lists the valid ones."""
    return choose(name, PROTOCOLS, "protocol")


def make_protocol(name: str, cfg: TrainConfig) -> Protocol:
    """The protocol `name` with its knobs from params `train`."""
    return protocol_class(name).from_train(cfg)


def reference_projection(dim: int, seed: int):
    """(weight (dim, dim), bias (dim,)) of the reference's random head: nn.Linear's default
    U(-1/sqrt(D), 1/sqrt(D)), seeded; the numbers of features.backbones.random_projection (tested)
    without importing the features package into every stage that imports the protocols."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(dim)
    weight = torch.empty(dim, dim).uniform_(-bound, bound, generator=gen)
    return weight, torch.empty(dim).uniform_(-bound, bound, generator=gen)


def feature_table(protocol: str, table: pd.DataFrame) -> pd.DataFrame:
    """The feature table (qmoe.contract.features) as the models of `protocol` see it; every stage
    that feeds test clips to a model (train, export, benchmark) reads it through this."""
    return protocol_class(protocol).feature_table(table)


def _official_or_grouped(
    labels: np.ndarray, folds: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> np.ndarray:
    """Official fold ids where every clip has one (> 0); else grouped stratified folds 1..n."""
    if np.all(folds > 0):
        return folds.astype(int)
    if np.any(folds > 0):
        raise InputError(
            "some clips have an official fold and others none (fold 0); fix the manifest"
        )
    from sklearn.model_selection import StratifiedGroupKFold  # see grouped_validation

    sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    out = np.zeros(len(labels), dtype=int)
    for k, (_, te) in enumerate(sgkf.split(np.arange(len(labels)), labels, groups)):
        out[te] = k + 1
    return out

"""Evaluation protocols: how clips are split into train / validation / test per fold.

- `corrected`: the official folds are the test folds (grouped stratified K-fold by source
  recording where a dataset has none); an inner stratified validation split (`val_fraction` of the
  training part) drives early stopping, LR scheduling and checkpoint choice, so no test sample
  influences any choice. Normalisation is fitted on the training part only (train.py).
- `faithful`: what the reference code does (reference-method.md 6.3, 6.5): StratifiedKFold(5,
  shuffle, seed 42) on the labels, ignoring official folds, and the held-out fold doubles as
  the validation set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from qmoe.io import InputError, choose, require

if TYPE_CHECKING:
    from qmoe.training.fit import TrainConfig


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
    frozen_deploy: ClassVar[bool] = True   # deployed models store their quantised weights once

    @classmethod
    def from_train(cls, cfg: TrainConfig) -> Corrected:
        return cls(val_fraction=cfg.val_fraction)

    def seeds(self, cfg: TrainConfig) -> tuple[int, ...]:
        """Every model seed of `train.seeds`."""
        return cfg.seeds

    def select_best(self, moe: bool) -> bool:
        """Every variant keeps its best validation epoch."""
        return True

    def __post_init__(self) -> None:
        require(0.0 < self.val_fraction < 0.5, "train.val_fraction", f"{self.val_fraction} not in (0, 0.5)")
        require(self.fallback_folds >= 2, "corrected.fallback_folds", "needs at least 2 folds")

    def splits(self, labels: np.ndarray, folds: np.ndarray, groups: np.ndarray, seed: int) -> list[Split]:
        test_folds = _official_or_grouped(labels, folds, groups, self.fallback_folds, seed)
        out = []
        n_classes = len(np.unique(labels))
        for k in np.unique(test_folds):
            rest = np.flatnonzero(test_folds != k)
            # at least one validation clip per class, or stratification is impossible (tiny sets)
            n_val = max(round(self.val_fraction * len(rest)), n_classes)
            train, val = train_test_split(
                rest, test_size=n_val, stratify=labels[rest], random_state=seed + int(k)
            )
            out.append(Split(int(k), np.sort(train), np.sort(val), np.flatnonzero(test_folds == k)))
        return out


@dataclass(frozen=True)
class Faithful:
    """The reference: StratifiedKFold(n_folds, shuffle, seed); validation = the held-out fold."""

    n_folds: int
    seed: int
    name: ClassVar[str] = "faithful"
    frozen_deploy: ClassVar[bool] = False  # the reference timed its fake-quantised modules

    @classmethod
    def from_train(cls, cfg: TrainConfig) -> Faithful:
        return cls(n_folds=cfg.faithful_folds, seed=cfg.split_seed)

    def seeds(self, cfg: TrainConfig) -> tuple[int, ...]:
        """The reference's single seed (the split seed)."""
        return (self.seed,)

    def select_best(self, moe: bool) -> bool:
        """The reference (6.3, 8.5): single models keep their last epoch, the MoE its best
        held-out (= test) epoch."""
        return moe

    def __post_init__(self) -> None:
        require(self.n_folds >= 2, "train.faithful_folds", f"{self.n_folds} < 2")

    def splits(self, labels: np.ndarray, folds: np.ndarray, groups: np.ndarray, seed: int) -> list[Split]:
        # The reference seeds the split once (42) whatever the model seed: folds are shared by runs.
        skf = StratifiedKFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        idx = np.arange(len(labels))
        return [
            Split(k + 1, np.sort(tr), np.sort(te), np.sort(te))
            for k, (tr, te) in enumerate(skf.split(idx, labels))
        ]


Protocol = Corrected | Faithful
PROTOCOLS: dict[str, type] = {"corrected": Corrected, "faithful": Faithful}


def protocol_class(name: str) -> type:
    """Protocol class by name; an unknown name lists the valid ones."""
    return choose(name, PROTOCOLS, "protocol")


def make_protocol(name: str, cfg: TrainConfig) -> Protocol:
    """The protocol `name` with its knobs from params `train`."""
    return protocol_class(name).from_train(cfg)


def _official_or_grouped(
    labels: np.ndarray, folds: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> np.ndarray:
    """Official fold ids where every clip has one (> 0); else grouped stratified folds 1..n."""
    if np.all(folds > 0):
        return folds.astype(int)
    if np.any(folds > 0):
        raise InputError("some clips have an official fold and others none (fold 0); fix the manifest")
    sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    out = np.zeros(len(labels), dtype=int)
    for k, (_, te) in enumerate(sgkf.split(np.arange(len(labels)), labels, groups)):
        out[te] = k + 1
    return out

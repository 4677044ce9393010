"""The run folder's layout (docs/architecture.md section 3), in one place and without torch, so
the analysis stages can read run folders without depending on the training code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

_STEM = re.compile(r"fold(\d+)_seed(-?\d+)")


class ModelKey(NamedTuple):
    """One trained model of a run folder: its file stem `fold{k}_seed{s}` (any integer seed)."""

    fold: int
    seed: int

    @property
    def stem(self) -> str:
        return f"fold{self.fold}_seed{self.seed}"

    @classmethod
    def parse(cls, stem: str) -> ModelKey:
        """`fold3_seed-1` -> ModelKey(3, -1); anything else raises ValueError naming the stem."""
        m = _STEM.fullmatch(stem)
        if not m:
            raise ValueError(f"{stem!r} is not a model file stem fold<k>_seed<s>")
        return cls(int(m.group(1)), int(m.group(2)))


class RunFolder(NamedTuple):
    """data/runs/<dataset>/<protocol>/<variant>: what the train stages write there."""

    root: Path

    def checkpoint(self, key: ModelKey) -> Path:
        return self.root / f"{key.stem}.pt"

    def curiosity(self, key: ModelKey) -> Path:
        return self.root / "curiosity" / f"{key.stem}.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"

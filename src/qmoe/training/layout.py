"""The run folder's layout (docs/architecture.md section 3), in one place and without torch, so
the analysis stages can read run folders without depending on the training code: the model file
stem, the folder's files, and what a checkpoint's `meta` holds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from qmoe import variants
from qmoe.io import ConfigError, InputError
from qmoe.variants import VariantConfig

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


# a checkpoint's meta keys, in the order they are written
META_KEYS = (
    "dataset",
    "protocol",
    "variant",
    "variant_config",
    "in_dim",
    "num_classes",
    "class_names",
    "model",
    "fold",
    "seed",
    "selected_epoch",
    "best_epoch",
    "test_clip_ids",
)


@dataclass(frozen=True)
class CheckpointMeta:
    """A checkpoint's `meta`: what rebuilding, exporting and timing the model need beside its
    weights, the resolved variant config included (an MoE's experts too), so loading never reads
    params.yaml. On disk (`to_dict`) the MLP shape is one `model` mapping."""

    dataset: str
    protocol: str
    variant: str  # the variant's name in params.yaml
    variant_config: VariantConfig
    in_dim: int
    num_classes: int
    class_names: tuple[str, ...]
    hidden_sizes: tuple[int, ...]  # params `model`
    dropout: float
    fold: int
    seed: int
    selected_epoch: int
    best_epoch: int
    test_clip_ids: tuple[str, ...]  # the test fold's clips, in the order evaluated

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.fold, self.seed)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able mapping checkpoints store, keys in META_KEYS order (the bytes of the
        file depend on it)."""
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "variant": self.variant,
            "variant_config": variants.to_dict(self.variant_config),
            "in_dim": self.in_dim,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "model": {"hidden_sizes": list(self.hidden_sizes), "dropout": self.dropout},
            "fold": self.fold,
            "seed": self.seed,
            "selected_epoch": self.selected_epoch,
            "best_epoch": self.best_epoch,
            "test_clip_ids": list(self.test_clip_ids),
        }

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any], where: Path | str) -> CheckpointMeta:
        """A stored meta back; a missing key raises InputError naming `where` (the file)."""
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise InputError(f"checkpoint {where}: meta lacks {', '.join(map(repr, missing))}")
        model = meta["model"]
        if not isinstance(model, Mapping) or not {"hidden_sizes", "dropout"} <= set(model):
            raise InputError(f"checkpoint {where}: meta model {model!r} lacks hidden_sizes/dropout")
        try:  # a config valid when trained but refused today (a removed bit-width) names the file
            config = variants.from_dict(meta["variant_config"])
        except ConfigError as e:
            raise InputError(f"checkpoint {where}: {e}") from None
        return cls(
            **{k: meta[k] for k in META_KEYS if k != "model"}
            | {
                "variant_config": config,
                "class_names": tuple(meta["class_names"]),
                "hidden_sizes": tuple(model["hidden_sizes"]),
                "dropout": model["dropout"],
                "test_clip_ids": tuple(meta["test_clip_ids"]),
            }
        )

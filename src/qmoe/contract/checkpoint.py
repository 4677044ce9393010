"""A trained model's checkpoint file (docs/architecture.md section 3): weights-only tensors and
the `meta` that rebuilding, exporting and timing the model need. Torch is imported only by the
functions that save or load, so reading the contract stays torch-free."""

from __future__ import annotations

import io
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from qmoe import variants
from qmoe.contract.runs import ModelKey
from qmoe.io import ConfigError, InputError, json_default, write_bytes
from qmoe.variants import VariantConfig

if typing.TYPE_CHECKING:
    import torch

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


def checkpoint_bytes(state_dict: Mapping[str, torch.Tensor], meta: dict) -> bytes:
    """A weights-only checkpoint (tensors plus plain JSON-able metadata) as bytes. Saved to a
    buffer, not a file: torch names the archive's records after the file, so saving to a
    temporary file name made every checkpoint's bytes differ."""
    import torch

    payload = {
        "state_dict": dict(state_dict),
        "meta": json.loads(json.dumps(meta, default=json_default)),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(path: Path | str, state_dict: Mapping[str, torch.Tensor], meta: dict) -> None:
    """Weights-only checkpoint (loads with weights_only), written atomically."""
    write_bytes(path, checkpoint_bytes(state_dict, meta))


class Checkpoint(NamedTuple):
    state_dict: dict[str, torch.Tensor]
    meta: dict


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load a checkpoint written by `save_checkpoint`, never unpickling arbitrary objects."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or a pickle with code in it
        raise InputError(f"checkpoint {path} is corrupt or not weights-only: {e}") from e
    if not isinstance(payload, dict) or "state_dict" not in payload or "meta" not in payload:
        raise InputError(f"checkpoint {path} lacks 'state_dict'/'meta' entries")
    return Checkpoint(payload["state_dict"], payload["meta"])

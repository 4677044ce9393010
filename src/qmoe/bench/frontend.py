"""The front end's cost per clip at batch 1 (issue 11 item 7): what a deployed classifier head sits
behind. Decode, dB mel spectrogram, image rendering and backbone embedding (qmoe.features), each
timed on its own for one clip at a time, on the benchmark's pinned core with its thread count,
under the machine-wide lock. The report sets each variant's head latency against this path.

Output (the benchmark's frontend.csv): one row per (clip, repeat) with `clip_id, repeat,
load_ms, mel_ms, render_ms, backbone_ms, total_ms`; `render` is the band statistics for a
backbone that reads dB mels (logmel_stats). The faithful protocol's random projection of the
embedding (one 1280 x 1280 matmul, well under 1 % of the path) is not timed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from qmoe.bench import machine
from qmoe.contract.raw import RawFolder, read_manifest
from qmoe.features.backbones import Backbone, band_stats
from qmoe.features.embed import FeaturesConfig, build_backbone
from qmoe.features.melspec import load_audio, mel_db
from qmoe.features.render import colormap_lut, render
from qmoe.io import InputError

PHASES = ("load", "mel", "render", "backbone")
COLUMNS = ["clip_id", "repeat", *(f"{p}_ms" for p in PHASES), "total_ms"]


class Clip(NamedTuple):
    clip_id: str
    path: Path


def choose_clips(raw: Path, n: int) -> list[Clip]:
    """The first `n` audio clips of data/raw/<dataset>'s manifest (its order: deterministic)."""
    table = read_manifest(raw)
    audio = table[table["sample_rate"] > 0].head(n)
    if audio.empty:
        raise InputError(f"{RawFolder(raw).manifest}: no audio clips to time the front end on")
    return [Clip(str(c), raw / p) for c, p in zip(audio["clip_id"], audio["path"])]


def _phases(clip: Clip, cfg: FeaturesConfig, bb: Backbone, lut: torch.Tensor) -> dict[str, float]:
    """One clip through the front end, each phase timed alone (ms)."""
    clock, out = time.perf_counter_ns, {}
    t0 = clock()
    audio = load_audio(clip.path, cfg.max_seconds)
    t1 = clock()
    db = mel_db(audio, cfg.mel)  # (n_mels, frames)
    t2 = clock()
    x = band_stats(db) if bb.image_size is None else render(db, cfg.mel.top_db, lut, bb.image_size)
    t3 = clock()
    bb.net(x[None])  # (1, 3, S, S) or (1, D) -> (1, D)
    t4 = clock()
    for name, a, b in zip(PHASES, (t0, t1, t2, t3), (t1, t2, t3, t4)):
        out[f"{name}_ms"] = (b - a) / 1e6
    out["total_ms"] = (t4 - t0) / 1e6
    return out


@torch.inference_mode()
def time_clips(
    clips: Sequence[Clip], cfg: FeaturesConfig, bb: Backbone, repeats: int
) -> pd.DataFrame:
    """frontend.csv rows: every clip `repeats` times (round robin over clips), after one warm-up
    pass of the first clip (lazy allocations, filter banks)."""
    lut = colormap_lut(cfg.cmap)
    _phases(clips[0], cfg, bb, lut)
    rows = [
        {"clip_id": c.clip_id, "repeat": r, **_phases(c, cfg, bb, lut)}
        for r in range(repeats)
        for c in clips
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


@contextlib.contextmanager
def pinned(cpu_index: int, threads: int, nice: int = 0) -> Iterator[int]:
    """Under the machine lock, on one core with `threads` torch threads at niceness `nice`, as
    the heads are timed; restored after."""
    with machine.MachineLock(), machine.priority(nice):
        before, n = os.sched_getaffinity(0), torch.get_num_threads()
        try:
            cpu = machine.pin_to_core(cpu_index)
            torch.set_num_threads(threads)
            yield cpu
        finally:
            torch.set_num_threads(n)
            os.sched_setaffinity(0, before)


def frontend_latency(
    raw: Path,
    cfg: FeaturesConfig,
    n_clips: int,
    repeats: int,
    cpu_index: int,
    threads: int,
    backbone: Callable[[FeaturesConfig], Backbone] = build_backbone,
    nice: int = 0,
) -> pd.DataFrame:
    """frontend.csv of one benchmark (`backbone`: tests pass a tiny one)."""
    clips = choose_clips(raw, n_clips)
    bb = backbone(cfg)
    with pinned(cpu_index, threads, nice):
        return time_clips(clips, cfg, bb, repeats)


def summary(frame: pd.DataFrame) -> dict[str, float]:
    """Median per phase over clips and repeats (ms), for the log."""
    return {c: float(np.median(frame[c])) for c in COLUMNS[2:]}

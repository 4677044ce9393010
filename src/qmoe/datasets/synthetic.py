"""Seeded synthetic clips in ESC-50 layout: one tone frequency per class plus noise (learnable).

Class c gets ESC-50 target c * (50 // classes), so with 5 classes the targets 0, 10, 20, 30, 40
cover all five official major categories and all five of the reference's scrambled groups.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from qmoe.datasets.esc import ESC50_META, META_COLUMNS
from qmoe.datasets.registry import SyntheticConfig

log = logging.getLogger(__name__)

NUM_FOLDS = 5


def class_frequencies(classes: int, sample_rate: int) -> np.ndarray:
    """Log-spaced tone frequencies (Hz), 200 Hz up to 0.35 x the sample rate (below Nyquist)."""
    return np.geomspace(200.0, 0.35 * sample_rate, classes)


def synth_clip(freq: float, cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """(samples,) float32: a tone with random phase, level and slow tremolo, plus white noise."""
    t = np.arange(int(round(cfg.seconds * cfg.sample_rate))) / cfg.sample_rate
    tone = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    tremolo = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(1.0, 4.0) * t)
    signal = rng.uniform(0.3, 0.6) * tremolo * tone + 0.05 * rng.standard_normal(t.size)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def generate(root: Path, cfg: SyntheticConfig) -> int:
    """Write audio/{fold}-{src}-A-{target}.wav and meta/esc50.csv under `root`; return the count.

    Clip i of a class goes to fold i % 5 + 1; every clip has its own source id. The files are
    16-bit PCM WAV, byte-identical for the same config (soundfile writes no timestamps).
    """
    rng = np.random.default_rng(cfg.seed)
    (root / "audio").mkdir(parents=True)
    (root / ESC50_META).parent.mkdir(parents=True)
    freqs = class_frequencies(cfg.classes, cfg.sample_rate)
    step = 50 // cfg.classes
    records = []
    for c, freq in enumerate(freqs):
        target = c * step
        for i in range(cfg.clips_per_class):
            fold, src = i % NUM_FOLDS + 1, str(100000 + 1000 * c + i)
            name = f"{fold}-{src}-A-{target}.wav"
            sf.write(
                root / "audio" / name, synth_clip(freq, cfg, rng), cfg.sample_rate, subtype="PCM_16"
            )
            records.append([name, fold, target, f"tone_{freq:.0f}hz", "False", src, "A"])
    records.sort()
    with (root / ESC50_META).open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(META_COLUMNS)
        writer.writerows(records)
    log.info("synthetic: %d clips, %d classes, seed %d", len(records), cfg.classes, cfg.seed)
    return len(records)

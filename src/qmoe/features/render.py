"""dB mel spectrogram -> RGB image, as the reference renders it, without drawing a figure.

The reference (reference-method.md 5.1) draws each spectrogram with `librosa.display.specshow`
(magma colour map, mel bin 0 = lowest frequency at the bottom, axes hidden) into a 7 x 7 in figure
saved at 300 dpi (~1,628 x 1,617 px), and the embedding script later loads that PNG with PIL and
resizes it to the backbone input (300 x 300 for EfficientNet-B3).

Deviation (documented): drawing a matplotlib figure per clip costs ~1 s, so we compute the same
colour mapping directly: dB in [-top_db, 0] -> [0, 1] -> index into the colour map's 256-entry
lookup table exactly as `matplotlib.colors.Colormap.__call__` does (floor(x * N), x = 1 -> N - 1),
flip so low frequencies are the bottom row, and resize the (3, n_mels, frames) image straight to
the backbone input size with antialiased bilinear interpolation. Differences to the reference:
no intermediate ~1,600 px raster and PNG round trip (8-bit quantisation), and the value range is
fixed at [-top_db, 0] where specshow autoscales to the clip's [min, max] (identical whenever the
clip spans at least top_db decibels, which the top_db clamp makes the usual case).
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from qmoe.io import ConfigError, InputError


@functools.lru_cache(maxsize=8)
def colormap_lut(name: str) -> torch.Tensor:
    """(3, N) float32 RGB lookup table of a matplotlib colour map (N = 256 for magma)."""
    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ConfigError(
            f"features.cmap: unknown matplotlib colour map {name!r} (e.g. magma, viridis, gray)"
        ) from None
    rgba = cmap(np.arange(cmap.N))  # (N, 4) float64: integer input indexes the table directly
    return torch.from_numpy(rgba[:, :3].T.astype(np.float32)).contiguous()


def colorize(db: torch.Tensor, top_db: float, lut: torch.Tensor) -> torch.Tensor:
    """dB (n_mels, frames) in [-top_db, 0] -> RGB (3, n_mels, frames) in [0, 1], band 0 last."""
    n = lut.shape[1]
    x = (db + top_db) / top_db  # (n_mels, frames) in [0, 1]
    idx = (x * n).to(torch.int64).clamp_(0, n - 1)  # matplotlib: floor(x * N); x == 1 -> N - 1
    return lut[:, idx.flip(0)]  # (3, n_mels, frames); row 0 = highest mel band (top of the image)


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) -> (3, size, size), bilinear with antialiasing (like PIL's resize)."""
    out = F.interpolate(
        image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return out[0].clamp_(0.0, 1.0)


def render(db: torch.Tensor, top_db: float, lut: torch.Tensor, size: int) -> torch.Tensor:
    """(n_mels, frames) dB mel spectrogram -> (3, size, size) image in [0, 1]."""
    return resize(colorize(db, top_db, lut), size)


def load_image(path: Path, size: int) -> torch.Tensor:
    """An image file (PNG, ...) -> RGB (3, size, size) in [0, 1], as the reference's PIL loader."""
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise InputError(f"{path}: cannot read image ({e})") from e
    image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0  # (3, H, W)
    return resize(image, size)

"""Decode checks for one clip or image, at `download` (where `on_bad_file: skip` can drop it).

A clip must decode to its end with as many frames as its header declares (a WAV whose data chunk
claims more bytes than the file holds, an Ogg stream whose last page is cut or lacks the
end-of-stream flag, a FLAC that loses sync are truncated), hold only finite samples and last at
least `AudioRules.min_seconds`; a near-silent clip is flagged (or, where the dataset defines its
clips, refused with any other departure from the definition: ESC-50 is 5.0 s, 44.1 kHz mono).
An image's size is read from its header and capped before any pixel is decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from PIL import Image, UnidentifiedImageError

_BLOCK = 1 << 16  # frames decoded at a time: memory stays flat for any clip length


class BadFile(Exception):
    """A clip that cannot be used (message says why, without the file's path)."""


class MediaInfo(NamedTuple):
    duration_s: float
    sample_rate: int  # 0 for images
    note: str = ""  # a usable clip's oddity worth a warning (e.g. silent), else ""


@dataclass(frozen=True)
class AudioRules:
    """What a usable clip is. None = not checked."""

    min_seconds: float = 0.0
    silence_dbfs: float = -80.0  # peak |sample| below this (dB re full scale) is silence
    silent_is_bad: bool = False  # True: a silent clip is a bad file (ESC-50), else only noted
    sample_rate: int | None = None  # exact, where the dataset defines it
    channels: int | None = None
    frames: int | None = None


def _wav_shortfall(path: Path, sample_rate: int) -> str | None:
    """'header declares ..., file holds ...' when a RIFF/WAVE data chunk is cut short."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "little" if head[:4] == b"RIFF" else "big"
        pos, block_align = 12, 0
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8 + 14)  # id, size, and a fmt body up to block_align
            cid, n = chunk[:4], int.from_bytes(chunk[4:8], order)
            if cid == b"fmt ":
                block_align = int.from_bytes(chunk[8 + 12 : 8 + 14], order)
            if cid == b"data":
                held = size - pos - 8
                # 0 and 0xFFFFFFFF are streaming writers' "length unknown" placeholders
                if n in (0, 0xFFFFFFFF) or n <= held or block_align == 0:
                    return None
                want, have = n // block_align, held // block_align
                return (
                    f"truncated: the WAV header declares {want} frames "
                    f"({want / sample_rate:.3f} s), the file holds {have}"
                )
            pos += 8 + n + (n & 1)
    return None


def _ogg_shortfall(path: Path) -> str | None:
    """Why an Ogg stream is truncated (walking its page headers), or None."""
    size = path.stat().st_size
    pos, flags = 0, 0
    with path.open("rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(27)
            if len(head) < 27 or head[:4] != b"OggS":
                return f"truncated: no complete Ogg page at byte {pos} of {size}"
            segments = f.read(head[26])
            end = pos + 27 + head[26] + sum(segments)
            if len(segments) < head[26] or end > size:
                return f"truncated: the Ogg page at byte {pos} needs {end} bytes, file has {size}"
            flags, pos = head[5], end
    if not flags & 0x04:
        return "truncated: the last Ogg page lacks the end-of-stream flag"
    return None


def _decode(path: Path) -> tuple[int, int, int, float, str]:
    """(sample rate, channels, frames, peak |sample|, container problem or '') of a whole clip."""
    with sf.SoundFile(path) as f:
        sr, channels, declared, fmt = f.samplerate, f.channels, f.frames, f.format
        frames, peak = 0, 0.0
        for block in f.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                raise BadFile(f"NaN or infinite samples near {frames / sr:.3f} s")
            frames += len(block)
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
    problem = ""
    # libsndfile's MP3 frame count is an estimate; every other format states it exactly
    if fmt != "MP3" and frames != declared:
        problem = f"truncated: the header declares {declared} frames, {frames} decode"
    elif fmt in ("WAV", "WAVEX"):
        problem = _wav_shortfall(path, sr) or ""
    elif fmt == "OGG":
        problem = _ogg_shortfall(path) or ""
    return sr, channels, frames, peak, problem


def probe_audio(path: Path, rules: AudioRules = AudioRules()) -> MediaInfo:
    """Decode the whole clip block-wise and apply `rules`; BadFile says what is wrong."""
    try:
        sr, channels, frames, peak, problem = _decode(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise BadFile(f"cannot decode audio: {e}") from e
    if problem:
        raise BadFile(problem)
    if frames == 0 or sr <= 0:
        raise BadFile("empty audio (0 frames)")
    seconds = frames / sr
    if seconds < rules.min_seconds:
        raise BadFile(f"too short: {seconds:.4f} s < download.min_seconds {rules.min_seconds:g}")
    expected = {"sample rate": (rules.sample_rate, sr), "channels": (rules.channels, channels),
                "frames": (rules.frames, frames)}  # fmt: skip
    for what, (want, got) in expected.items():
        if want is not None and want != got:
            raise BadFile(f"{what} {got}, expected {want}")
    dbfs = 20 * math.log10(peak) if peak > 0 else -math.inf
    note = ""
    if dbfs < rules.silence_dbfs:
        note = f"silent: peak {dbfs:.1f} dBFS < download.silence_dbfs {rules.silence_dbfs:g}"
        if rules.silent_is_bad:
            raise BadFile(note)
    return MediaInfo(seconds, sr, note)


def probe_image(path: Path, max_pixels: int = 50_000_000) -> MediaInfo:
    """Read the size from the header, refuse over `max_pixels`, then decode the whole image."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise BadFile(
                    f"image of {width} x {height} pixels exceeds "
                    f"download.max_image_pixels {max_pixels:,}; not decoded"
                )
            im.load()
    except Image.DecompressionBombError as e:  # Pillow's own cap, met when opening the file
        raise BadFile(f"image too large, not decoded: {e}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadFile(f"cannot decode image: {e}") from e
    if width == 0 or height == 0:
        raise BadFile(f"empty image (size {(width, height)})")
    return MediaInfo(0.0, 0)

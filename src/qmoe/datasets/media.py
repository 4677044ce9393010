"""Decode checks for one clip or image, at `download` (where `on_bad_file: skip` can drop it).

A clip must decode to its end with as many frames as its header declares (a WAV whose data chunk
claims more bytes than the file holds, an AIFF whose COMM chunk or an AU whose header declares
more frames than it holds, an Ogg stream whose last page is cut or lacks the end-of-stream flag,
a FLAC that loses sync, an MP3 shorter than its Xing/Info tag says or whose last frame is cut
are truncated), hold only finite samples and last at least `AudioRules.min_seconds`; a
near-silent clip is flagged (or, where the dataset defines its clips, refused with any other
departure from the definition: ESC-50 is 5.0 s, 44.1 kHz mono). An image's size is read from
its header and capped before any pixel is decoded.
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


def _aiff_declared(path: Path) -> int | None:
    """Sample frames an AIFF/AIFC's COMM chunk declares (libsndfile trims its count to the data
    held), or None."""
    with path.open("rb") as f:
        head = f.read(12)
        if head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
            return None
        while len(chunk := f.read(8 + 6)) >= 8:
            n = int.from_bytes(chunk[4:8], "big")
            if chunk[:4] == b"COMM" and len(chunk) == 14:
                return int.from_bytes(chunk[10:14], "big")  # after numChannels
            f.seek(n + (n & 1) - (len(chunk) - 8), 1)
    return None


_AU_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}  # encoding -> bytes per sample


def _au_declared(path: Path) -> int | None:
    """Sample frames an AU (.snd) header declares (data size / frame size), or None."""
    with path.open("rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:4] != b".snd":
        return None
    size, encoding, channels = (int.from_bytes(head[i : i + 4], "big") for i in (8, 12, 20))
    if size == 0xFFFFFFFF or encoding not in _AU_BYTES or channels == 0:  # length unknown
        return None
    return size // (_AU_BYTES[encoding] * channels)


def _declared_shortfall(what: str, declared: int | None, frames: int, sr: int) -> str | None:
    if declared is None or declared <= frames:
        return None
    return (
        f"truncated: the {what} header declares {declared} frames ({declared / sr:.3f} s), the "
        f"file holds {frames}"
    )


# MPEG audio frame headers: kbit/s per bitrate index 1..14, by (MPEG-1?, layer); sample rates
_KBPS = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_bytes(h: bytes) -> int | None:
    """Length of the MPEG audio frame whose 4-byte header is `h`, or None if it is not one."""
    version, layer = (h[1] >> 3) & 3, 4 - ((h[1] >> 1) & 3)  # version 1: reserved; layer 4: ditto
    rate_i, kbps_i = (h[2] >> 2) & 3, h[2] >> 4
    if h[0] != 0xFF or h[1] & 0xE0 != 0xE0 or version == 1 or layer == 4:
        return None
    if rate_i == 3 or not 1 <= kbps_i <= 14:  # reserved rate; free-format or bad bitrate
        return None
    v1, pad = version == 3, (h[2] >> 1) & 1
    bits_s, rate = _KBPS[v1, layer][kbps_i - 1] * 1000, _RATES[version][rate_i]
    if layer == 1:
        return (12 * bits_s // rate + pad) * 4
    return (144 if v1 or layer == 2 else 72) * bits_s // rate + pad


def _xing_bytes(frame: bytes) -> int | None:
    """The stream size a Xing/Info tag (LAME's) in a first layer III frame declares, or None."""
    if len(frame) < 4 or (frame[1] >> 1) & 3 != 1:  # not layer III
        return None
    v1, mono, crc = (frame[1] >> 3) & 3 == 3, frame[3] >> 6 == 3, not frame[1] & 1
    at = 4 + 2 * crc + ((17 if mono else 32) if v1 else (9 if mono else 17))  # after side info
    tag = frame[at : at + 8]
    if len(tag) < 8 or tag[:4] not in (b"Xing", b"Info") or not tag[7] & 2:  # 2: byte count
        return None
    at += 8 + 4 * (tag[7] & 1)  # the frame count comes first when present
    return int.from_bytes(frame[at : at + 4], "big") if len(frame) >= at + 4 else None


def _mp3_shortfall(path: Path) -> str | None:
    """'truncated: ...' when an MPEG audio file holds fewer bytes than its Xing/Info tag declares
    or its frame chain runs past its end (a cut file); None for other files, or where the chain
    breaks (trailing data this walk cannot judge)."""
    if path.suffix.lower() not in (".mp3", ".mp2", ".mpga"):
        return None
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(10)
        pos = 0
        if head[:3] == b"ID3" and len(head) == 10:  # ID3v2 tag: 28-bit size, optional footer
            pos = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
            pos += 10 if head[5] & 0x10 else 0
        f.seek(pos)
        declared = _xing_bytes(f.read(64))
        if declared is not None and declared > size:  # tags around it only add bytes
            return f"truncated: the MP3 header declares {declared} bytes, the file holds {size}"
        f.seek(max(size - 128, 0))
        end = size - 128 if f.read(3) == b"TAG" else size  # ID3v1 tag at the end
        while pos + 4 <= end:
            f.seek(pos)
            n = _mpeg_frame_bytes(f.read(4))
            if n is None:
                return None
            if pos + n > end:
                return f"truncated: the MP3 frame at byte {pos} needs {n} bytes, {end - pos} remain"
            pos += n
    return None


def _decode(path: Path) -> tuple[int, int, int, float, str]:
    """(sample rate, channels, frames, peak |sample|, container problem or '') of a whole clip."""
    if problem := _mp3_shortfall(path):  # before decoding: a cut frame decodes to noise or NaN
        return 0, 0, 0, 0.0, problem
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
    elif fmt == "AIFF":
        problem = _declared_shortfall("AIFF", _aiff_declared(path), frames, sr) or ""
    elif fmt == "AU":
        problem = _declared_shortfall("AU", _au_declared(path), frames, sr) or ""
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

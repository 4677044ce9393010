"""Check placed clips (decode, checksum) and write manifest.csv + dataset.json (architecture.md 1).

Builders hand over one dict per clip with `clip_id, path, label_name, label_key, fold, source_id`
(+ ESC columns, + optional `expected_sha256`); `label_key` orders the classes (ESC target, US8K
classID, or the folder name) and becomes the contiguous `label_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import soundfile as sf
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from qmoe.datasets.fetch import ChecksumError, sha256_file
from qmoe.datasets.registry import DatasetError
from qmoe.io import save_json

log = logging.getLogger(__name__)

COLUMNS = [
    "clip_id", "path", "label_id", "label_name", "fold", "source_id",
    "duration_s", "sample_rate", "sha256",
]  # fmt: skip
ESC_COLUMNS = ["target", "major_id", "major_name", "scrambled_id", "scrambled_name"]


class MediaInfo(NamedTuple):
    duration_s: float
    sample_rate: int  # 0 for images


class BadFile(Exception):
    """A clip that cannot be decoded or holds no data (message says why)."""


Probe = Callable[[Path], MediaInfo]


def probe_audio(path: Path) -> MediaInfo:
    """Decode the whole file with soundfile (block-wise); refuse undecodable or empty audio."""
    try:
        with sf.SoundFile(path) as f:
            sr = f.samplerate
            frames = sum(len(b) for b in f.blocks(blocksize=1 << 16, dtype="float32"))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise BadFile(f"cannot decode audio: {e}") from e
    if frames == 0 or sr <= 0:
        raise BadFile("empty audio (0 frames)")
    return MediaInfo(frames / sr, sr)


def probe_image(path: Path) -> MediaInfo:
    """Decode the whole image with Pillow; refuse undecodable or zero-size images."""
    try:
        with Image.open(path) as im:
            im.load()
            size = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadFile(f"cannot decode image: {e}") from e
    if 0 in size:
        raise BadFile(f"empty image (size {size})")
    return MediaInfo(0.0, 0)


def check_missing(expected: list[str], present: set[str], where: Path, what: str) -> None:
    """Raise naming how many of `expected` are not in `present`, and the first few."""
    missing = [e for e in expected if e not in present]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatasetError(f"{where}: {len(missing)} of {len(expected)} {what} missing: {shown}")


def _check_one(row: dict[str, Any], raw: Path, probe: Probe) -> dict[str, Any]:
    path = raw / row["path"]
    digest = sha256_file(path)
    expected = row.pop("expected_sha256", None)
    if expected is not None and digest != expected:
        raise ChecksumError(f"{row['path']}: sha256 mismatch: expected {expected}, got {digest}")
    info = probe(path)
    return {
        **row,
        "sha256": digest,
        "duration_s": round(info.duration_s, 6),
        "sample_rate": info.sample_rate,
    }


def check_clips(
    rows: list[dict[str, Any]], raw: Path, probe: Probe, skip_bad: bool
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Hash and decode every clip; bad ones raise, or with `skip_bad` are deleted and listed."""
    kept, rejects = [], []
    for row in tqdm(rows, desc="checking clips", unit="file", disable=None, mininterval=1):
        try:
            kept.append(_check_one(dict(row), raw, probe))
        except BadFile as e:
            if not skip_bad:
                raise DatasetError(
                    f"{row['path']}: {e} (set download.on_bad_file: skip to drop such files)"
                ) from e
            log.warning("skipping %s: %s", row["path"], e)
            (raw / row["path"]).unlink()
            rejects.append({"clip_id": row["clip_id"], "path": row["path"], "reason": str(e)})
    if not kept:
        raise DatasetError(f"{raw}: no usable clips ({len(rejects)} rejected)")
    return kept, rejects


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> manifest DataFrame: contiguous label_id by label_key, sorted by clip_id."""
    df = pd.DataFrame(rows)
    names = df.groupby("label_key")["label_name"].nunique()
    if (names > 1).any():
        key = names[names > 1].index[0]
        clash = sorted(df.loc[df["label_key"] == key, "label_name"].unique())
        raise DatasetError(f"class key {key!r} has several label names: {clash}")
    keys = sorted(df["label_key"].unique())
    df["label_id"] = df["label_key"].map({k: i for i, k in enumerate(keys)}).astype(int)
    dupes = df["clip_id"][df["clip_id"].duplicated()]
    if len(dupes):
        raise DatasetError(f"duplicate clip_id(s): {sorted(dupes.unique())[:5]}")
    extra = [c for c in ESC_COLUMNS if c in df.columns]
    df = df[COLUMNS + extra].sort_values("clip_id", kind="stable").reset_index(drop=True)
    df["fold"] = df["fold"].astype(int)
    df["source_id"] = df["source_id"].astype(str)
    return df


def class_names(df: pd.DataFrame) -> list[str]:
    """label_name for label_id 0..C-1."""
    return df.drop_duplicates("label_id").sort_values("label_id")["label_name"].tolist()


def write_outputs(
    df: pd.DataFrame, raw: Path, info: dict[str, Any], rejects: list[dict[str, str]]
) -> dict[str, Any]:
    """Write manifest.csv and dataset.json into `raw`; return the dataset.json content."""
    df.to_csv(raw / "manifest.csv", index=False, lineterminator="\n")
    folds = sorted(f for f in df["fold"].unique() if f > 0)
    meta = {
        **info,
        "class_names": class_names(df),
        "num_classes": int(df["label_id"].nunique()),
        "num_folds": len(folds),
        "file_count": len(df),
        "rejects": rejects,
    }
    save_json(raw / "dataset.json", meta)
    return meta

"""Check placed clips (decode, checksum), check folds, write the manifest + dataset.json
(architecture.md 1).

Builders hand over one dict per clip with `clip_id, path, label_name, label_key, fold, source_id`
(+ ESC columns, + optional `expected_sha256`); `label_key` orders the classes (ESC target, US8K
classID, or the folder name) and becomes the contiguous `label_id`. Messages and dataset.json name
clips by their path below the raw folder, never by the temporary folder they are checked in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from tqdm import tqdm

from qmoe.contract.raw import RawFolder, write_manifest
from qmoe.datasets.fetch import ChecksumError, sha256_file
from qmoe.datasets.media import BadFile, MediaInfo
from qmoe.datasets.registry import DatasetError
from qmoe.io import save_json

log = logging.getLogger(__name__)

COLUMNS = [
    "clip_id", "path", "label_id", "label_name", "fold", "source_id",
    "duration_s", "sample_rate", "sha256",
]  # fmt: skip
ESC_COLUMNS = ["target", "major_id", "major_name", "scrambled_id", "scrambled_name"]


Probe = Callable[[Path], MediaInfo]  # BadFile for an unusable clip


def check_missing(expected: list[str], present: set[str], where: Path, what: str) -> None:
    """Raise naming how many of `expected` are not in `present`, and the first few."""
    missing = [e for e in expected if e not in present]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatasetError(f"{where}: {len(missing)} of {len(expected)} {what} missing: {shown}")


class Checked(NamedTuple):
    rows: list[dict[str, Any]]  # usable clips, with sha256 / duration_s / sample_rate
    rejects: list[dict[str, str]]  # clip_id, path, reason (on_bad_file: skip)
    flagged: list[dict[str, str]]  # clip_id, path, note: usable but odd (e.g. silent)


def _check_one(row: dict[str, Any], raw: Path, probe: Probe) -> tuple[dict[str, Any], str]:
    path = raw / row["path"]
    digest = sha256_file(path)
    expected = row.pop("expected_sha256", None)
    if expected is not None and digest != expected:
        raise ChecksumError(f"{row['path']}: sha256 mismatch: expected {expected}, got {digest}")
    try:
        info = probe(path)
    except BadFile as e:  # decoder messages quote the temporary path: keep dataset.json stable
        raise BadFile(str(e).replace(str(path), row["path"])) from e
    checked = {**row, "sha256": digest, "duration_s": round(info.duration_s, 6),
               "sample_rate": info.sample_rate}  # fmt: skip
    return checked, info.note


def _emptied_classes(rows: list[dict[str, Any]], checked: Checked) -> None:
    """Raise naming a class whose every clip was rejected (skip must not drop a class)."""
    kept = {r["label_key"] for r in checked.rows}
    for row in rows:
        if row["label_key"] not in kept:
            bad = [r for r in rows if r["label_key"] == row["label_key"]]
            reason = next(x["reason"] for x in checked.rejects if x["clip_id"] == bad[0]["clip_id"])
            raise DatasetError(
                f"class {row['label_name']!r}: all {len(bad)} of its clips are bad files, so "
                f"on_bad_file: skip would drop the class (first: {bad[0]['path']}: {reason})"
            )


def check_clips(rows: list[dict[str, Any]], raw: Path, probe: Probe, skip_bad: bool) -> Checked:
    """Hash and decode every clip; bad ones raise, or with `skip_bad` are deleted and listed."""
    checked = Checked([], [], [])
    for row in tqdm(rows, desc="checking clips", unit="file", disable=None, mininterval=1):
        try:
            good, note = _check_one(dict(row), raw, probe)
        except BadFile as e:
            if not skip_bad:
                raise DatasetError(
                    f"{row['path']}: {e} (set download.on_bad_file: skip to drop such files)"
                ) from e
            log.warning("skipping %s: %s", row["path"], e)
            (raw / row["path"]).unlink()
            checked.rejects.append({"clip_id": row["clip_id"], "path": row["path"],
                                    "reason": str(e)})  # fmt: skip
            continue
        checked.rows.append(good)
        if note:
            checked.flagged.append({"clip_id": row["clip_id"], "path": row["path"], "note": note})
    if not checked.rows:
        raise DatasetError(f"no usable clips ({len(checked.rejects)} rejected)")
    _emptied_classes(rows, checked)
    if checked.flagged:
        shown = "; ".join(f"{f['path']}: {f['note']}" for f in checked.flagged[:3])
        log.warning(
            "%d usable clip(s) flagged (listed in dataset.json): %s%s",
            len(checked.flagged),
            shown,
            "; ..." if len(checked.flagged) > 3 else "",
        )
    return checked


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


def check_folds(df: pd.DataFrame) -> None:
    """Every training part must hold every class: with folds, the clips outside each fold;
    without (fold 0: grouped folds made at train time), at least two source_ids per class."""
    names = dict(zip(df["label_id"], df["label_name"], strict=False))
    folds = sorted(df["fold"].unique())
    if folds == [0]:
        groups = df.groupby("label_id")["source_id"].nunique()
        for label_id, n in groups.items():
            if n < 2:
                raise DatasetError(
                    f"class {names[label_id]!r}: all its clips share one source_id, so the "
                    "grouped folds would test it with no training example; add clips from other "
                    "recordings, or give folds"
                )
        return
    for fold in folds:
        present = set(df.loc[df["fold"] != fold, "label_id"])
        for label_id in sorted(set(names) - present):
            raise DatasetError(
                f"fold {fold}: its training part (the clips of the other folds) has no clip of "
                f"class {names[label_id]!r}; every class must appear in at least two folds"
            )


def write_outputs(df: pd.DataFrame, raw: Path, info: dict[str, Any], checked: Checked
                  ) -> dict[str, Any]:  # fmt: skip
    """Write the manifest and dataset.json into `raw` (qmoe.contract.raw); return the
    dataset.json content."""
    write_manifest(raw, df)
    folds = sorted(f for f in df["fold"].unique() if f > 0)
    meta = {
        **info,
        "class_names": class_names(df),
        "num_classes": int(df["label_id"].nunique()),
        "num_folds": len(folds),
        "file_count": len(df),
        "rejects": checked.rejects,
        "flagged": checked.flagged,
    }
    save_json(RawFolder(raw).dataset_json, meta)
    return meta

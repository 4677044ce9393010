"""UrbanSound8K (Salamon, Jacoby & Bello, ACM MM 2014): audio/fold{k}/*.wav plus
metadata/UrbanSound8K.csv.

classID is the official (alphabetical) class code; the 10 official folds keep slices of one
Freesound recording together.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from qmoe.datasets.esc import place
from qmoe.datasets.manifest import check_missing
from qmoe.datasets.registry import DatasetError

log = logging.getLogger(__name__)

US8K_META = "metadata/UrbanSound8K.csv"
_COLUMNS = ["slice_file_name", "fsID", "fold", "classID", "class"]


def read_us8k_meta(path: Path) -> list[dict[str, Any]]:
    """Parse UrbanSound8K.csv into dicts with int fold / classID."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}; header {reader.fieldnames}")
        rows = []
        for rec in reader:
            try:
                rows.append({**rec, "fold": int(rec["fold"]), "classID": int(rec["classID"])})
            except ValueError as e:
                raise DatasetError(f"{path}: bad row {rec}: {e}") from e
    return rows


def build_urbansound8k(
    root: Path, raw: Path, expected_files: int, move: bool
) -> list[dict[str, Any]]:
    """UrbanSound8K at `root` -> files/audio/fold{k}/<slice>; one row per metadata entry."""
    meta = read_us8k_meta(root / US8K_META)
    if len(meta) != expected_files:
        raise DatasetError(f"{root / US8K_META}: {len(meta)} rows, expected {expected_files}")
    rels = [f"audio/fold{m['fold']}/{m['slice_file_name']}" for m in meta]
    present = {p.relative_to(root).as_posix() for p in root.glob("audio/fold*/*")}
    check_missing(rels, present, root, "audio files listed in UrbanSound8K.csv")
    rows = []
    for m, rel in zip(meta, rels, strict=True):
        place(root / rel, raw / "files" / rel, move)
        rows.append(
            {
                "clip_id": m["slice_file_name"].rsplit(".", 1)[0],
                "path": f"files/{rel}",
                "label_name": m["class"],
                "label_key": m["classID"],
                "fold": m["fold"],
                "source_id": m["fsID"],
            }
        )
    log.info("UrbanSound8K: %d clips", len(rows))
    return rows

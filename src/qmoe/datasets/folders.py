"""User-supplied datasets: class subfolders of images (quinn, imagefolder) or audio (audiofolder),
or for audio a CSV `path,label[,fold]` with paths relative to the CSV. Labels are numbered
alphabetically (the reference's class_id); fold 0 = no official folds unless the CSV gives them.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from qmoe.datasets.esc import place
from qmoe.datasets.fetch import Source, find_in_mirrors, mirror_dirs
from qmoe.datasets.manifest import check_missing
from qmoe.datasets.registry import DatasetError, DatasetSpec

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au"})


def user_source(spec: DatasetSpec, env: Mapping[str, str]) -> Source:
    """The folder (or CSV) named by the spec's QMOE_DATA_* variable, else the mirror folder."""
    if spec.env_var and env.get(spec.env_var):
        path = Path(env[spec.env_var])
        if not path.exists():
            raise DatasetError(f"{spec.env_var}={path}: no such file or folder")
        return Source(path, "user folder", None)
    hit = find_in_mirrors([spec.mirror_folder], env) if spec.mirror_folder else None
    if hit is not None:
        return Source(hit, "mirror folder", None)
    mirrors = ", ".join(str(m) for m in mirror_dirs(env)) or "none (QMOE_MIRROR is not set)"
    raise DatasetError(
        f"dataset {spec.name!r} is user-supplied: set {spec.env_var}=/path/to/folder "
        f"(class subfolders) or put a folder {spec.mirror_folder!r} in a QMOE_MIRROR folder "
        f"(searched: {mirrors})"
    )


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def scan_class_folders(root: Path, suffixes: frozenset[str]) -> list[tuple[str, str]]:
    """(relative posix path, class name) for every media file under root/<class>/..., sorted."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: no class subfolders (expected {root}/<class>/<file>)")
    found, ignored = [], 0
    for cls in classes:
        files = [p for p in sorted(cls.rglob("*")) if p.is_file() and _visible(p, root)]
        media = [p for p in files if p.suffix.lower() in suffixes]
        ignored += len(files) - len(media)
        if not media:
            raise DatasetError(f"{cls}: class folder has no files of type {sorted(suffixes)}")
        found += [(p.relative_to(root).as_posix(), cls.name) for p in media]
    if ignored:
        log.warning("%s: ignored %d files that are not %s", root, ignored, sorted(suffixes))
    return found


def _csv_entry(rec: dict[str, str], line: int, csv_path: Path) -> tuple[str, str, int]:
    rel = (rec.get("path") or "").strip()
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if not rel or rel.startswith("/") or ".." in parts:
        raise DatasetError(
            f"{csv_path}:{line}: path {rel!r} must be relative and stay below the CSV"
        )
    label = (rec.get("label") or "").strip()
    if not label:
        raise DatasetError(f"{csv_path}:{line}: empty label")
    fold_text = (rec.get("fold") or "0").strip()
    if not fold_text.isdigit():
        raise DatasetError(f"{csv_path}:{line}: fold {fold_text!r} is not a non-negative integer")
    return PurePosixPath(*parts).as_posix(), label, int(fold_text)


def read_csv_manifest(csv_path: Path) -> list[tuple[str, str, int]]:
    """(relative path, label, fold) per line of a user CSV with columns path,label[,fold]."""
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise DatasetError(
                f"{csv_path}: needs columns path,label[,fold]; got {reader.fieldnames}"
            )
        entries = [_csv_entry(rec, i, csv_path) for i, rec in enumerate(reader, start=2)]
    if not entries:
        raise DatasetError(f"{csv_path}: no rows")
    return entries


def _row(rel: str, label: str, fold: int) -> dict[str, Any]:
    clip_id = rel.rsplit(".", 1)[0]
    return {"clip_id": clip_id, "path": f"files/{rel}", "label_name": label, "label_key": label,
            "fold": fold, "source_id": clip_id}  # fmt: skip


def build_folder(source: Path, raw: Path, suffixes: frozenset[str]) -> list[dict[str, Any]]:
    """Copy a class-subfolder tree (or, for a .csv `source`, the files it lists) into files/."""
    if source.is_file() and source.suffix.lower() == ".csv":
        entries = read_csv_manifest(source)
        base = source.parent
        present = {e[0] for e in entries if (base / e[0]).is_file()}
        check_missing([e[0] for e in entries], present, source, "files listed in the CSV")
    else:
        entries = [(rel, label, 0) for rel, label in scan_class_folders(source, suffixes)]
        base = source
    rows = []
    for rel, label, fold in entries:
        place(base / rel, raw / "files" / rel, move=False)  # user data: never moved
        rows.append(_row(rel, label, fold))
    log.info("%s: %d files, %d classes", source, len(rows), len({e[1] for e in entries}))
    return rows

"""User-supplied datasets (quinn, imagefolder, audiofolder): `<download.user_data>/<name>/`.

That folder holds class sub-folders of media files, or a `labels.csv` with columns
`path,label[,fold]` (paths relative to the CSV's folder, below it; UTF-8, a byte-order mark is
tolerated). dvc.yaml makes `download.user_data` a dependency of the download stage, so any change
to a clip or a label reruns it; DVC hashes the files inside it but not what a symbolic link there
points at, so no path inside `<download.user_data>/<name>/` may be a link. Labels are numbered
alphabetically (the reference's class_id). Folds: the CSV's `fold` column (numbered 1..K without
gaps, on every row) or none (fold 0: the corrected protocol makes grouped folds by source_id, which
is one per file here; a speaker or recording split must come from the CSV).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from qmoe.datasets.esc import place
from qmoe.datasets.fetch import Source
from qmoe.datasets.manifest import check_missing
from qmoe.datasets.registry import DatasetError, DatasetSpec

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au"})
CSV_NAME = "labels.csv"
PER_FILE = "one per file: {how} groups nothing, so a speaker or recording split must come from "
PER_FILE += f"the `fold` column of a {CSV_NAME}"
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: int() would also take '３' or '²'


class CsvEntry(NamedTuple):
    rel: str  # posix path below the CSV's folder
    label: str
    fold: int  # 0 = none
    line: int  # in the CSV, for messages


class FolderData(NamedTuple):
    rows: list[dict[str, Any]]
    extra: dict[str, Any]  # dataset.json fields: folds, source_id


def user_source(spec: DatasetSpec, user_data: str, env: Mapping[str, str]) -> Source:
    """`<user_data>/<name>`; the retired QMOE_DATA_<NAME> variable is refused, not ignored."""
    folder = Path(user_data) / spec.name
    legacy = f"QMOE_DATA_{spec.name.upper()}"
    if env.get(legacy):
        raise DatasetError(
            f"{legacy} is no longer read (DVC cannot see a variable, so changed data would leave "
            f"stale results): put the data in {folder}, or set download.user_data in params.yaml "
            f"to the folder that holds {spec.name}/"
        )
    _refuse_links(folder, user_data)
    if not folder.is_dir():
        raise DatasetError(
            f"dataset {spec.name!r} is user-supplied: put class sub-folders (or a {CSV_NAME} "
            f"with columns path,label[,fold]) in {folder} (download.user_data = {user_data!r}, "
            "a DVC dependency of the download stage)"
        )
    return Source(folder, "user folder", None)


def _refuse_links(folder: Path, user_data: str) -> None:
    """Refuse `folder` if it, or anything inside it, is a symbolic link: DVC would hash the link,
    not the data, so a change there would leave the results stale (a link as user_data itself is
    fine: DVC follows a dependency's own path)."""
    if folder.is_symlink():
        links = [folder]
    else:  # os.walk lists a linked folder but does not enter it
        walk = sorted((Path(p) / n for p, dirs, files in os.walk(folder) for n in dirs + files))
        links = [p for p in walk if p.is_symlink()]
    if links:
        more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
        raise DatasetError(
            f"{links[0]}: a symbolic link{more}, and DVC does not see the data behind a link in "
            f"a dependency: copy the data into {folder}, or set download.user_data to the real "
            f"folder that holds {folder.name}/ (now {user_data!r})"
        )


def scan_class_folders(root: Path, suffixes: frozenset[str]) -> list[tuple[str, str]]:
    """(relative posix path, class name) for every media file under root/<class>/..., sorted."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: no class subfolders (expected {root}/<class>/<file>)")
    found, ignored = [], 0
    for cls in classes:
        files = [
            p
            for p in sorted(cls.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        ]
        media = [p for p in files if p.suffix.lower() in suffixes]
        ignored += len(files) - len(media)
        if not media:
            raise DatasetError(f"{cls}: class folder has no files of type {sorted(suffixes)}")
        found += [(p.relative_to(root).as_posix(), cls.name) for p in media]
    if ignored:
        log.warning("%s: ignored %d files that are not %s", root, ignored, sorted(suffixes))
    return found


def _fold(text: str, where: str) -> int:
    if not text:
        return 0
    if not _DIGITS.fullmatch(text):
        raise DatasetError(f"{where}: fold {text!r} is not a non-negative integer")
    if len(text) > 6:
        raise DatasetError(f"{where}: fold {text[:12]!r} is out of range")
    return int(text)


def _csv_entry(rec: dict[str, str | None], line: int, csv_path: Path) -> CsvEntry:
    where = f"{csv_path}:{line}"
    rel = (rec.get("path") or "").strip()
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if not rel or rel.startswith("/") or ".." in parts:
        raise DatasetError(f"{where}: path {rel!r} must be relative and stay below the CSV")
    label = (rec.get("label") or "").strip()
    if not label:
        raise DatasetError(f"{where}: empty label")
    fold = _fold((rec.get("fold") or "").strip(), where)
    return CsvEntry(PurePosixPath(*parts).as_posix(), label, fold, line)


def _check_csv_folds(entries: list[CsvEntry], csv_path: Path) -> None:
    """All rows give a fold or none does; the folds used are exactly 1..K."""
    given = sorted({e.fold for e in entries} - {0})
    if not given:
        return
    for e in entries:
        if e.fold == 0:
            raise DatasetError(
                f"{csv_path}:{e.line}: no fold, but other rows give one; "
                "give every row a fold 1..K, or leave the column empty everywhere"
            )
        if e.fold > len(given):
            raise DatasetError(
                f"{csv_path}:{e.line}: fold {e.fold} out of range: number the folds 1..K "
                f"without gaps (this CSV has {len(given)} distinct folds: {given[:10]})"
            )


def read_csv_manifest(csv_path: Path) -> list[CsvEntry]:
    """One entry per line of a user CSV with columns path,label[,fold] (UTF-8, BOM tolerated)."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"path", "label"} <= set(reader.fieldnames or []):
                raise DatasetError(
                    f"{csv_path}: needs columns path,label[,fold]; got {reader.fieldnames}"
                )
            entries = [_csv_entry(rec, i, csv_path) for i, rec in enumerate(reader, start=2)]
    except UnicodeDecodeError as e:
        bad = e.object[e.start : e.end].hex()
        raise DatasetError(f"{csv_path}: not UTF-8 text (byte 0x{bad}); save it as UTF-8") from e
    if not entries:
        raise DatasetError(f"{csv_path}: no rows")
    _check_csv_folds(entries, csv_path)
    return entries


def _row(rel: str, label: str, fold: int) -> dict[str, Any]:
    clip_id = rel.rsplit(".", 1)[0]
    return {"clip_id": clip_id, "path": f"files/{rel}", "label_name": label, "label_key": label,
            "fold": fold, "source_id": clip_id}  # fmt: skip


def build_folder(source: Path, raw: Path, suffixes: frozenset[str]) -> FolderData:
    """Copy a class-subfolder tree (or the files listed in `source`/labels.csv) into files/."""
    csv_path = source / CSV_NAME
    if csv_path.is_file():
        entries = read_csv_manifest(csv_path)
        present = {e.rel for e in entries if (source / e.rel).is_file()}
        check_missing([e.rel for e in entries], present, csv_path, "files listed in the CSV")
        with_folds = any(e.fold for e in entries)
        extra = {
            "folds": f"user {CSV_NAME}, column fold" if with_folds else None,
            "source_id": PER_FILE.format(how=f"a {CSV_NAME} without folds"),
        }
    else:
        scanned = scan_class_folders(source, suffixes)
        entries = [CsvEntry(rel, label, 0, 0) for rel, label in scanned]
        extra = {"folds": None, "source_id": PER_FILE.format(how="a class-folder layout")}
    rows = []
    for e in entries:
        place(source / e.rel, raw / "files" / e.rel, move=False)  # user data: never moved
        rows.append(_row(e.rel, e.label, e.fold))
    log.info("%s: %d files, %d classes", source, len(rows), len({e.label for e in entries}))
    return FolderData(rows, {k: v for k, v in extra.items() if v is not None})

"""ESC-50 and ESC-10: official metadata, folds, major categories and the reference's 5-way grouping.

ESC-50 (Piczak, ACM MM 2015, doi:10.1145/2733373.2806390): `audio/{fold}-{src}-{take}-{target}.wav`
plus `meta/esc50.csv`. ESC-10 (the 400-clip OGG release): `NNN - Class/{fold}-{src}-{take}.ogg`,
mapped to ESC-50 targets and folds through the embedded ESC-10 rows of esc50.csv.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from qmoe.datasets.manifest import check_missing
from qmoe.datasets.registry import DatasetError

log = logging.getLogger(__name__)

META_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
ESC50_META = "meta/esc50.csv"

# Official ESC-50 major categories, target // 10 (dataset README).
MAJOR_NAMES = (
    "Animals",
    "Natural soundscapes & water sounds",
    "Human non-speech sounds",
    "Interior/domestic sounds",
    "Exterior/urban noises",
)
# The reference's mapping (reference-method.md 4.1): group (target % 25) // 5 in this order ...
_SCRAMBLED_GROUPS = (
    "Animals",
    "Natural soundscapes",
    "Human non-speech",
    "Interior sounds",
    "Exterior noises",
)
# ... and its class_id is the alphabetical code of the group name.
SCRAMBLED_NAMES = tuple(sorted(_SCRAMBLED_GROUPS))


class MetaRow(NamedTuple):
    filename: str
    fold: int
    target: int
    category: str
    src_file: str
    take: str


def esc_columns(target: int) -> dict[str, Any]:
    """target, official major category, and the reference's scrambled 5-way class of `target`."""
    if not 0 <= target <= 49:
        raise DatasetError(f"ESC target {target} outside 0..49")
    scrambled_name = _SCRAMBLED_GROUPS[(target % 25) // 5]
    return {
        "target": target,
        "major_id": target // 10,
        "major_name": MAJOR_NAMES[target // 10],
        "scrambled_id": SCRAMBLED_NAMES.index(scrambled_name),
        "scrambled_name": scrambled_name,
    }


def _parse_row(rec: dict[str, str], where: str) -> MetaRow:
    try:
        row = MetaRow(rec["filename"], int(rec["fold"]), int(rec["target"]), rec["category"],
                      rec["src_file"], rec["take"])  # fmt: skip
    except (KeyError, ValueError, TypeError) as e:
        raise DatasetError(f"{where}: bad row {rec}: {e}") from e
    stem = f"{row.fold}-{row.src_file}-{row.take}-{row.target}"
    if row.filename.rsplit(".", 1)[0] != stem:
        raise DatasetError(
            f"{where}: file name {row.filename!r} disagrees with its columns ({stem})"
        )
    return row


def read_meta(text: str, where: str) -> list[MetaRow]:
    """Parse esc50.csv text; each file name must agree with its fold/src/take/target columns."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in META_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DatasetError(f"{where}: missing column(s) {missing}; header {reader.fieldnames}")
    return [_parse_row(rec, where) for rec in reader]


def meta_digest(rows: list[MetaRow]) -> str:
    """sha256 over the sorted `filename,fold,target,category,src_file,take` lines."""
    lines = sorted(",".join(str(v) for v in r) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def esc_row(meta: MetaRow, path: str) -> dict[str, Any]:
    """One manifest row (before checks) for an ESC clip stored at `path` under the raw folder."""
    return {
        "clip_id": meta.filename.rsplit(".", 1)[0],
        "path": path,
        "label_name": meta.category,
        "label_key": meta.target,
        "fold": meta.fold,
        "source_id": meta.src_file,
        **esc_columns(meta.target),
    }


def place(src: Path, dst: Path, move: bool) -> None:
    """Move (from our own scratch extraction) or copy (from a read-only mirror) one file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if move:
        src.replace(dst)
    else:
        shutil.copyfile(src, dst)


def build_esc50(
    root: Path, raw: Path, expected_files: int, move: bool, digest: str | None = None
) -> list[dict[str, Any]]:
    """ESC-50 layout at `root` -> files/audio/*.wav under `raw`; rows for every metadata entry.

    `digest`: the metadata must be the official one (`meta_digest`), not only well-formed."""
    meta = read_meta((root / ESC50_META).read_text(encoding="utf-8"), str(root / ESC50_META))
    if len(meta) != expected_files:
        raise DatasetError(f"{root / ESC50_META}: {len(meta)} rows, expected {expected_files}")
    if digest is not None and meta_digest(meta) != digest:
        raise DatasetError(
            f"{root / ESC50_META}: not the official ESC-50 metadata (digest of its rows "
            f"{meta_digest(meta)}, expected {digest})"
        )
    audio = root / "audio"
    present = {p.name for p in audio.iterdir()} if audio.is_dir() else set()
    check_missing([m.filename for m in meta], present, audio, "audio files listed in esc50.csv")
    rows = []
    for m in meta:
        rel = f"files/audio/{m.filename}"
        place(audio / m.filename, raw / rel, move)
        rows.append(esc_row(m, rel))
    log.info("ESC-50 layout: %d clips, %d classes", len(rows), len({m.target for m in meta}))
    return rows


# --- ESC-10 --------------------------------------------------------------------------------------


def esc10_checksums() -> dict[str, str]:
    """relative path ("001 - Dog bark/1-100032-A.ogg") -> sha256, from the embedded list."""
    text = resources.files("qmoe.datasets").joinpath("esc10.sha256").read_text()
    sums = {}
    for line in text.splitlines():
        digest, rel = line.split("  ", 1)
        sums[rel] = digest
    return sums


def esc10_meta() -> dict[tuple[int, str, str], MetaRow]:
    """The 400 `esc10=True` rows of ESC-50's esc50.csv, keyed by (fold, src_file, take)."""
    text = resources.files("qmoe.datasets").joinpath("esc10_meta.csv").read_text()
    return {(m.fold, m.src_file, m.take): m for m in read_meta(text, "esc10_meta.csv")}


def _esc10_lookup(rel: str, meta: dict[tuple[int, str, str], MetaRow]) -> MetaRow:
    fold, src, take = Path(rel).stem.split("-")
    try:
        return meta[(int(fold), src, take)]
    except KeyError:
        raise DatasetError(f"{rel}: no ESC-50 metadata row for (fold, src_file, take)") from None


def build_esc10(root: Path, raw: Path, move: bool) -> list[dict[str, Any]]:
    """ESC-10 release at `root` -> files/<class folder>/*.ogg; targets and folds from ESC-50."""
    sums, meta = esc10_checksums(), esc10_meta()
    present = {p.relative_to(root).as_posix() for p in root.glob("*/*.ogg")}
    check_missing(sorted(sums), present, root, "ESC-10 clips")
    folder_target: dict[str, int] = {}
    rows = []
    for rel, digest in sorted(sums.items()):
        m = _esc10_lookup(rel, meta)
        folder = rel.split("/", 1)[0]
        if folder_target.setdefault(folder, m.target) != m.target:
            raise DatasetError(
                f"{rel}: ESC-50 target {m.target}, but {folder!r} has {folder_target[folder]}"
            )
        place(root / rel, raw / "files" / rel, move)
        rows.append({**esc_row(m, f"files/{rel}"), "expected_sha256": digest})
    log.info(
        "ESC-10: %d clips mapped to ESC-50 targets %s",
        len(rows),
        sorted(set(folder_target.values())),
    )
    return rows

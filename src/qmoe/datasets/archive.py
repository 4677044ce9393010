"""Safe zip / tar extraction: every member must land inside the target folder as a plain file.

Absolute names, `..` components, symlinks, hard links and device files are refused with an error
naming the member. The bytes written are capped (`ExtractLimits`: an absolute size and a multiple
of the archive's own size), so a zip bomb stops at the cap instead of filling the disk.
tarfile's extraction filters are not relied on: each member is checked and
copied by hand, so the same rules hold for zip and tar on every Python 3.11 patch release.
"""

from __future__ import annotations

import logging
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple

from qmoe.datasets.registry import DatasetError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class UnsafeArchiveError(DatasetError):
    """An archive member that would escape the target folder or is not a plain file/folder."""


class ExtractLimits(NamedTuple):
    """params.yaml download.max_extract_bytes / max_extract_ratio."""

    max_bytes: int = 20_000_000_000
    max_ratio: float = 100.0  # extracted bytes / archive bytes


class _Budget:
    """Counts extracted bytes; raises once they pass min(max_bytes, max_ratio x archive size)."""

    def __init__(self, archive: Path, limits: ExtractLimits):
        self.archive, self.used = archive, 0
        by_ratio = int(limits.max_ratio * archive.stat().st_size)
        self.limit = min(limits.max_bytes, by_ratio)
        self.knob = (
            f"download.max_extract_bytes = {limits.max_bytes:,}"
            if limits.max_bytes <= by_ratio
            else f"download.max_extract_ratio = {limits.max_ratio:g} x the archive's "
            f"{archive.stat().st_size:,} bytes"
        )

    def refuse(self, member: str, size: int, counted: str = "so far") -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"{self.archive.name}: refusing member {member!r}: extraction would exceed "
            f"{self.limit:,} bytes ({size:,} {counted}; {self.knob})"
        )

    def copy(self, src: BinaryIO, target: Path, member: str) -> None:
        with target.open("wb") as dst:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                self.used += len(chunk)
                if self.used > self.limit:
                    raise self.refuse(member, self.used)
                dst.write(chunk)


def safe_member_path(dest: Path, name: str, archive: Path) -> Path:
    """Where member `name` goes under `dest`; raise if it is absolute or climbs out with `..`."""
    posix = name.replace("\\", "/")  # a zip made on Windows may use backslashes
    parts = PurePosixPath(posix).parts
    drive = len(posix) > 1 and posix[1] == ":" and posix[0].isalpha()  # "C:/..." from Windows
    if posix.startswith("/") or drive or ".." in parts:
        raise UnsafeArchiveError(
            f"{archive.name}: refusing member {name!r}: path leaves the target"
        )
    target = dest.joinpath(*[p for p in parts if p not in ("", ".")])
    root = dest.resolve()
    if target.resolve() != root and root not in target.resolve().parents:
        raise UnsafeArchiveError(
            f"{archive.name}: refusing member {name!r}: path leaves the target"
        )
    return target


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16  # unix mode bits, set by zips made on unix
    return stat.S_ISLNK(mode)


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> int:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        declared = sum(info.file_size for info in infos)
        if declared > budget.limit:  # the headers' own sizes; the copy counts real bytes too
            raise budget.refuse(infos[-1].filename, declared, "declared by the zip")
        for info in infos:  # check every member before writing any
            safe_member_path(dest, info.filename, archive)
            if _zip_is_link(info):
                raise UnsafeArchiveError(
                    f"{archive.name}: refusing member {info.filename!r}: symbolic link"
                )
        n = 0
        for info in infos:
            target = safe_member_path(dest, info.filename, archive)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src:
                budget.copy(src, target, info.filename)
            n += 1
    return n


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> int:
    # Streamed in one pass ("r|*"): a 6 GB .tar.gz is not read twice. A bad member found late
    # leaves earlier members on disk; `extract` then removes the whole folder.
    n = 0
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
            target = safe_member_path(dest, member.name, archive)
            if member.issym() or member.islnk():
                kind = "symbolic link" if member.issym() else "hard link"
                raise UnsafeArchiveError(f"{archive.name}: refusing member {member.name!r}: {kind}")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                assert src is not None  # isfile() members always have data
                with src:
                    budget.copy(src, target, member.name)
                n += 1
            else:
                raise UnsafeArchiveError(
                    f"{archive.name}: refusing member {member.name!r}: not a regular file or folder"
                )
    return n


def extract(archive: Path, dest: Path, limits: ExtractLimits | None = None) -> int:
    """Extract a .zip / .tar / .tar.gz / .tgz into the new folder `dest`; return the file count.

    `dest` must not exist yet; on any error (a cap in `limits` included) it is removed again, so
    nothing is left behind.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest}: extraction target already exists")
    name = archive.name.lower()
    if name.endswith(".zip"):
        extractor = _extract_zip
    elif name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        extractor = _extract_tar
    else:
        raise DatasetError(f"{archive}: unknown archive type (expected .zip or .tar[.gz])")
    budget = _Budget(archive, limits or ExtractLimits())
    dest.mkdir(parents=True)
    try:
        n = extractor(archive, dest, budget)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise DatasetError(f"{archive}: corrupt or truncated archive: {e}") from e
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    log.info("extracted %d files from %s", n, archive.name)
    return n

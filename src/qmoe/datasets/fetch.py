"""Find a dataset's source: a QMOE_MIRROR folder or archive first, else a verified download.

Mirrors are read in place and never written. A download streams to `.<name>.part` beside its final
name and is renamed only once complete and its checksums (where known) match.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

from qmoe.datasets.archive import ExtractLimits, extract
from qmoe.datasets.registry import ArchiveSource, DatasetError, DatasetSpec

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
MIRROR_ENV = "QMOE_MIRROR"


class Digests(NamedTuple):
    sha256: str
    md5: str


class Source(NamedTuple):
    """An unpacked dataset source, ready for a builder to read (never to write)."""

    root: Path  # folder holding the dataset's files (a mirror folder or an extraction)
    origin: (
        str  # "bundled folder" | "mirror folder" | "mirror archive" | "download" | "user folder"
    )

    @property
    def read_only(self) -> bool:
        """A folder we do not own (bundled in the repository, or a mirror): copy, never move."""
        return self.origin in ("bundled folder", "mirror folder")

    archive_sha256: str | None  # of the archive read, None for a folder


class ChecksumError(DatasetError):
    """A file whose bytes do not match the published checksum."""


def mirror_dirs(env: Mapping[str, str]) -> list[Path]:
    """The QMOE_MIRROR folders, in search order (empty entries ignored)."""
    return [Path(p) for p in env.get(MIRROR_ENV, "").split(os.pathsep) if p.strip()]


def file_digests(path: Path) -> Digests:
    """sha256 and md5 of a file, read once in 1 MiB chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
    return Digests(sha.hexdigest(), md5.hexdigest())


def sha256_file(path: Path) -> str:
    return file_digests(path).sha256


def check_digests(name: str, got: Digests, archive: ArchiveSource) -> None:
    """Raise ChecksumError naming the file, expected and actual hash, on any mismatch."""
    for algo, expected, actual in (
        ("sha256", archive.sha256, got.sha256),
        ("md5", archive.md5, got.md5),
    ):
        if expected is not None and expected.lower() != actual:
            raise ChecksumError(f"{name}: {algo} mismatch: expected {expected}, got {actual}")


def find_in_mirrors(
    names: list[str], env: Mapping[str, str], bundled: Path | None = None
) -> Path | None:
    """First existing `<mirror>/<name>` over mirrors (outer; `bundled` first) and names (inner)."""
    for mirror in ([bundled] if bundled is not None else []) + mirror_dirs(env):
        for name in names:
            candidate = mirror / name
            if candidate.exists():
                return candidate
    return None


def download(url: str, dest: Path, archive: ArchiveSource, timeout: float = 60.0) -> Digests:
    """Stream `url` to `dest` (via a .part name) with a progress bar; verify, then rename."""
    part = dest.with_name(f".{dest.name}.part")
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "qmoe-repro"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, part.open("wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, mininterval=1) as bar:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    f.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
        got = Digests(sha.hexdigest(), md5.hexdigest())
        check_digests(f"{dest.name} (downloaded from {url})", got, archive)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return got


def source_names(spec: DatasetSpec) -> list[str]:
    """Names looked for in each mirror folder: the archive file, then the extracted folder."""
    return [
        n for n in (spec.archive.archive_name if spec.archive else None, spec.mirror_folder) if n
    ]


def _not_found_message(spec: DatasetSpec, env: Mapping[str, str], reason: str) -> str:
    names = source_names(spec)
    mirrors = mirror_dirs(env)
    where = ", ".join(str(m) for m in mirrors) if mirrors else f"nowhere ({MIRROR_ENV} is not set)"
    return (
        f"dataset {spec.name!r}: looked for {' or '.join(repr(n) for n in names)} in mirror "
        f"folders: {where}; {reason}. Put the archive (or the extracted folder) in a folder "
        f"and set {MIRROR_ENV}=/path/to/folder (several folders separated by {os.pathsep!r})."
    )


def obtain(
    spec: DatasetSpec,
    work: Path,
    env: Mapping[str, str],
    limits: ExtractLimits | None = None,
    bundled: Path | None = None,
) -> Source:
    """Locate `spec`'s data: the repository's bundled folder (`bundled/<name>`), a mirror folder
    or archive, else download into `work` and extract.

    `work` is scratch space the caller deletes afterwards; archives are extracted into it (at
    most `limits` bytes). The archive's sha256 is returned whenever an archive is used.
    """
    candidates = source_names(spec)
    hit = find_in_mirrors(candidates, env, bundled)
    if hit is not None and hit.is_dir():
        origin = (
            "bundled folder" if bundled is not None and hit.parent == bundled else "mirror folder"
        )
        log.info("%s: using %s %s", spec.name, origin, hit)
        return Source(hit, origin, None)
    if spec.archive is None:
        raise DatasetError(_not_found_message(spec, env, "it has no download source"))
    work.mkdir(parents=True, exist_ok=True)
    archive_path, origin, digests = _archive(spec, hit, work, env)
    if spec.archive.sha256 is None:
        log.info("%s: archive sha256 %s (recorded in dataset.json)", spec.name, digests.sha256)
    root = work / "extracted"
    extract(archive_path, root, limits)
    if origin == "download":
        archive_path.unlink()  # the clips are what is kept; the archive's sha256 is recorded
    return Source(root, origin, digests.sha256)


def _archive(spec: DatasetSpec, hit: Path | None, work: Path, env: Mapping[str, str]):
    """(path, origin, digests) of the dataset's archive: the mirror's, verified, else downloaded."""
    if hit is not None:
        log.info("%s: verifying mirror archive %s", spec.name, hit)
        digests = file_digests(hit)
        check_digests(str(hit), digests, spec.archive)
        return hit, "mirror archive", digests
    archive_path = work / spec.archive.archive_name
    log.info("%s: downloading %s", spec.name, spec.archive.url)
    try:
        digests = download(spec.archive.url, archive_path, spec.archive)
    except OSError as e:  # urllib.error.URLError is an OSError; no network lands here
        reason = f"download of {spec.archive.url} failed: {e}"
        raise DatasetError(_not_found_message(spec, env, reason)) from e
    return archive_path, "download", digests


def find_root(folder: Path, marker: str, what: str) -> Path:
    """`folder` or its single sub-folder (an archive's top folder) that contains `marker`."""
    if (folder / marker).exists():
        return folder
    subs = [p for p in sorted(folder.iterdir()) if p.is_dir() and (p / marker).exists()]
    if len(subs) == 1:
        return subs[0]
    raise DatasetError(
        f"{folder}: does not look like {what}: no {marker!r} in it or one folder below"
    )

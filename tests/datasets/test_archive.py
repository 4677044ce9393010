"""Safe extraction (qmoe.datasets.archive) and mirror / download lookup (qmoe.datasets.fetch)."""

import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from repo_params import config

from qmoe.datasets import ArchiveSource, ChecksumError, DatasetError, UnsafeArchiveError, extract
from qmoe.datasets.fetch import download, obtain
from qmoe.datasets.registry import DatasetSpec

# --- builders of small archives ------------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how `zip -y` stores a symlink
            zf.writestr(info, target)
    return path


def make_tar(path: Path, members: dict[str, bytes], special: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in special:
            tf.addfile(info)
    return path


def link_info(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


# --- extraction ----------------------------------------------------------------------------------


def test_zip_and_tar_extract_plain_members(tmp_path):
    members = {"top/a.txt": b"alpha", "top/sub/b.bin": b"\x00\x01"}
    for archive in (
        make_zip(tmp_path / "x.zip", members),
        make_tar(tmp_path / "x.tar.gz", members),
    ):
        dest = tmp_path / f"out_{archive.name}"
        assert extract(archive, dest) == 2
        assert (dest / "top/a.txt").read_bytes() == b"alpha"
        assert (dest / "top/sub/b.bin").read_bytes() == b"\x00\x01"


BAD_NAMES = ["../escape.txt", "top/../../escape.txt", "/abs/escape.txt", "C:/escape.txt"]


@pytest.mark.parametrize("bad", BAD_NAMES)
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_extract_refuses_paths_leaving_the_target(tmp_path, bad, kind):
    members = {"top/ok.txt": b"ok", bad: b"evil", "top/later.txt": b"x"}
    maker = make_zip if kind == "zip" else make_tar
    archive = maker(tmp_path / f"bad.{'zip' if kind == 'zip' else 'tar.gz'}", members)
    dest = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match="refusing member") as err:
        extract(archive, dest)
    assert repr(bad) in str(err.value)
    assert not dest.exists()  # nothing left behind, not even the good members
    assert not list(tmp_path.rglob("escape.txt"))
    assert not Path("/abs/escape.txt").exists()


def test_zip_symlink_member_is_refused(tmp_path):
    archive = make_zip(tmp_path / "l.zip", {"top/a.txt": b"a"}, links={"top/link": "/etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match=r"'top/link': symbolic link"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kind, word", [(tarfile.SYMTYPE, "symbolic link"), (tarfile.LNKTYPE, "hard link")]
)
def test_tar_link_members_are_refused(tmp_path, kind, word):
    info = link_info("top/link", "/etc/passwd", kind)
    archive = make_tar(tmp_path / "l.tar.gz", {"top/a.txt": b"a"}, special=[info])
    with pytest.raises(UnsafeArchiveError, match=f"'top/link': {word}"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_a_clear_error(tmp_path):
    archive = make_tar(tmp_path / "t.tar.gz", {"a.txt": bytes(range(256)) * 400})
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DatasetError, match="corrupt or truncated archive"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- mirror lookup and download ------------------------------------------------------------------


def spec_for(archive_name: str, url: str, sha256: str | None = None, md5: str | None = None):
    source = ArchiveSource(url=url, archive_name=archive_name, sha256=sha256, md5=md5)
    return DatasetSpec("fake", "fake", "none", archive=source, mirror_folder="fake")


def test_mirror_archive_checksum_mismatch_names_file_and_hashes(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = make_zip(mirror / "fake.zip", {"top/a.txt": b"a"})
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    spec = spec_for("fake.zip", "file:///nonexistent/fake.zip", sha256="0" * 64)
    with pytest.raises(ChecksumError) as err:
        obtain(spec, tmp_path / "work", {"QMOE_MIRROR": str(mirror)})
    msg = str(err.value)
    assert "fake.zip" in msg and "expected " + "0" * 64 in msg and f"got {actual}" in msg
    assert sorted(p.name for p in mirror.iterdir()) == ["fake.zip"]  # mirror untouched


def test_mirror_searched_in_order_and_archive_read_in_place(tmp_path):
    first, second = tmp_path / "m1", tmp_path / "m2"
    first.mkdir(), second.mkdir()
    make_zip(second / "fake.zip", {"top/a.txt": b"from m2"})
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    env = {"QMOE_MIRROR": f"{tmp_path / 'absent'}:{first}:{second}"}
    src = obtain(spec_for("fake.zip", "file:///nonexistent"), tmp_path / "work", env)
    assert src.origin == "mirror archive"
    assert (src.root / "top/a.txt").read_bytes() == b"from m2"
    assert src.archive_sha256 == hashlib.sha256((second / "fake.zip").read_bytes()).hexdigest()
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing in a mirror changed
    assert not list(first.iterdir()) and [p.name for p in second.iterdir()] == ["fake.zip"]


def test_download_streams_verifies_and_renames(tmp_path):
    served = make_zip(tmp_path / "served.zip", {"top/a.txt": b"a"})
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    spec = spec_for("fake.zip", served.as_uri(), sha256=digest)
    src = obtain(spec, tmp_path / "work", {})
    assert src.origin == "download" and src.archive_sha256 == digest
    assert (src.root / "top/a.txt").read_bytes() == b"a"
    assert not list((tmp_path / "work").glob(".*.part"))


def test_download_checksum_mismatch_leaves_no_partial_file(tmp_path):
    served = make_zip(tmp_path / "served.zip", {"top/a.txt": b"a"})
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    dest = tmp_path / "work" / "fake.zip"
    dest.parent.mkdir()
    wrong = ArchiveSource(url=served.as_uri(), archive_name="fake.zip", md5="f" * 32)
    with pytest.raises(ChecksumError, match=f"md5 mismatch: expected {'f' * 32}, got {md5}"):
        download(wrong.url, dest, wrong)
    assert list(dest.parent.iterdir()) == []


def test_no_mirror_and_no_network_says_what_was_looked_for_where(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    spec = spec_for("fake.zip", (tmp_path / "not-served.zip").as_uri())
    with pytest.raises(DatasetError) as err:
        obtain(spec, tmp_path / "work", {"QMOE_MIRROR": str(mirror)})
    msg = str(err.value)
    assert "'fake.zip' or 'fake'" in msg and str(mirror) in msg
    assert "download of file://" in msg and "set QMOE_MIRROR=" in msg
    with pytest.raises(DatasetError, match=r"nowhere \(QMOE_MIRROR is not set\)"):
        obtain(spec, tmp_path / "work2", {})


# --- size caps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_extraction_stops_at_the_ratio_cap_and_leaves_nothing(tmp_path, kind):
    from qmoe.datasets.archive import ExtractLimits

    members = {"top/ok.txt": b"fine", "top/bomb.bin": bytes(4 << 20)}  # 4 MiB zeros, ~4 KB packed
    if kind == "zip":
        archive = tmp_path / "b.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        archive = make_tar(tmp_path / "b.tar.gz", members)
    size = archive.stat().st_size
    assert size < 40_000
    with pytest.raises(
        UnsafeArchiveError,
        match=rf"{archive.name}: refusing member '.*': "
        rf"extraction would exceed {100 * size:,} bytes "
        rf"\([\d,]+ (so far|declared by the zip); "
        rf"download\.max_extract_ratio = 100 x the archive's {size:,} bytes\)",
    ):
        extract(archive, tmp_path / "out", ExtractLimits(max_bytes=10**12, max_ratio=100.0))
    assert not (tmp_path / "out").exists()
    with pytest.raises(
        UnsafeArchiveError,
        match=r"would exceed 1,000,000 bytes .*"
        r"download\.max_extract_bytes = 1,000,000\)",
    ):
        extract(archive, tmp_path / "out", ExtractLimits(max_bytes=1_000_000, max_ratio=1e6))
    assert not (tmp_path / "out").exists()
    assert extract(archive, tmp_path / "out", ExtractLimits(max_bytes=5 << 20, max_ratio=1e6)) == 2


def test_zip_whose_headers_understate_sizes_is_still_capped(tmp_path):
    from qmoe.datasets.archive import ExtractLimits

    archive = make_zip(tmp_path / "lie.zip", {"a.bin": bytes(1 << 20)})
    data = bytearray(archive.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # local and central headers: claim 10 bytes
        pos = data.find(sig)
        at = pos + (22 if sig == b"PK\x03\x04" else 24)
        data[at : at + 4] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetError):  # zipfile or our byte count stops it; nothing stays
        extract(archive, tmp_path / "out", ExtractLimits(max_bytes=1000, max_ratio=1e6))
    assert not (tmp_path / "out").exists()


def test_download_params_reach_the_extraction(tmp_path, monkeypatch):
    import dataclasses

    from qmoe.datasets import SPECS, DownloadConfig, build

    spec = dataclasses.replace(
        SPECS["urbansound8k"], archive=dataclasses.replace(SPECS["urbansound8k"].archive, md5=None)
    )
    monkeypatch.setitem(SPECS, "urbansound8k", spec)
    (tmp_path / "mirror").mkdir()
    make_tar(tmp_path / "mirror" / "UrbanSound8K.tar.gz", {"UrbanSound8K/x.bin": bytes(1 << 20)})
    cfg = config(DownloadConfig, "download", max_extract_bytes=100_000)
    with pytest.raises(UnsafeArchiveError, match=r"download\.max_extract_bytes = 100,000"):
        build("urbansound8k", tmp_path / "raw", cfg, env={"QMOE_MIRROR": str(tmp_path / "mirror")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror"]

"""User folders (quinn / imagefolder / audiofolder) and ESC-10 from the real read-only mirror."""

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image
from repo_params import config

from qmoe.datasets import COLUMNS, ChecksumError, DatasetError, DownloadConfig, build

ROOT = Path(__file__).resolve().parents[2]
FAIL = config(DownloadConfig, "download", on_bad_file="fail")


def write_png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def write_wav(path: Path, frames: int = 400, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.linspace(-0.5, 0.5, frames, dtype=np.float32), sr, subtype="PCM_16")


# --- user data: <download.user_data>/<name>/ -----------------------------------------------------


def user(tmp_path: Path, **changes) -> DownloadConfig:
    """Download params reading user datasets from tmp_path/ud."""
    return config(DownloadConfig, "download", user_data=str(tmp_path / "ud"), **changes)


def test_quinn_class_folders_label_alphabetically(tmp_path):
    quinn = tmp_path / "ud" / "quinn"
    for i, cls in enumerate(["quiet", "anthro", "bio"]):
        for k in range(2):
            write_png(quinn / cls / f"clip{k}.png", 40 * i + k)
    (quinn / "README.txt").write_text("not a class")
    (quinn / "bio" / "notes.txt").write_text("ignored: not an image")
    meta = build("quinn", tmp_path / "raw", user(tmp_path), env={})
    m = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert list(m.columns) == COLUMNS and len(m) == 6
    assert meta["class_names"] == ["anthro", "bio", "quiet"] and meta["num_folds"] == 0
    assert meta["user_data"] == f"{tmp_path / 'ud'}/quinn" and meta["content_verified"] is False
    assert meta["source_id"].startswith("one per file: a class-folder layout groups nothing")
    row = m.set_index("clip_id").loc["quiet/clip1"]
    assert (row.label_id, row.fold, row.sample_rate, row.path) == (2, 0, 0, "files/quiet/clip1.png")
    assert (tmp_path / "raw" / row.path).read_bytes() == (quinn / "quiet/clip1.png").read_bytes()


def test_bad_image_is_named_or_skipped(tmp_path):
    folder = tmp_path / "ud" / "imagefolder"
    for name in ("cat/a.png", "cat/c.png", "dog/b.png", "dog/d.png"):
        write_png(folder / name, len(name))
    (folder / "dog" / "broken.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DatasetError, match=r"files/dog/broken\.png: cannot decode image"):
        build("imagefolder", tmp_path / "raw", user(tmp_path), env={})
    meta = build("imagefolder", tmp_path / "raw", user(tmp_path, on_bad_file="skip"), env={})
    assert meta["file_count"] == 4 and meta["source"]["origin"] == "user folder"
    assert meta["rejects"][0]["clip_id"] == "dog/broken"


def test_user_dataset_without_a_folder_says_how_to_supply_it(tmp_path):
    with pytest.raises(
        DatasetError,
        match=r"'quinn' is user-supplied: put class sub-folders .*"
        r"ud/quinn \(download.user_data = '.*ud', a DVC dependency",
    ):
        build("quinn", tmp_path / "raw", user(tmp_path), env={})
    (tmp_path / "ud" / "imagefolder").mkdir(parents=True)
    write_png(tmp_path / "ud" / "imagefolder" / "x.png", 0)
    with pytest.raises(DatasetError, match="no class subfolders"):
        build("imagefolder", tmp_path / "raw", user(tmp_path), env={})
    assert not (tmp_path / "raw").exists()


def test_the_retired_environment_variable_is_refused_not_ignored(tmp_path):
    write_wav(tmp_path / "ud" / "audiofolder" / "a" / "x.wav", frames=1600)
    env = {"QMOE_DATA_AUDIOFOLDER": str(tmp_path / "elsewhere")}
    with pytest.raises(
        DatasetError,
        match=r"QMOE_DATA_AUDIOFOLDER is no longer read \(DVC cannot "
        r"see a variable.*set download.user_data in params.yaml",
    ):
        build("audiofolder", tmp_path / "raw", user(tmp_path), env=env)
    assert not (tmp_path / "raw").exists()


def test_audiofolder_class_subfolders(tmp_path):
    write_wav(tmp_path / "ud" / "audiofolder" / "siren" / "x.wav", frames=1600)
    write_wav(tmp_path / "ud" / "audiofolder" / "siren" / "z.wav", frames=1600)
    write_wav(tmp_path / "ud" / "audiofolder" / "horn" / "sub" / "y.flac", frames=800)
    write_wav(tmp_path / "ud" / "audiofolder" / "horn" / "w.flac", frames=800)
    meta = build("audiofolder", tmp_path / "raw", user(tmp_path), env={})
    m = pd.read_csv(tmp_path / "raw" / "manifest.csv").set_index("clip_id")
    assert meta["class_names"] == ["horn", "siren"]
    assert (
        m.loc["siren/x", "duration_s"] == pytest.approx(0.2)
        and m.loc["siren/x", "sample_rate"] == 8000
    )
    assert m.loc["horn/sub/y", "path"] == "files/horn/sub/y.flac"


def write_csv(
    tmp_path: Path,
    text: str,
    names=("clips/a.wav", "clips/b.wav", "more/c.wav"),
    encoding: str = "utf-8",
) -> Path:
    for name in names:
        write_wav(tmp_path / "ud" / "audiofolder" / name, frames=1600)
    path = tmp_path / "ud" / "audiofolder" / "labels.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_audiofolder_csv_with_folds(tmp_path):
    write_csv(
        tmp_path,
        "path,label,fold\nclips/a.wav,yes,1\nclips/b.wav,no,2\nmore/c.wav,yes,2\nmore/d.wav,no,1\n",
        names=("clips/a.wav", "clips/b.wav", "more/c.wav", "more/d.wav"),
    )
    meta = build("audiofolder", tmp_path / "raw", user(tmp_path), env={})
    m = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert m[["clip_id", "label_id", "label_name", "fold"]].values.tolist() == [
        ["clips/a", 1, "yes", 1],
        ["clips/b", 0, "no", 2],
        ["more/c", 1, "yes", 2],
        ["more/d", 0, "no", 1],
    ]
    assert meta["num_folds"] == 2 and meta["folds"] == "user labels.csv, column fold"


@pytest.mark.parametrize(
    "line, message",
    [
        ("../outside.wav,yes,1", r"labels\.csv:2: path '\.\./outside\.wav' must be relative"),
        ("/etc/passwd,yes,1", r"labels\.csv:2: path '/etc/passwd' must be relative"),
        ("clips/a.wav,yes,one", r"labels\.csv:2: fold 'one' is not a non-negative integer"),
        ("clips/a.wav,yes,\uff13", r"labels\.csv:2: fold '\uff13' is not a non-negative integer"),
        ("clips/a.wav,yes,99999999999999999999999", r"csv:2: fold '999999999999' is out of range"),
        ("clips/gone.wav,yes,1", r"1 of 1 files listed in the CSV missing: 'clips/gone\.wav'"),
    ],
)
def test_audiofolder_csv_bad_rows(tmp_path, line, message):
    (tmp_path / "outside.wav").write_bytes(b"")
    write_csv(tmp_path, f"path,label,fold\n{line}\n", names=("clips/a.wav",))
    with pytest.raises(DatasetError, match=message):
        build("audiofolder", tmp_path / "raw", user(tmp_path), env={})
    assert not (tmp_path / "raw").exists()


# --- ESC-10 from the real mirror (read-only; nothing is written into it) -------------------------

PROVENANCE_TARGETS = {
    "001 - Dog bark": 0, "002 - Rain": 10, "003 - Sea waves": 11, "004 - Baby cry": 20,
    "005 - Clock tick": 38, "006 - Person sneeze": 21, "007 - Helicopter": 40,
    "008 - Chainsaw": 41, "009 - Rooster": 1, "010 - Fire crackling": 12,
}  # fmt: skip


def real_mirror() -> Path | None:
    env = [Path(p) for p in os.environ.get("QMOE_MIRROR", "").split(os.pathsep) if p]
    for mirror in [*env, ROOT.parent / "shared" / "datasets"]:
        if (mirror / "esc10" / "001 - Dog bark").is_dir():
            return mirror
    return None


needs_mirror = pytest.mark.skipif(
    real_mirror() is None, reason="no ESC-10 mirror (QMOE_MIRROR or ../shared/datasets/esc10)"
)


@needs_mirror
def test_real_esc10_from_mirror(tmp_path):
    mirror = real_mirror()
    meta = build("esc10", tmp_path / "esc10", FAIL, env={"QMOE_MIRROR": str(mirror)})
    m = pd.read_csv(tmp_path / "esc10" / "manifest.csv")
    assert len(m) == 400 and meta["file_count"] == 400 and meta["rejects"] == []
    assert m.groupby("label_id").size().tolist() == [40] * 10
    assert m.groupby("fold").size().to_dict() == {1: 80, 2: 80, 3: 80, 4: 80, 5: 80}
    folder_target = m.groupby(m.path.str.split("/").str[1])["target"].unique()
    assert {k: v.tolist() for k, v in folder_target.items()} == {
        k: [v] for k, v in PROVENANCE_TARGETS.items()
    }
    assert m.groupby("target")["label_id"].first().tolist() == list(range(10))  # ascending target
    sums = dict(
        reversed(line.split("  ", 1))
        for line in (mirror / "esc10" / "SHA256SUMS").read_text().splitlines()
    )
    assert all(sums[p.removeprefix("files/")] == s for p, s in zip(m.path, m.sha256))
    assert m.duration_s.min() == pytest.approx(
        3.644, abs=1e-3
    ) and m.sample_rate.unique().tolist() == [44100]


@needs_mirror
def test_esc10_checksum_mismatch_and_missing_files(tmp_path):
    copy = tmp_path / "mirror" / "esc10"
    shutil.copytree(real_mirror() / "esc10", copy)
    for p in [copy, *copy.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # the mirror copy keeps read-only modes
    first = copy / "001 - Dog bark" / "1-100032-A.ogg"
    good = first.read_bytes()
    first.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    env = {"QMOE_MIRROR": str(tmp_path / "mirror")}
    with pytest.raises(
        ChecksumError,
        match=r"1-100032-A\.ogg: sha256 mismatch: expected 8c69a6a4.*, got [0-9a-f]{64}",
    ):
        build("esc10", tmp_path / "raw", FAIL, env=env)
    for rel in ("002 - Rain/1-17367-A.ogg", "010 - Fire crackling/1-17808-B.ogg"):
        (copy / rel).unlink()
    with pytest.raises(
        DatasetError, match=r"2 of 400 ESC-10 clips missing: '002 - Rain/1-17367-A\.ogg'"
    ):
        build("esc10", tmp_path / "raw", FAIL, env=env)
    assert sorted(os.listdir(tmp_path)) == ["mirror"]


# --- UrbanSound8K path on a fake tar.gz; ESC-10 from an archive ----------------------------------


US8K_ROWS = [(100, 1, 3, "dog_bark"), (100, 1, 3, "dog_bark"), (200, 2, 0, "air_conditioner"),
             (300, 10, 8, "siren"), (400, 10, 3, "dog_bark"), (500, 1, 0, "air_conditioner"),
             (600, 2, 8, "siren")]  # fmt: skip


def make_us8k_tar(mirror: Path, monkeypatch) -> None:
    import dataclasses
    import tarfile

    from qmoe.datasets import SPECS

    top = mirror.parent / "tree" / "UrbanSound8K"
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for fs_id, fold, class_id, name in US8K_ROWS:
        clip = f"{fs_id}-{class_id}-0-{len(lines)}.wav"
        write_wav(top / "audio" / f"fold{fold}" / clip)
        lines.append(f"{clip},{fs_id},0.0,0.05,1,{fold},{class_id},{name}")
    (top / "metadata").mkdir()
    (top / "metadata" / "UrbanSound8K.csv").write_text("\n".join(lines) + "\n")
    mirror.mkdir()
    with tarfile.open(mirror / "UrbanSound8K.tar.gz", "w:gz") as tf:
        tf.add(top, arcname="UrbanSound8K")
    spec = SPECS["urbansound8k"]
    fake = dataclasses.replace(
        spec, archive=dataclasses.replace(spec.archive, md5=None), expected_files=len(US8K_ROWS)
    )
    monkeypatch.setitem(SPECS, "urbansound8k", fake)


def test_urbansound8k_fake_archive(tmp_path, monkeypatch):
    make_us8k_tar(tmp_path / "mirror", monkeypatch)
    meta = build(
        "urbansound8k", tmp_path / "raw", FAIL, env={"QMOE_MIRROR": str(tmp_path / "mirror")}
    )
    m = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert m[["clip_id", "label_id", "label_name", "fold", "source_id"]].values.tolist() == [
        ["100-3-0-1", 1, "dog_bark", 1, 100],
        ["100-3-0-2", 1, "dog_bark", 1, 100],
        ["200-0-0-3", 0, "air_conditioner", 2, 200],
        ["300-8-0-4", 2, "siren", 10, 300],
        ["400-3-0-5", 1, "dog_bark", 10, 400],
        ["500-0-0-6", 0, "air_conditioner", 1, 500],
        ["600-8-0-7", 2, "siren", 2, 600],
    ]
    assert (
        m.path[3] == "files/audio/fold10/300-8-0-4.wav" and (tmp_path / "raw" / m.path[3]).is_file()
    )
    assert meta["num_folds"] == 3 and meta["source"]["zenodo_record"] == "1203745"


@needs_mirror
def test_esc10_from_a_github_style_archive(tmp_path):
    import zipfile

    from qmoe.datasets import SPECS

    spec = SPECS["esc10"]
    top = spec.archive.archive_name.removesuffix(".zip")
    (tmp_path / "mirror").mkdir()
    with zipfile.ZipFile(tmp_path / "mirror" / spec.archive.archive_name, "w") as zf:  # stored
        for p in sorted((real_mirror() / "esc10").rglob("*.ogg")):
            zf.write(p, f"{top}/{p.relative_to(real_mirror() / 'esc10').as_posix()}")
    meta = build("esc10", tmp_path / "raw", FAIL, env={"QMOE_MIRROR": str(tmp_path / "mirror")})
    assert meta["file_count"] == 400 and meta["source"]["origin"] == "mirror archive"
    assert len(meta["archive_sha256"]) == 64


def test_csv_with_a_utf8_byte_order_mark_is_read(tmp_path):
    write_csv(
        tmp_path,
        "path,label,fold\nclips/a.wav,yes,1\nclips/b.wav,no,1\nmore/c.wav,yes,2\nmore/d.wav,no,2\n",
        names=("clips/a.wav", "clips/b.wav", "more/c.wav", "more/d.wav"),
        encoding="utf-8-sig",
    )
    assert (tmp_path / "ud/audiofolder/labels.csv").read_bytes().startswith(b"\xef\xbb\xbfpath")
    meta = build("audiofolder", tmp_path / "raw", user(tmp_path), env={})
    assert meta["class_names"] == ["no", "yes"] and meta["num_folds"] == 2


def test_csv_that_is_not_utf8_is_named(tmp_path):
    write_csv(
        tmp_path, "path,label\nclips/a.wav,caf\xe9\n", names=("clips/a.wav",), encoding="latin-1"
    )
    with pytest.raises(
        DatasetError,
        match=r"labels\.csv: not UTF-8 text \(byte 0xe9\); save it "
        r"as UTF-8$",
    ):
        build("audiofolder", tmp_path / "raw", user(tmp_path), env={})


def _audio_classes(root: Path) -> None:
    for name in ("a/x.wav", "a/y.wav", "b/x.wav", "b/y.wav"):
        write_wav(root / name, frames=1600)


@pytest.mark.parametrize(
    "link, target",
    [
        ("audiofolder", "."),  # the dataset folder itself
        ("audiofolder/b", "b"),  # a class folder
        ("audiofolder/a/z.wav", "b/x.wav"),  # one clip
        ("audiofolder/labels.csv", "labels.csv"),  # the labels
    ],
)
def test_a_symbolic_link_in_the_user_data_is_refused_naming_it(tmp_path, link, target):
    """DVC hashes the dependency's files, not what a link inside it points at: a changed label or
    clip behind a link would leave dvc status up to date with stale results."""
    real = tmp_path / "elsewhere"
    _audio_classes(real)
    (real / "labels.csv").write_text("path,label\na/x.wav,a\na/y.wav,a\nb/x.wav,b\nb/y.wav,b\n")
    folder = tmp_path / "ud" / "audiofolder"
    if link != "audiofolder":
        _audio_classes(folder)
        if link.endswith("/b"):
            shutil.rmtree(folder / "b")
    folder.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "ud" / link).symlink_to(real / target)
    with pytest.raises(DatasetError) as e:
        build("audiofolder", tmp_path / "raw", user(tmp_path), env={})
    assert str(e.value) == (
        f"{tmp_path / 'ud' / link}: a symbolic link, and DVC does not see the data behind a link "
        f"in a dependency: copy the data into {folder}, or set download.user_data to the real "
        f"folder that holds audiofolder/ (now {str(tmp_path / 'ud')!r})"
    )
    assert not (tmp_path / "raw").exists()


def test_download_user_data_may_itself_be_a_link(tmp_path):
    """DVC follows a dependency's own path: a link as download.user_data is seen through."""
    _audio_classes(tmp_path / "real" / "audiofolder")
    (tmp_path / "ud").symlink_to(tmp_path / "real")
    meta = build("audiofolder", tmp_path / "raw", user(tmp_path), env={})
    assert meta["file_count"] == 4


# --- ESC-50 mirror folder: no per-file checksums, so metadata and format are checked -------------

ESC50_META = ROOT.parent / "shared" / "datasets" / "esc50-meta" / "esc50.csv"


def esc50_folder(tmp_path: Path, meta_text: str) -> Path:
    """A mirror folder esc50/ with the given metadata and one 0.1 s noise clip per row."""
    root = tmp_path / "mirror" / "esc50"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text(meta_text)
    (root / "audio").mkdir()
    write_wav(root / "audio" / "template.wav", frames=4410, sr=44100)
    data = (root / "audio" / "template.wav").read_bytes()
    for line in meta_text.splitlines()[1:]:
        (root / "audio" / line.split(",", 1)[0]).write_bytes(data)
    return root


@pytest.mark.skipif(not ESC50_META.is_file(), reason="no ../shared/datasets/esc50-meta/esc50.csv")
def test_esc50_mirror_of_made_up_clips_with_the_real_metadata_is_refused(tmp_path):
    text = ESC50_META.read_text()
    esc50_folder(tmp_path, text)
    env = {"QMOE_MIRROR": str(tmp_path / "mirror")}
    with pytest.raises(
        DatasetError,
        match=r"^files/audio/1-100032-A-0\.wav: frames 4410, "
        r"expected 220500 \(set download\.on_bad_file: skip",
    ):
        build("esc50", tmp_path / "raw", FAIL, env=env)
    lines = text.splitlines()
    lines[1] = lines[1].replace(",dog,", ",cat,")  # one category changed: not the official file
    (tmp_path / "mirror/esc50/meta/esc50.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DatasetError,
        match=r"esc50\.csv: not the official ESC-50 metadata \(digest "
        r"of its rows [0-9a-f]{64}, expected 0160a6cc",
    ):
        build("esc50", tmp_path / "raw", FAIL, env=env)
    assert sorted(os.listdir(tmp_path)) == ["mirror"]


def test_esc50_folder_is_unverified_content_and_an_archive_is_verified(tmp_path, monkeypatch):
    import dataclasses
    import hashlib
    import zipfile

    from qmoe.datasets import SPECS
    from qmoe.datasets.registry import ClipFormat

    rows = ["filename,fold,target,category,esc10,src_file,take"] + [
        f"{f}-{100 + 10 * t + f}-A-{t}.wav,{f},{t},c{t},False,{100 + 10 * t + f},A"
        for t in (0, 1)
        for f in (1, 2)
    ]
    root = esc50_folder(tmp_path, "\n".join(rows) + "\n")
    (root / "audio" / "template.wav").unlink()
    spec = SPECS["esc50"]
    fake = dataclasses.replace(
        spec, expected_files=4, meta_digest=None, clip_format=ClipFormat(44100, 1, 4410)
    )
    monkeypatch.setitem(SPECS, "esc50", fake)
    meta = build("esc50", tmp_path / "raw", FAIL, env={"QMOE_MIRROR": str(tmp_path / "mirror")})
    assert meta["content_verified"] is False and meta["archive_sha256"] is None
    assert meta["content_check"].startswith(
        "mirror folder: no per-file checksums are published, "
        "content not verified; meta/esc50.csv is the official"
    )
    assert meta["folds"] == "official (meta/esc50.csv)"
    # the same clips as a GitHub-style archive whose md5 is the published one
    archive = tmp_path / "arch" / spec.archive.archive_name
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(root.rglob("*")):
            zf.write(p, f"ESC-50-x/{p.relative_to(root).as_posix()}")
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(
        SPECS,
        "esc50",
        dataclasses.replace(fake, archive=dataclasses.replace(spec.archive, md5=digest)),
    )
    meta = build("esc50", tmp_path / "raw2", FAIL, env={"QMOE_MIRROR": str(tmp_path / "arch")})
    assert meta["content_verified"] is True
    assert meta["content_check"] == f"archive md5 matches the published {digest}"
    assert meta["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


BUNDLED = ROOT / "data" / "external"


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_bundled_esc10_is_read_first_verified_and_left_untouched(tmp_path):
    """data/external/esc10 is committed with the repository: it wins over a mirror, every clip
    is checked against the package's sha256 sums, and the folder is copied from, never moved."""
    before = _tree(BUNDLED / "esc10")
    decoy = tmp_path / "mirror" / "esc10"  # an (incomplete) mirror folder that must not be used
    decoy.mkdir(parents=True)
    meta = build(
        "esc10", tmp_path / "esc10", FAIL, env={"QMOE_MIRROR": str(decoy.parent)}, bundled=BUNDLED
    )
    assert meta["file_count"] == 400 and meta["source"]["origin"] == "bundled folder"
    assert _tree(BUNDLED / "esc10") == before
    sums = dict(
        reversed(line.split("  ", 1))
        for line in (BUNDLED / "esc10" / "SHA256SUMS").read_text().splitlines()
    )
    manifest = pd.read_csv(tmp_path / "esc10" / "manifest.csv")
    assert all(sums[p.removeprefix("files/")] == s for p, s in zip(manifest.path, manifest.sha256))


def test_a_tampered_bundled_clip_is_refused(tmp_path):
    bundled = tmp_path / "external"
    shutil.copytree(BUNDLED / "esc10", bundled / "esc10")
    clip = next((bundled / "esc10" / "001 - Dog bark").glob("*.ogg"))
    clip.write_bytes(clip.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ChecksumError, match=clip.name):
        build("esc10", tmp_path / "out", FAIL, env={}, bundled=bundled)
    assert not (tmp_path / "out").exists()

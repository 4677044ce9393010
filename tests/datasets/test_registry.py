"""qmoe.datasets.build on small archives / folders made here, and on the real ESC-10 mirror."""

import csv
import dataclasses
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from repo_params import config, section

from qmoe.datasets import (
    BUILDERS,
    COLUMNS,
    ESC_COLUMNS,
    SPECS,
    DatasetError,
    DownloadConfig,
    SyntheticConfig,
    build,
    esc_columns,
)
from qmoe.io import ConfigError, from_section

ROOT = Path(__file__).resolve().parents[2]
FAIL = config(DownloadConfig, "download", on_bad_file="fail")
SKIP = config(DownloadConfig, "download", on_bad_file="skip")


def write_wav(path: Path, seconds: float = 0.05, sr: int = 8000, freq: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")


# Fake ESC-50: (target, category) x folds 1 and 2, chosen to hit every major / scrambled group.
FAKE_TARGETS = {0: "dog", 7: "insects", 12: "crackling_fire", 26: "laughing", 33: "door_creak",
                49: "hand_saw"}  # fmt: skip


def make_esc50_tree(root: Path) -> list[str]:
    """audio/*.wav + meta/esc50.csv in ESC-50 layout; returns the file names."""
    rows = []
    for target, category in FAKE_TARGETS.items():
        for fold in (1, 2):
            src = str(1000 + 10 * target + fold)
            name = f"{fold}-{src}-A-{target}.wav"
            write_wav(root / "audio" / name, freq=200.0 + 20 * target)
            rows.append([name, fold, target, category, "False", src, "A"])
    (root / "meta").mkdir(parents=True)
    with (root / "meta/esc50.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        w.writerows(sorted(rows))
    return sorted(r[0] for r in rows)


def fake_esc50(**changes) -> object:
    """The esc50 spec without the official metadata digest and clip format (5.0 s, 44.1 kHz)."""
    return dataclasses.replace(SPECS["esc50"], meta_digest=None, clip_format=None, **changes)


def make_esc50_zip(mirror: Path, monkeypatch) -> Path:
    """A fake ESC-50-<commit>.zip in `mirror`, and the esc50 spec patched to accept it."""
    spec = SPECS["esc50"]
    top = mirror.parent / "tree" / spec.archive.archive_name.removesuffix(".zip")
    names = make_esc50_tree(top)
    zpath = mirror / spec.archive.archive_name
    mirror.mkdir(exist_ok=True)
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(top.rglob("*")):
            zf.write(p, p.relative_to(top.parent).as_posix())
    fake = fake_esc50(
        archive=dataclasses.replace(spec.archive, md5=None), expected_files=len(names)
    )
    monkeypatch.setitem(SPECS, "esc50", fake)
    return zpath


# Reference-method.md 4.1, written out as ranges: scrambled group of each target.
SCRAMBLED_RANGES = {
    "Animals": [*range(0, 5), *range(25, 30)],
    "Natural soundscapes": [*range(5, 10), *range(30, 35)],
    "Human non-speech": [*range(10, 15), *range(35, 40)],
    "Interior sounds": [*range(15, 20), *range(40, 45)],
    "Exterior noises": [*range(20, 25), *range(45, 50)],
}
SCRAMBLED_CODE = {"Animals": 0, "Exterior noises": 1, "Human non-speech": 2,
                  "Interior sounds": 3, "Natural soundscapes": 4}  # fmt: skip


@pytest.mark.parametrize("target", range(50))
def test_esc_columns_match_official_majors_and_reference_grouping(target):
    name = next(n for n, ts in SCRAMBLED_RANGES.items() if target in ts)
    cols = esc_columns(target)
    assert cols["scrambled_name"] == name and cols["scrambled_id"] == SCRAMBLED_CODE[name]
    assert cols["major_id"] == target // 10
    majors = ["Animals", "Natural soundscapes & water sounds", "Human non-speech sounds",
              "Interior/domestic sounds", "Exterior/urban noises"]  # fmt: skip
    assert cols["major_name"] == majors[target // 10]


def test_registry_and_builders_cover_the_same_names():
    assert set(SPECS) == set(BUILDERS)
    assert {
        "esc50",
        "esc10",
        "urbansound8k",
        "quinn",
        "audiofolder",
        "imagefolder",
        "synthetic",
    } <= set(SPECS)


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown dataset 'esc5O'; valid: \[.*'esc10', 'esc50'"):
        build("esc5O", tmp_path / "out", FAIL)
    assert not (tmp_path / "out").exists()


def _download(**synthetic) -> dict:
    """params `download` with changes to its `synthetic` entry."""
    return {**section("download"), "synthetic": {**section("download.synthetic"), **synthetic}}


def test_wrong_type_params_name_the_field():
    with pytest.raises(
        ConfigError, match=r"download\.synthetic\.clips_per_class: expected an integer, got str '8'"
    ):
        from_section(DownloadConfig, _download(clips_per_class="8"), "download")
    with pytest.raises(ConfigError, match=r"download\.on_bad_file: 'ignore' is not one of"):
        from_section(DownloadConfig, {**section("download"), "on_bad_file": "ignore"}, "download")
    with pytest.raises(ConfigError, match=r"download\.synthetic\.classes: must be 2\.\.50, got 1"):
        from_section(DownloadConfig, _download(classes=1), "download")


def test_params_yaml_download_section_builds():
    from qmoe.io import load_params

    cfg = from_section(DownloadConfig, load_params(ROOT / "params.yaml")["download"], "download")
    assert isinstance(cfg.synthetic, SyntheticConfig)


# --- synthetic -----------------------------------------------------------------------------------

SMALL = config(
    DownloadConfig,
    "download",
    synthetic=config(
        SyntheticConfig,
        "download.synthetic",
        classes=3,
        clips_per_class=5,
        sample_rate=8000,
        seconds=0.5,
    ),
)


def test_synthetic_is_deterministic_and_seed_dependent(tmp_path):
    a = build("synthetic", tmp_path / "a", SMALL, env={})
    b = build("synthetic", tmp_path / "b", SMALL, env={})
    other = dataclasses.replace(SMALL, synthetic=dataclasses.replace(SMALL.synthetic, seed=1))
    build("synthetic", tmp_path / "c", other, env={})
    ma, mb, mc = (pd.read_csv(tmp_path / x / "manifest.csv") for x in "abc")
    pd.testing.assert_frame_equal(ma, mb)
    assert (ma["sha256"] != mc["sha256"]).all()
    assert a == b and a["file_count"] == 15 and a["num_classes"] == 3 and a["num_folds"] == 5
    assert list(ma.columns) == COLUMNS + ESC_COLUMNS
    assert sorted(ma.groupby("fold").size()) == [3, 3, 3, 3, 3]


def test_synthetic_classes_are_separable_by_their_tone(tmp_path):
    build("synthetic", tmp_path / "s", SMALL, env={})
    m = pd.read_csv(tmp_path / "s" / "manifest.csv")
    peaks = {}
    for row in m.itertuples():
        x, sr = sf.read(tmp_path / "s" / row.path)
        peaks.setdefault(row.label_id, set()).add(
            round(np.abs(np.fft.rfft(x)).argmax() * sr / len(x), -1)
        )
    # every clip of a class peaks at its class frequency, and the classes' peaks differ
    assert all(len(p) == 1 for p in peaks.values()) and len({p.pop() for p in peaks.values()}) == 3


# --- ESC-50 path on a fake archive ---------------------------------------------------------------


def test_esc50_fake_archive_gives_contract_manifest(tmp_path, monkeypatch):
    zpath = make_esc50_zip(tmp_path / "mirror", monkeypatch)
    meta = build("esc50", tmp_path / "raw", FAIL, env={"QMOE_MIRROR": str(tmp_path / "mirror")})
    m = pd.read_csv(tmp_path / "raw" / "manifest.csv", dtype={"source_id": str})
    assert list(m.columns) == COLUMNS + ESC_COLUMNS and len(m) == 12
    assert m["clip_id"].tolist() == sorted(m["clip_id"])
    assert dict(zip(m.target, m.label_id)) == {0: 0, 7: 1, 12: 2, 26: 3, 33: 4, 49: 5}
    assert dict(zip(m.target, m.label_name)) == FAKE_TARGETS
    expected_scrambled = {
        t: next(n for n, ts in SCRAMBLED_RANGES.items() if t in ts) for t in FAKE_TARGETS
    }
    assert dict(zip(m.target, m.scrambled_name)) == expected_scrambled
    assert dict(zip(m.target, m.scrambled_id)) == {
        t: SCRAMBLED_CODE[n] for t, n in expected_scrambled.items()
    }
    assert dict(zip(m.target, m.major_id)) == {0: 0, 7: 0, 12: 1, 26: 2, 33: 3, 49: 4}
    row = m.set_index("clip_id").loc["2-1122-A-12"]
    assert (row.fold, row.source_id, row.path) == (2, "1122", "files/audio/2-1122-A-12.wav")
    assert row.sample_rate == 8000 and row.duration_s == pytest.approx(0.05)
    assert row.sha256 == hashlib.sha256((tmp_path / "raw" / row.path).read_bytes()).hexdigest()
    assert meta["archive_sha256"] == hashlib.sha256(zpath.read_bytes()).hexdigest()
    assert meta["source"]["origin"] == "mirror archive" and meta["num_folds"] == 2
    assert json.loads((tmp_path / "raw" / "dataset.json").read_text()) == json.loads(
        json.dumps(meta)
    )
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "dataset.json",
        "files",
        "manifest.csv",
    ]


def test_esc50_mirror_folder_is_copied_not_moved(tmp_path, monkeypatch):
    names = make_esc50_tree(tmp_path / "mirror" / "esc50")
    monkeypatch.setitem(SPECS, "esc50", fake_esc50(expected_files=len(names)))
    meta = build("esc50", tmp_path / "raw", FAIL, env={"QMOE_MIRROR": str(tmp_path / "mirror")})
    assert meta["source"]["origin"] == "mirror folder" and meta["archive_sha256"] is None
    assert sorted(p.name for p in (tmp_path / "mirror/esc50/audio").iterdir()) == names


def test_esc50_expected_count_is_always_checked(tmp_path):
    make_esc50_tree(tmp_path / "mirror" / "esc50")
    with pytest.raises(DatasetError, match=r"esc50\.csv: 12 rows, expected 2000"):
        build("esc50", tmp_path / "raw", FAIL, env={"QMOE_MIRROR": str(tmp_path / "mirror")})
    assert not (tmp_path / "raw").exists()


def test_missing_files_are_counted_and_named(tmp_path, monkeypatch):
    names = make_esc50_tree(tmp_path / "mirror" / "esc50")
    for gone in names[:2]:
        (tmp_path / "mirror/esc50/audio" / gone).unlink()
    monkeypatch.setitem(SPECS, "esc50", fake_esc50(expected_files=len(names)))
    with pytest.raises(
        DatasetError, match=rf"2 of 12 audio files .* missing: '{names[0]}', '{names[1]}'"
    ):
        build("esc50", tmp_path / "raw", FAIL, env={"QMOE_MIRROR": str(tmp_path / "mirror")})
    assert os.listdir(tmp_path) == ["mirror"]  # no data/raw, no temporary folder


@pytest.mark.parametrize("defect", ["garbage", "empty"])
def test_bad_audio_fails_by_default_and_is_skipped_on_request(tmp_path, monkeypatch, defect):
    names = make_esc50_tree(tmp_path / "mirror" / "esc50")
    # a second fold-1 clip of the bad clip's class: dropping one keeps fold 2 trainable
    write_wav(tmp_path / "mirror/esc50/audio/1-1262-B-26.wav")
    with (tmp_path / "mirror/esc50/meta/esc50.csv").open("a") as f:
        f.write("1-1262-B-26.wav,1,26,laughing,False,1262,B\n")
    names = sorted([*names, "1-1262-B-26.wav"])
    assert names[3] == "1-1261-A-26.wav"
    bad = tmp_path / "mirror/esc50/audio" / names[3]
    if defect == "garbage":
        bad.write_bytes(b"RIFF not really a wave file")
    else:
        sf.write(bad, np.zeros(0, dtype=np.float32), 8000, subtype="PCM_16")
    monkeypatch.setitem(SPECS, "esc50", fake_esc50(expected_files=len(names)))
    env = {"QMOE_MIRROR": str(tmp_path / "mirror")}
    reason = "cannot decode audio" if defect == "garbage" else r"empty audio \(0 frames\)"
    with pytest.raises(DatasetError, match=rf"files/audio/{names[3]}: {reason}.*on_bad_file: skip"):
        build("esc50", tmp_path / "raw", FAIL, env=env)
    assert not (tmp_path / "raw").exists()
    meta = build("esc50", tmp_path / "raw", SKIP, env=env)
    m = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert len(m) == 12 and names[3].removesuffix(".wav") not in set(m.clip_id)
    assert [r["path"] for r in meta["rejects"]] == [f"files/audio/{names[3]}"]
    assert not (tmp_path / "raw/files/audio" / names[3]).exists()


def test_failed_rebuild_keeps_the_previous_output(tmp_path):
    build("synthetic", tmp_path / "raw", SMALL, env={})
    before = (tmp_path / "raw" / "manifest.csv").read_bytes()
    with pytest.raises(DatasetError):
        build("quinn", tmp_path / "raw", FAIL, env={"QMOE_MIRROR": str(tmp_path / "nothing")})
    assert (tmp_path / "raw" / "manifest.csv").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["raw"]

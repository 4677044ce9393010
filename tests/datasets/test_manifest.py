"""Clip and fold checks as `build` applies them (qmoe.datasets.manifest): nothing bad is kept
silently, `skip` never drops a class, every training part holds every class, dataset.json is
stable."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from repo_params import config

from qmoe.datasets import DatasetError, DownloadConfig, build

SR = 8000


def clip(path: Path, seconds: float = 0.2, level: float = 0.3, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = level * np.random.default_rng(len(path.name)).standard_normal(int(seconds * SR))
    sf.write(path, x.clip(-1, 1).astype(np.float32), SR, format=fmt)
    return path


def cut(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def cfg(tmp_path: Path, **changes) -> DownloadConfig:
    return config(DownloadConfig, "download", user_data=str(tmp_path / "ud"), **changes)


def audiofolder(tmp_path: Path, classes=("dog", "rain"), per_class: int = 3) -> Path:
    root = tmp_path / "ud" / "audiofolder"
    for c in classes:
        for i in range(per_class):
            clip(root / c / f"{c}{i}.wav")
    return root


def only_user_data_left(tmp_path: Path) -> bool:
    return sorted(os.listdir(tmp_path)) == ["ud"]


@pytest.mark.parametrize(
    "defect, reason",
    [
        ("ogg_third", r"truncated: the Ogg page at byte \d+ needs"),
        ("wav_half", r"truncated: the WAV header declares 40000 frames \(5\.000 s\)"),
        ("one_sample", r"too short: 0\.0001 s < download\.min_seconds 0\.1"),
        ("nan", r"NaN or infinite samples near"),
    ],
)
def test_bad_user_clip_fails_naming_it_or_is_skipped(tmp_path, defect, reason):
    root = audiofolder(tmp_path)
    if defect == "ogg_third":
        bad = clip(root / "dog" / "bad.ogg", seconds=5.0, fmt="OGG")
        cut(bad, 1 / 3)
    elif defect == "wav_half":
        bad = clip(root / "dog" / "bad.wav", seconds=5.0)
        cut(bad, 0.5)
    elif defect == "one_sample":
        bad = clip(root / "dog" / "bad.wav", seconds=1 / SR)
    else:
        x = np.full(SR, 0.1, dtype=np.float32)
        x[100] = np.nan
        bad = root / "dog" / "bad.wav"
        sf.write(bad, x, SR, subtype="FLOAT")
    rel = f"files/dog/{bad.name}"
    with pytest.raises(DatasetError, match=rf"^{rel}: {reason}.*on_bad_file: skip"):
        build("audiofolder", tmp_path / "raw", cfg(tmp_path), env={})
    assert only_user_data_left(tmp_path)
    meta = build("audiofolder", tmp_path / "raw", cfg(tmp_path, on_bad_file="skip"), env={})
    assert meta["file_count"] == 6 and [r["path"] for r in meta["rejects"]] == [rel]
    assert not (tmp_path / "raw" / rel).exists()


def test_skip_that_would_empty_a_class_fails_naming_it(tmp_path):
    root = audiofolder(tmp_path)
    for i in range(2):
        (root / "owl" / f"o{i}.wav").parent.mkdir(exist_ok=True)
        (root / "owl" / f"o{i}.wav").write_bytes(b"RIFF not audio")
    with pytest.raises(
        DatasetError,
        match=r"^class 'owl': all 2 of its clips are bad files, so "
        r"on_bad_file: skip would drop the class \(first: files/owl/o0\.wav: "
        r"cannot decode audio",
    ):
        build("audiofolder", tmp_path / "raw", cfg(tmp_path, on_bad_file="skip"), env={})
    assert only_user_data_left(tmp_path)


def test_silent_clip_is_kept_and_flagged(tmp_path):
    root = audiofolder(tmp_path)
    clip(root / "rain" / "hush.wav", level=0.0)
    meta = build("audiofolder", tmp_path / "raw", cfg(tmp_path), env={})
    assert meta["file_count"] == 7 and meta["flagged"] == [
        {
            "clip_id": "rain/hush",
            "path": "files/rain/hush.wav",
            "note": "silent: peak -inf dBFS < download.silence_dbfs -80",
        }
    ]


def test_dataset_json_has_no_temporary_path_and_repeats_byte_for_byte(tmp_path):
    root = audiofolder(tmp_path)
    (root / "dog" / "junk.wav").write_bytes(b"RIFF not audio")
    skip = cfg(tmp_path, on_bad_file="skip")
    build("audiofolder", tmp_path / "a" / "audiofolder", skip, env={})
    build("audiofolder", tmp_path / "b" / "audiofolder", skip, env={})
    first = (tmp_path / "a" / "audiofolder" / "dataset.json").read_bytes()
    assert first == (tmp_path / "b" / "audiofolder" / "dataset.json").read_bytes()
    reason = json.loads(first)["rejects"][0]["reason"]
    assert reason.startswith("cannot decode audio: Error opening 'files/dog/junk.wav'")
    assert ".part" not in first.decode() and str(tmp_path / "a") not in first.decode()


def write_labels(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Path:
    root = tmp_path / "ud" / "audiofolder"
    for name, _, _ in rows:
        if not (root / name).exists():
            clip(root / name)
    path = root / "labels.csv"
    path.write_text("path,label,fold\n" + "".join(f"{n},{lab},{f}\n" for n, lab, f in rows))
    return path


def test_folds_that_each_hold_one_class_are_refused(tmp_path):
    write_labels(
        tmp_path,
        [("a1.wav", "a", "1"), ("a2.wav", "a", "1"), ("b1.wav", "b", "2"), ("b2.wav", "b", "2")],
    )
    with pytest.raises(
        DatasetError,
        match=r"^fold 1: its training part \(the clips of the other "
        r"folds\) has no clip of class 'a'; every class must appear in at least "
        r"two folds$",
    ):
        build("audiofolder", tmp_path / "raw", cfg(tmp_path), env={})
    assert only_user_data_left(tmp_path)


def test_skip_that_leaves_a_fold_without_a_class_is_refused(tmp_path):
    write_labels(
        tmp_path,
        [
            ("a1.wav", "a", "1"),
            ("a2.wav", "a", "2"),
            ("a3.wav", "a", "2"),
            ("b1.wav", "b", "1"),
            ("b2.wav", "b", "2"),
        ],
    )
    (tmp_path / "ud" / "audiofolder" / "b2.wav").write_bytes(b"RIFF not audio")
    with pytest.raises(DatasetError, match=r"^fold 1: .* no clip of class 'b'"):
        build("audiofolder", tmp_path / "raw", cfg(tmp_path, on_bad_file="skip"), env={})


def test_a_fold_number_out_of_range_names_the_csv_line(tmp_path):
    rows = [(f"c{k}{lab}.wav", lab, str(k)) for k in range(1, 6) for lab in "ab"]
    write_labels(tmp_path, [*rows, ("stray.wav", "a", "99")])
    with pytest.raises(
        DatasetError,
        match=r"labels\.csv:12: fold 99 out of range: number the "
        r"folds 1\.\.K without gaps \(this CSV has 6 distinct folds: "
        r"\[1, 2, 3, 4, 5, 99\]\)",
    ):
        build("audiofolder", tmp_path / "raw", cfg(tmp_path), env={})
    write_labels(tmp_path, [*rows, ("stray.wav", "a", "")])
    with pytest.raises(DatasetError, match=r"labels\.csv:12: no fold, but other rows give one"):
        build("audiofolder", tmp_path / "raw", cfg(tmp_path), env={})
    assert only_user_data_left(tmp_path)


def test_class_folders_group_per_file_so_a_one_file_class_is_refused(tmp_path):
    root = audiofolder(tmp_path)
    clip(root / "owl" / "only.wav")
    with pytest.raises(
        DatasetError,
        match=r"^class 'owl': all its clips share one source_id, so "
        r"the grouped folds would test it with no training example",
    ):
        build("audiofolder", tmp_path / "raw", cfg(tmp_path), env={})


def test_csv_folds_are_recorded_as_the_users(tmp_path):
    rows = [(f"c{k}{lab}.wav", lab, str(k)) for k in (1, 2) for lab in "ab"]
    write_labels(tmp_path, rows)
    meta = build("audiofolder", tmp_path / "raw", cfg(tmp_path), env={})
    assert meta["folds"] == "user labels.csv, column fold" and meta["num_folds"] == 2
    assert meta["source_id"].startswith("one per file: a labels.csv without folds groups nothing")
    assert meta["content_verified"] is False
    assert meta["content_check"] == "user-supplied, not verified"
    m = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert m["fold"].tolist() == [1, 1, 2, 2]

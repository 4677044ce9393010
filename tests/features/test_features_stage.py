"""Embedding a manifest (qmoe.features.embed) and the `features` stage (stages/features.py)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
import yaml
from PIL import Image
from repo_params import config

from qmoe.contract.raw import read_manifest
from qmoe.executor import ExecutionConfig
from qmoe.features import (
    FeaturesConfig,
    build_backbone,
    emb_columns,
    embed_manifest,
    features_table,
    random_projection,
)
from qmoe.io import UserError, from_section, load_params

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = [
    "clip_id",
    "path",
    "label_id",
    "label_name",
    "fold",
    "source_id",
    "duration_s",
    "sample_rate",
    "sha256",
]
# (clip_id, frequency Hz, sample rate, seconds, channels): lengths and rates differ on purpose
CLIPS = [("a", 440.0, 22050, 1.0, 1), ("b", 1500.0, 16000, 0.7, 2), ("c", 3000.0, 22050, 1.3, 1)]


def make_raw(root: Path) -> pd.DataFrame:
    """A tiny raw dataset folder (files/*.wav + manifest.csv) as the download stage writes it."""
    (root / "files").mkdir(parents=True)
    rows = []
    for i, (clip_id, freq, sr, seconds, channels) in enumerate(CLIPS):
        t = np.arange(int(sr * seconds)) / sr
        wav = 0.5 * np.sin(2 * math.pi * freq * t)[:, None].repeat(channels, axis=1)
        path = f"files/{clip_id}.wav"
        soundfile.write(root / path, wav.astype(np.float32), sr, subtype="FLOAT")
        label = i % 2
        rows.append([clip_id, path, label, f"class{label}", i + 1, f"s{i}", seconds, sr, "0" * 64])
    manifest = pd.DataFrame(rows, columns=COLUMNS)
    manifest.to_csv(root / "manifest.csv", index=False)
    return manifest


EXECUTION = config(ExecutionConfig, "execution")


@pytest.fixture(scope="module")
def lite0():
    return build_backbone(config(FeaturesConfig, "features"))


def test_params_yaml_features_section_builds():
    cfg = from_section(FeaturesConfig, load_params(ROOT / "params.yaml")["features"], "features")
    assert cfg.mel.n_fft == 2048 and cfg.mel.hop_length == 32 and cfg.mel.n_mels == 128


def test_features_table_schema_and_determinism(tmp_path, lite0):
    manifest = make_raw(tmp_path)
    cfg = config(FeaturesConfig, "features")
    first = embed_manifest(manifest, tmp_path, cfg, EXECUTION, lite0)
    second = embed_manifest(manifest, tmp_path, cfg, EXECUTION, lite0)
    assert np.array_equal(first.matrix, second.matrix)  # bitwise
    two_workers = embed_manifest(
        manifest, tmp_path, replace(cfg, batch_size=1), ExecutionConfig("local", 2), lite0
    )  # 3 units on 2 worker processes
    assert np.array_equal(first.matrix, two_workers.matrix)  # independent of the worker count
    table = features_table(manifest, first.matrix)
    assert list(table.columns) == COLUMNS + [f"emb_{i:04d}" for i in range(1280)]
    assert (table[emb_columns(1280)].dtypes == np.float32).all()
    assert table["clip_id"].tolist() == ["a", "b", "c"]  # manifest row order
    assert np.isfinite(first.matrix).all()
    assert not np.array_equal(first.matrix[0], first.matrix[2])  # different clips differ
    assert set(first.seconds) == {"load", "mel", "render", "backbone", "total"}


def test_random_projection_head_is_the_seeded_linear_map_of_the_pooled_features(tmp_path, lite0):
    manifest = make_raw(tmp_path)
    pooled = embed_manifest(
        manifest, tmp_path, config(FeaturesConfig, "features"), EXECUTION, lite0
    ).matrix
    cfg = config(FeaturesConfig, "features", head="random_projection", projection_seed=3)
    projected = embed_manifest(manifest, tmp_path, cfg, EXECUTION, lite0).matrix
    with torch.inference_mode():
        expected = random_projection(1280, 3)(torch.from_numpy(pooled)).numpy()
    np.testing.assert_allclose(projected, expected, rtol=1e-5, atol=1e-5)


def test_logmel_stats_and_image_rows(tmp_path):
    manifest = make_raw(tmp_path)
    emb = embed_manifest(
        manifest, tmp_path, config(FeaturesConfig, "features", backbone="logmel_stats"), EXECUTION
    )
    assert emb.matrix.shape == (3, 128 * 9)
    blocks = emb.matrix.reshape(3, 9, 128)  # mean | std | min | max | 5 quantiles, per band
    assert (blocks[:, 3].max(axis=1) == 0.0).all()  # each clip's loudest band peaks at 0 dB
    levels = np.delete(blocks, 1, axis=1)  # all but std are dB levels
    assert levels.max() == 0.0 and levels.min() >= -80.0
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "files" / "img.png")
    images = manifest.iloc[:1].assign(path="files/img.png", sample_rate=0)
    with pytest.raises(UserError, match=r"clips 1-.*img\.png: backbone logmel_stats needs audio"):
        embed_manifest(
            images, tmp_path, config(FeaturesConfig, "features", backbone="logmel_stats"), EXECUTION
        )


def run_stage(raw: Path, out: Path, params: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    script = str(ROOT / "stages" / "features.py")
    cmd = [
        sys.executable,
        script,
        "--raw",
        str(raw),
        "--out",
        str(out),
        "--timings",
        str(out.parent.parent / "timings" / f"{out.name}.json"),
    ]
    # in the folder of its params.yaml, as DVC runs it
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=params.parent, timeout=300
    )


def test_stage_writes_the_feature_table(tmp_path):
    manifest = make_raw(tmp_path / "raw" / "tiny")
    out = tmp_path / "features" / "tiny"
    proc = run_stage(tmp_path / "raw" / "tiny", out, ROOT / "params.yaml")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # no temporary leftovers
    table = pd.read_parquet(out / "features.parquet")
    assert table.shape == (3, len(COLUMNS) + 1280)
    assert table["clip_id"].tolist() == manifest["clip_id"].tolist()
    info = json.loads((out / "features.json").read_text())
    assert (info["dataset"], info["backbone"], info["dim"], info["n_clips"]) == (
        "tiny",
        "efficientnet_lite0",
        1280,
        3,
    )
    assert info["mel"]["hop_length"] == 32 and "threads" not in info  # output: not the workers
    # the mel settings as applied: f_max capped at each sample rate's Nyquist frequency
    assert info["mel"]["f_max"] == {"16000": 8000.0, "22050": 11025.0}
    assert info["mel"]["f_max_requested"] == 20000.0 and info["max_seconds"] == 30.0
    assert "capped at 8000 Hz, 11025 Hz" in proc.stderr
    assert info["versions"]["torch"] == torch.__version__.split("+")[0]
    # timings live outside the DVC-hashed folder: a rerun with equal embeddings changes no hash
    assert "seconds" not in info and "thread_seconds" not in info
    timings = json.loads((tmp_path / "timings" / "tiny.json").read_text())
    assert set(timings["thread_seconds"]) == {"load", "mel", "render", "backbone"}
    assert timings["seconds"] > 0


def load_stage_module():
    spec = importlib.util.spec_from_file_location("features_stage", ROOT / "stages" / "features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifest_without_a_needed_column_is_rejected_by_name(tmp_path):
    make_raw(tmp_path)
    pd.read_csv(tmp_path / "manifest.csv").drop(columns="sample_rate").to_csv(
        tmp_path / "manifest.csv", index=False
    )
    with pytest.raises(ValueError, match=r"manifest\.csv: missing column\(s\) \['sample_rate'\]"):
        read_manifest(tmp_path)


def test_stage_fails_cleanly_on_undecodable_audio(tmp_path):
    raw = tmp_path / "raw" / "bad"
    make_raw(raw)
    (raw / "files" / "b.wav").write_bytes(b"RIFF....garbage")
    params = load_params(ROOT / "params.yaml")
    params["features"]["backbone"] = "logmel_stats"  # no model to load: fail fast
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "features" / "bad"
    proc = run_stage(raw, out, tmp_path / "params.yaml")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    # the failed unit (a batch of clips) is named, then the clip and why
    assert last.startswith("error: unit clips 1-3 of 3 (")
    assert f"failed: InputError: {raw / 'files' / 'b.wav'}: cannot decode audio" in last
    assert not (tmp_path / "features").exists() or not any((tmp_path / "features").iterdir())

"""The front end's per-clip timing (qmoe.bench.frontend), with a tiny backbone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile
from repo_params import config
from torch import nn

from qmoe.bench import frontend
from qmoe.features.backbones import Backbone
from qmoe.features.embed import FeaturesConfig
from qmoe.features.melspec import MelConfig
from qmoe.io import InputError


def _raw(tmp_path, n: int):
    rng = np.random.default_rng(0)
    (tmp_path / "files").mkdir()
    rows = []
    for i in range(n):
        path = f"files/c{i}.wav"
        soundfile.write(tmp_path / path, 0.1 * rng.standard_normal(4000).astype("float32"), 8000)
        rows.append({"clip_id": f"c{i}", "path": path, "sample_rate": 8000})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


def _tiny(cfg: FeaturesConfig) -> Backbone:
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4)).eval()
    return Backbone("tiny", 4, 32, net, "none")


def test_frontend_times_every_phase_of_every_clip_and_repeat(tmp_path, monkeypatch):
    monkeypatch.setenv("QMOE_BENCH_LOCK", str(tmp_path / "lock"))
    raw = _raw(tmp_path, 4)
    mel = config(MelConfig, "features.mel", n_fft=256, hop_length=64, n_mels=16, f_max=4000.0)
    cfg = config(FeaturesConfig, "features", mel=mel)
    out = frontend.frontend_latency(
        raw, cfg, n_clips=3, repeats=2, cpu_index=-1, threads=1, backbone=_tiny
    )
    assert list(out.columns) == frontend.COLUMNS
    assert out["clip_id"].tolist() == ["c0", "c1", "c2"] * 2
    assert out["repeat"].tolist() == [0, 0, 0, 1, 1, 1]
    phases = out[[f"{p}_ms" for p in frontend.PHASES]]
    assert (phases > 0).all().all()
    # the phases are timed back to back: they add up to the clip's total
    assert phases.sum(axis=1).to_numpy() == pytest.approx(out["total_ms"].to_numpy(), rel=1e-9)
    assert set(frontend.summary(out)) == {*(f"{p}_ms" for p in frontend.PHASES), "total_ms"}


def test_frontend_without_a_manifest_names_the_file(tmp_path):
    with pytest.raises(InputError, match=r"manifest.csv: not found \(run the download stage\)"):
        frontend.choose_clips(tmp_path, 3)

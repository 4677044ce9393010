"""The `download` and `features` stages on a few real ESC-10 clips (found through QMOE_MIRROR)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _mirror_with_esc10() -> Path | None:
    for entry in os.environ.get("QMOE_MIRROR", "").split(os.pathsep):
        if entry and (Path(entry) / "esc10").is_dir():
            return Path(entry).resolve()
    return None


MIRROR = _mirror_with_esc10()
pytestmark = pytest.mark.skipif(MIRROR is None, reason="no esc10 folder under QMOE_MIRROR")


def _stage(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QMOE_MIRROR": str(MIRROR)}
    if not (cwd / "params.yaml").exists():  # the stage reads its working folder's params.yaml
        shutil.copy(ROOT / "params.yaml", cwd / "params.yaml")
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def esc10_subset(tmp_path_factory) -> Path:
    """The real download stage, then a raw folder holding 2 clips of each of 4 classes."""
    tmp = tmp_path_factory.mktemp("esc10")
    r = _stage("download.py", "--dataset", "esc10", "--out", str(tmp / "raw"), cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = pd.read_csv(tmp / "raw" / "manifest.csv")
    assert len(manifest) == 400 and manifest["label_id"].nunique() == 10
    subset = manifest[manifest["label_id"] < 4].groupby("label_id").head(2).copy()
    subset["path"] = [str((tmp / "raw" / p).resolve()) for p in subset["path"]]
    (tmp / "small").mkdir()
    subset.to_csv(tmp / "small" / "manifest.csv", index=False)
    return tmp


def test_features_stage_embeds_real_clips_deterministically(esc10_subset):
    outs = []
    for name in ("a", "b"):
        out = esc10_subset / f"features_{name}"
        r = _stage(
            "features.py",
            "--raw",
            str(esc10_subset / "small"),
            "--out",
            str(out),
            "--timings",
            str(esc10_subset / f"timings_{name}.json"),
            cwd=esc10_subset,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(pd.read_parquet(out / "features.parquet"))
    emb = outs[0][[c for c in outs[0].columns if c.startswith("emb_")]].to_numpy()
    assert emb.shape == (8, 1280) and np.isfinite(emb).all()
    assert emb.std(axis=0).mean() > 0  # clips differ
    pd.testing.assert_frame_equal(outs[0], outs[1])  # bitwise identical rerun
    assert (
        outs[0]["clip_id"].tolist()
        == pd.read_csv(esc10_subset / "small" / "manifest.csv")["clip_id"].tolist()
    )

"""stages/download.py as DVC runs it: exit codes, `error:` lines, outputs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml
from repo_params import section

ROOT = Path(__file__).resolve().parents[2]


def run_stage(
    tmp_path: Path, *args: str, params: dict | None = None
) -> subprocess.CompletedProcess:
    """The stage in the folder of its params.yaml: `params` written to tmp_path, else the repo's."""
    env = {**os.environ, "QMOE_MIRROR": str(tmp_path / "empty-mirror"), "QMOE_LOG_LEVEL": "WARNING"}
    cwd = ROOT
    if params is not None:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        cwd = tmp_path
    cmd = [sys.executable, str(ROOT / "stages" / "download.py"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def download_params(**changes) -> dict:
    """A params file whose `download` section is the repository's with `changes`."""
    return {"download": {**section("download"), **changes}}


def test_unknown_dataset_exits_1_with_error_line(tmp_path):
    out = tmp_path / "raw" / "nope"
    res = run_stage(tmp_path, "--dataset", "nope", "--out", str(out))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("error: unknown dataset 'nope'; valid: [")
    assert "'esc50'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_wrong_type_param_exits_1_naming_the_field(tmp_path):
    params = download_params(synthetic={**section("download.synthetic"), "clips_per_class": "8"})
    res = run_stage(tmp_path, "--dataset", "synthetic", "--out", str(tmp_path / "s"), params=params)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        "error: download.synthetic.clips_per_class: expected an integer, got str '8'"
    )
    assert not (tmp_path / "s").exists()


def test_synthetic_stage_writes_the_contract_outputs(tmp_path):
    small = {"classes": 2, "clips_per_class": 5, "sample_rate": 8000, "seconds": 0.2}
    params = download_params(synthetic={**section("download.synthetic"), **small})
    res = run_stage(tmp_path, "--dataset", "synthetic", "--out", str(tmp_path / "s"), params=params)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "dataset.json",
        "files",
        "manifest.csv",
    ]
    meta = json.loads((tmp_path / "s" / "dataset.json").read_text())
    assert meta["file_count"] == 10 and meta["num_classes"] == 2 and meta["rejects"] == []


# --- user data and bad input, as DVC runs the stage (issue 13) -----------------------------------

VENV_BIN = Path(sys.executable).parent


def clip(path: Path, seconds: float = 0.2, sr: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.3 * np.random.default_rng(len(path.name)).standard_normal(int(seconds * sr))
    sf.write(path, x.clip(-1, 1).astype(np.float32), sr, subtype="PCM_16")
    return path


def user_params(tmp_path: Path, **download) -> dict:
    return download_params(user_data=str(tmp_path / "ud"), **download)


def audiofolder(tmp_path: Path) -> Path:
    root = tmp_path / "ud" / "audiofolder"
    for c in ("dog", "rain"):
        for i in range(3):
            clip(root / c / f"{c}{i}.wav")
    return root


def assert_failed_cleanly(res: subprocess.CompletedProcess, tmp_path: Path, line: str) -> None:
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines()[-1] == line
    assert "Traceback" not in res.stderr
    assert not any((tmp_path / "raw").iterdir())  # no output, no temporary copy


def test_truncated_user_clip_exits_1_naming_it(tmp_path):
    bad = clip(audiofolder(tmp_path) / "dog" / "bad.wav", seconds=5.0)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    res = run_stage(
        tmp_path,
        "--dataset",
        "audiofolder",
        "--out",
        str(tmp_path / "raw" / "a"),
        params=user_params(tmp_path),
    )
    assert_failed_cleanly(
        res,
        tmp_path,
        "error: files/dog/bad.wav: truncated: the WAV header "
        "declares 40000 frames (5.000 s), the file holds 19989 (set "
        "download.on_bad_file: skip to drop such files)",
    )


def test_skip_emptying_a_class_exits_1_naming_it(tmp_path):
    root = audiofolder(tmp_path)
    (root / "owl").mkdir()
    (root / "owl" / "o.wav").write_bytes(b"RIFF junk")
    res = run_stage(
        tmp_path,
        "--dataset",
        "audiofolder",
        "--out",
        str(tmp_path / "raw" / "a"),
        params=user_params(tmp_path, on_bad_file="skip"),
    )
    assert res.returncode == 1
    assert "error: class 'owl': all 1 of its clips are bad files" in res.stderr
    assert not any((tmp_path / "raw").iterdir())


def test_stray_fold_in_a_csv_exits_1_naming_the_line(tmp_path):
    root = tmp_path / "ud" / "audiofolder"
    lines = ["path,label,fold"]
    for k in (1, 2):
        for lab in "ab":
            clip(root / f"{lab}{k}.wav")
            lines.append(f"{lab}{k}.wav,{lab},{k}")
    clip(root / "x.wav")
    (root / "labels.csv").write_text("\n".join([*lines, "x.wav,a,99"]) + "\n")
    res = run_stage(
        tmp_path,
        "--dataset",
        "audiofolder",
        "--out",
        str(tmp_path / "raw" / "a"),
        params=user_params(tmp_path),
    )
    assert_failed_cleanly(
        res,
        tmp_path,
        f"error: {root / 'labels.csv'}:6: fold 99 out of range: "
        "number the folds 1..K without gaps (this CSV has 3 distinct folds: "
        "[1, 2, 99])",
    )


def test_stale_temporary_of_a_killed_run_is_swept(tmp_path):
    audiofolder(tmp_path)
    stale = tmp_path / "raw" / ".audiofolder.2147483646.abcd1234.part"  # no such process
    (stale / "files").mkdir(parents=True)
    (stale / "files" / "big.bin").write_bytes(bytes(1 << 16))
    res = run_stage(
        tmp_path,
        "--dataset",
        "audiofolder",
        "--out",
        str(tmp_path / "raw" / "audiofolder"),
        params=user_params(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["audiofolder"]


def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "QMOE_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [str(VENV_BIN / "dvc"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_label_edit_in_user_data_reruns_download_with_dvc(tmp_path):
    repo = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, repo / f)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["study"]["datasets"] = ["audiofolder"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    data = repo / "user_data" / "audiofolder"
    rows = [f"{lab}{k}{x}.wav,{lab},{k}" for k in (1, 2) for lab in ("dog", "cat") for x in "ab"]
    for row in rows:
        clip(data / row.split(",")[0])
    (data / "labels.csv").write_text("path,label,fold\n" + "\n".join(rows) + "\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=repo, check=True)

    stage = "download@audiofolder"
    first = _dvc(["repro", stage], repo)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    labels = pd.read_csv(repo / "data/raw/audiofolder/manifest.csv").set_index("clip_id")
    assert labels.loc["dog1a", "label_name"] == "dog"
    assert "up to date" in _dvc(["status", stage], repo).stdout

    (data / "labels.csv").write_text(
        (data / "labels.csv").read_text().replace("dog1a.wav,dog,1", "dog1a.wav,cat,1")
    )  # one label edited
    status = _dvc(["status", stage], repo).stdout
    assert "changed deps" in status and "user_data" in status, status
    second = _dvc(["repro", stage], repo)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"Running stage '{stage}'" in second.stdout
    labels = pd.read_csv(repo / "data/raw/audiofolder/manifest.csv").set_index("clip_id")
    assert labels.loc["dog1a", "label_name"] == "cat"
    assert "up to date" in _dvc(["status", stage], repo).stdout

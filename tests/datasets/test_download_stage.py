"""stages/download.py as DVC runs it: exit codes, `error:` lines, outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def run_stage(
    tmp_path: Path, *args: str, params: dict | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "QMOE_MIRROR": str(tmp_path / "empty-mirror"), "QMOE_LOG_LEVEL": "WARNING"}
    if params is not None:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        env["QMOE_PARAMS"] = str(tmp_path / "params.yaml")
    else:
        env["QMOE_PARAMS"] = str(ROOT / "params.yaml")
    cmd = [sys.executable, "stages/download.py", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_unknown_dataset_exits_1_with_error_line(tmp_path):
    out = tmp_path / "raw" / "nope"
    res = run_stage(tmp_path, "--dataset", "nope", "--out", str(out))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("error: unknown dataset 'nope'; valid: [")
    assert "'esc50'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_wrong_type_param_exits_1_naming_the_field(tmp_path):
    params = {"download": {"on_bad_file": "fail", "synthetic": {"clips_per_class": "8"}}}
    res = run_stage(tmp_path, "--dataset", "synthetic", "--out", str(tmp_path / "s"), params=params)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        "error: download.synthetic.clips_per_class: expected an integer, got str '8'"
    )
    assert not (tmp_path / "s").exists()


def test_synthetic_stage_writes_the_contract_outputs(tmp_path):
    params = {
        "download": {
            "synthetic": {"classes": 2, "clips_per_class": 5, "sample_rate": 8000, "seconds": 0.2}
        }
    }
    res = run_stage(tmp_path, "--dataset", "synthetic", "--out", str(tmp_path / "s"), params=params)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "dataset.json",
        "files",
        "manifest.csv",
    ]
    meta = json.loads((tmp_path / "s" / "dataset.json").read_text())
    assert meta["file_count"] == 10 and meta["num_classes"] == 2 and meta["rejects"] == []

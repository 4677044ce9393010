"""params `train` is validated at load time, before any work (qmoe.training.fit.TrainConfig)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qmoe.io import ConfigError, from_section, load_params
from qmoe.training.fit import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
PARAMS = load_params(ROOT / "params.yaml")


@pytest.mark.parametrize(
    "seeds, message",
    [
        ([0, 0], r"^train\.seeds: \[0, 0\]: seed\(s\) \[0\] repeated$"),
        ([0, 1, 2, 1], r"^train\.seeds: \[0, 1, 2, 1\]: seed\(s\) \[1\] repeated$"),
        ([-1], r"^train\.seeds: \[-1\]: negative seed\(s\) \[-1\]$"),
        ([], r"^train\.seeds: needs at least one seed$"),
    ],
)
def test_seeds_must_be_unique_and_non_negative(seeds, message):
    with pytest.raises(ConfigError, match=message):
        from_section(TrainConfig, {**PARAMS["train"], "seeds": seeds}, "train")
    assert from_section(TrainConfig, {**PARAMS["train"], "seeds": [2, 0]}, "train").seeds == (2, 0)


def test_the_train_stage_refuses_repeated_seeds_before_any_work(tmp_path):
    params = {**PARAMS, "train": {**PARAMS["train"], "seeds": [0, 0]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "runs" / "corrected"
    cmd = [
        sys.executable,
        str(ROOT / "stages" / "train.py"),
        "--dataset",
        "toy",
        "--protocol",
        "corrected",
        "--features",
        str(tmp_path / "no-features"),
        "--lock",
        str(ROOT / "requirements.lock"),
        "--out",
        str(out),
        "--cost",
        str(tmp_path / "runs" / "cost"),
    ]
    r = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )  # in the folder of its params.yaml, as DVC runs it
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "error: train.seeds: [0, 0]: seed(s) [0] repeated"
    assert not (tmp_path / "runs").exists()

"""qmoe.cli.run_stage: user errors as one line, bugs with their traceback, SIGTERM like SIGINT."""

import os
import signal
import subprocess
import sys

import pytest

STAGE = """
import sys, time
from pathlib import Path
from qmoe.cli import run_stage
from qmoe.io import ConfigError, InputError, atomic_dir

def main():
    kind = sys.argv[1]
    if kind == "config":
        raise ConfigError("train.seeds: [0, 0]: seed(s) [0] repeated")
    if kind == "input":
        raise InputError("data/raw/x/manifest.csv: no clips")
    if kind == "missing":
        open("/nonexistent/input.csv")
    if kind == "bug":
        {}["variant"]
    if kind == "slow":
        with atomic_dir(Path(sys.argv[2])) as tmp:
            (tmp / "half.bin").write_bytes(bytes(1 << 20))
            print("writing", flush=True)
            time.sleep(60)

run_stage(main)
"""


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", STAGE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "QMOE_LOG_LEVEL": "WARNING"},
    )


@pytest.mark.parametrize(
    "kind, line",
    [
        ("config", "error: train.seeds: [0, 0]: seed(s) [0] repeated"),
        ("input", "error: data/raw/x/manifest.csv: no clips"),
        ("missing", "error: [Errno 2] No such file or directory: '/nonexistent/input.csv'"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(kind, line):
    r = run(kind)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [line]


def test_a_bug_keeps_its_traceback():
    r = run("bug")
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "KeyError: 'variant'"


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_unwinds_and_leaves_no_partial_output(tmp_path, sig, code):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE, "slow", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert err.strip().splitlines()[-1] == (
        f"error: interrupted by {signal.Signals(sig).name}; partial output removed"
    )
    assert list(tmp_path.iterdir()) == []


def test_params_come_from_the_working_folder_only_whatever_the_environment(tmp_path, monkeypatch):
    """DVC records ./params.yaml: no variable may point a stage at another file."""
    from qmoe.cli import read_params

    (tmp_path / "params.yaml").write_text("train: {epochs: 3}\n")
    (tmp_path / "other.yaml").write_text("train: {epochs: 999}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QMOE_PARAMS", str(tmp_path / "other.yaml"))  # the retired test hook
    assert read_params() == {"train": {"epochs": 3}}


def test_a_section_no_stage_reads_is_refused_naming_it(tmp_path, monkeypatch):
    from qmoe.cli import SECTIONS, read_params
    from qmoe.io import ConfigError

    (tmp_path / "params.yaml").write_text("train: {epochs: 3}\ntrian: {epochs: 5}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        read_params()
    assert str(e.value) == (
        f"params.yaml: unknown section(s) ['trian'], read by no stage; valid: {list(SECTIONS)}"
    )


def test_a_run_outside_dvc_is_never_forced(monkeypatch):
    """forced_by_dvc asks DVC only when DVC runs the stage (DVC_STAGE and DVC_ROOT set); the
    forced case itself is checked through `dvc repro -f` in tests/test_e2e.py."""
    from qmoe.cli import forced_by_dvc

    monkeypatch.delenv("DVC_STAGE", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert forced_by_dvc() is False

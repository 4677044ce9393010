"""The executor (qmoe.executor) and the train grid on it (qmoe.training.units, grid.train_protocol):
every output byte is the same with 1 worker, 2 workers and a local 2-CPU Ray; a failed unit fails
the stage naming the unit and writes nothing; `execution` params are validated."""

from __future__ import annotations

import importlib.util
import json
import logging
import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic_features import feature_folder  # noqa: E402  (tests/, on sys.path)

from qmoe import executor
from qmoe.contract.runs import TrainOutputs
from qmoe.contract.study import runs_of
from qmoe.executor import ExecutionConfig, UnitFailed, run_units
from qmoe.io import ConfigError, from_section, load_params
from qmoe.models import ModelConfig
from qmoe.training.fit import TrainConfig
from qmoe.training.grid import train_protocol
from qmoe.training.reuse import Inputs
from qmoe.training.units import apportion_energy
from qmoe.variants import resolve

ROOT = Path(__file__).resolve().parents[2]
PARAMS = load_params(ROOT / "params.yaml")
# Measured, not computed: they vary between runs by nature (wall time and the energy CodeCarbon
# derives from it on this machine), so they live in the cost file; the run folder must match byte
# for byte (DVC hashes it: a rerun that trains the same models changes nothing downstream).
MEASURED = {"train_seconds", "train_energy_kwh", "train_emissions_kg"}
# A tiny grid: 3 official folds x 2 seeds, few epochs, narrow MLPs.
TRAIN = {
    **PARAMS["train"],
    "seeds": [0, 1],
    "epochs": 6,
    "patience": 3,
    "moe": {**PARAMS["train"]["moe"], "patience": 3},
}
CFG = from_section(TrainConfig, TRAIN, "train")
MODEL = ModelConfig(hidden_sizes=(16, 8), dropout=0.1)


def train(
    features: Path, out: Path, variants: list[str], execution: ExecutionConfig, cfg=CFG
) -> TrainOutputs:
    """Train `variants` (single models and MoEs) into out/runs and out/cost, as the stage does."""
    outputs = TrainOutputs(out / "runs", out / "cost")
    train_protocol(
        runs_of("synthetic", "corrected", variants),
        {v: resolve(v, PARAMS["variants"], PARAMS["study"]["experts"]) for v in variants},
        MODEL,
        cfg,
        Inputs(features, ROOT / "stages" / "train.py", ROOT / "requirements.lock"),
        outputs,
        "IRL",
        execution,
    )
    return outputs


def folder_bytes(outputs: TrainOutputs, variant: str) -> dict[str, bytes]:
    """Every file of a run folder, as bytes; the cost file beside it holds the measurements."""
    folder = outputs.folder(variant)
    cost = json.loads(outputs.cost(variant).read_text())
    for run in cost["runs"]:
        assert set(run) == {"fold", "seed"} | MEASURED and run["train_energy_kwh"] > 0
    for run in json.loads((folder / "metrics.json").read_text())["runs"]:
        assert not MEASURED & set(run)
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_outputs_identical_with_1_and_2_workers_and_ray(tmp_path, monkeypatch):
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("CI"):  # CI installs the extra (.ci/run): this test must run there
            pytest.fail("Ray is not installed in CI: .ci/run must pip install -e '.[ray]'")
        pytest.skip("Ray is the optional extra: pip install -e '.[ray]'")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local Ray started for the run
    features = feature_folder(tmp_path)
    backends = {
        "1 worker": ExecutionConfig("local", 1),
        "2 workers": ExecutionConfig("local", 2),
        "ray 2 CPUs": ExecutionConfig("ray", 2),
    }
    trained = {
        label: train(features, tmp_path / label, ["w4a8", "moe_curiosity_route"], execution)
        for label, execution in backends.items()
    }
    for variant in ("w4a8", "moe_curiosity_route"):
        outputs = {label: folder_bytes(out, variant) for label, out in trained.items()}
        reference = outputs["1 worker"]
        expected = {f"fold{k}_seed{s}.pt" for k in (1, 2, 3) for s in (0, 1)}
        assert expected <= set(reference)
        assert {"history.csv", "predictions.csv", "metrics.json"} <= set(reference)
        if variant == "moe_curiosity_route":
            assert {f"curiosity/fold{k}_seed{s}.json" for k in (1, 2, 3) for s in (0, 1)} <= set(
                reference
            )
        runs = json.loads(reference["metrics.json"])["runs"]
        assert [(r["fold"], r["seed"]) for r in runs] == [
            (1, 0),
            (1, 1),
            (2, 0),
            (2, 1),
            (3, 0),
            (3, 1),
        ]
        cost = json.loads(trained["1 worker"].cost(variant).read_text())
        assert [(r["fold"], r["seed"]) for r in cost["runs"]] == [
            (r["fold"], r["seed"]) for r in runs
        ]
        assert "apportioned to each model by its CPU time" in cost["energy_method"]
        for label in ("2 workers", "ray 2 CPUs"):
            assert outputs[label].keys() == reference.keys(), label
            for name, content in reference.items():
                assert outputs[label][name] == content, f"{variant} {label}: {name} differs"


def test_a_failed_unit_names_the_unit_and_nothing_is_written(tmp_path):
    # clip c20 (fold 2) is NaN: every model that trains on it (folds 1 and 3) fails.
    features = feature_folder(tmp_path, nan_clip=20)
    with pytest.raises(
        UnitFailed,
        match=r"unit synthetic/corrected/(fp32|w4a8) fold [13] seed [01] "
        r"failed: FloatingPointError: .*loss became nan",
    ):
        train(features, tmp_path / "out", ["fp32", "w4a8"], ExecutionConfig("local", 2))
    # no run folder, no cost file, no temporary copy: of the failed variant or of the other one
    for root in ("runs", "cost"):
        folder = tmp_path / "out" / root
        assert not folder.exists() or list(folder.iterdir()) == []


def test_a_failed_unit_fails_the_stage_with_exit_1_naming_it(tmp_path):
    features = feature_folder(tmp_path, nan_clip=20)
    params = {
        **PARAMS,
        "study": {**PARAMS["study"], "variants": ["fp32"], "moe_variants": []},
        "train": {**PARAMS["train"], "seeds": [0], "epochs": 3},
        "execution": {"backend": "local", "workers": 2},
    }
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    out = tmp_path / "runs"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages" / "train.py"),
            "--dataset",
            "synthetic",
            "--protocol",
            "corrected",
            "--features",
            str(features),
            "--lock",
            str(ROOT / "requirements.lock"),
            "--out",
            str(out),
            "--cost",
            str(tmp_path / "cost"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # the stage reads the params.yaml of its working folder, as under DVC
    )
    assert proc.returncode == 1, proc.stderr
    assert "UnitFailed: unit synthetic/corrected/fp32 fold" in proc.stderr
    assert "loss became nan" in proc.stderr
    for folder in (out, tmp_path / "cost"):
        assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.parametrize("execution", [ExecutionConfig("local", 1), ExecutionConfig("local", 2)])
def test_results_come_back_in_unit_order_and_errors_name_the_unit(execution):
    assert run_units(operator.truediv, 12.0, [1, 2, 3, 4, 6], execution) == [12, 6, 4, 3, 2]
    with pytest.raises(UnitFailed, match=r"^unit u0 failed: ZeroDivisionError: float division"):
        run_units(operator.truediv, 1.0, [1, 0, 3], execution, name=lambda u: f"u{u}")


WARM = """
import sys
from qmoe.executor import ExecutionConfig, run_units, warm_pool
def preloaded(shared, unit):
    return "xml.dom.minidom" in sys.modules
if __name__ == "__main__":
    cores = int(sys.argv[1])
    warm_pool(ExecutionConfig("local", cores), ["xml.dom.minidom"])
    print(run_units(preloaded, None, [1, 2, 3], ExecutionConfig("local", cores)))
"""


@pytest.mark.parametrize(("workers", "seen"), [(2, True), (1, False)])
def test_warm_pool_starts_the_server_with_its_modules_imported(tmp_path, workers, seen):
    """A warmed pool's workers start with the modules imported (forked from a server that imported
    them while the parent went on); with one worker there is no pool to warm (units run here)."""
    (tmp_path / "warm.py").write_text(WARM)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "warm.py"), str(workers)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str([seen] * 3)


SLEEPER = """
import time
def nap(shared, seconds):
    time.sleep(seconds)
    return seconds
"""
MAIN = """
import sys
from qmoe.cli import run_stage
from qmoe.executor import ExecutionConfig, run_units
import sleeper
def main():
    print("started", flush=True)
    run_units(sleeper.nap, None, [60, 60, 60], ExecutionConfig("local", 2))
if __name__ == "__main__":   # pool processes import the main module (forkserver)
    run_stage(main)
"""


def test_ctrl_c_stops_the_workers(tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / "main.py").write_text(MAIN)
    proc = subprocess.Popen(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": _path(tmp_path)},
    )
    assert proc.stdout.readline().strip() == "started"
    time.sleep(3)  # the pool's workers are asleep in their units
    workers = children(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)  # long before the 60 s units would end
    assert proc.returncode == 130, stderr
    assert "interrupted by SIGINT" in stderr
    time.sleep(0.5)
    alive = [
        pid
        for pid in workers
        if Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    ]
    assert alive == []


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP, signal.SIGTERM])
def test_the_pool_ends_with_its_stage_however_the_stage_is_killed(tmp_path, signum):
    """kill -9 (or a signal the stage does not handle) leaves no forkserver or worker behind: a
    worker exits when the stage ends (qmoe.executor._die_with), then the forkserver (EOF)."""
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / "main.py").write_text(MAIN)
    proc = subprocess.Popen(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": _path(tmp_path)},
        # a stage started from a shell gets the default action for `signum`: under nohup (SIGHUP
        # ignored, inherited across exec) the test would otherwise send a signal nobody gets
        preexec_fn=None
        if signum == signal.SIGKILL
        else lambda: signal.signal(signum, signal.SIG_DFL),
    )
    assert proc.stdout.readline().strip() == "started"
    pool = []
    for _ in range(300):  # the forkserver, the resource tracker and 2 workers, once started
        pool = children(proc.pid)
        if len(pool) >= 4:
            break
        time.sleep(0.1)
    assert len(pool) >= 4, pool
    proc.send_signal(signum)
    proc.wait(timeout=30)
    for _ in range(100):  # a few seconds at most (the units would sleep 60 s)
        if not _running(pool):
            break
        time.sleep(0.1)
    left = _running(pool)
    for pid in left:  # never leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert left == []


def _running(pids: list[int]) -> list[int]:
    """Those of `pids` still running (a zombie waiting for its reaper has ended)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def test_workers_beyond_the_cores_are_capped_with_a_log_line(monkeypatch, caplog):
    monkeypatch.setattr(executor, "available_cores", lambda: 2)
    caplog.set_level(logging.INFO, logger="qmoe.executor")
    assert run_units(operator.truediv, 12.0, [1, 2, 3, 4, 6], ExecutionConfig("local", 1000)) == [
        12,
        6,
        4,
        3,
        2,
    ]
    lines = [r.getMessage() for r in caplog.records]
    assert "execution.workers: 1000 > the 2 cores available; using 2" in lines
    assert "5 units on a local pool of 2 single-threaded workers" in lines
    assert executor.local_workers(None) == executor.local_workers(2) == 2
    assert executor.local_workers(1) == 1


def _path(folder: Path) -> str:
    """PYTHONPATH with `folder` first (the caller's own PYTHONPATH kept: it may name the qmoe
    under test)."""
    return os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)


def children(pid: int) -> list[int]:
    """Every descendant process of `pid` (the forkserver and the pool's workers)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    pairs = [tuple(map(int, line.split())) for line in out.splitlines()]
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in pairs if pp == parent]
        found += kids
        frontier += kids
    return found


def test_energy_is_apportioned_by_cpu_time_and_sums_to_the_reading():
    shares = apportion_energy(3.0e-4, 6.0e-5, [1.0, 2.0, 3.0])
    assert [s.energy_kwh for s in shares] == pytest.approx([0.5e-4, 1.0e-4, 1.5e-4], rel=1e-12)
    assert sum(s.emissions_kg for s in shares) == pytest.approx(6.0e-5, rel=1e-12)
    with pytest.raises(ValueError, match="CPU seconds sum to 0"):
        apportion_energy(1.0, 1.0, [0.0, 0.0])


def test_execution_params_are_validated():
    assert from_section(ExecutionConfig, PARAMS["execution"], "execution") == ExecutionConfig(
        "local", None
    )
    assert from_section(ExecutionConfig, {"backend": "ray", "workers": 4}).workers == 4
    with pytest.raises(ConfigError, match=r"execution.backend: 'dask' is not one of \['local', "):
        from_section(ExecutionConfig, {"backend": "dask"}, "execution")
    with pytest.raises(ConfigError, match=r"execution.workers: must be >= 1 or null .* got 0"):
        from_section(ExecutionConfig, {"backend": "local", "workers": 0}, "execution")
    with pytest.raises(ConfigError, match=r"execution.workers: '4' matches none of int \| None"):
        from_section(ExecutionConfig, {"backend": "local", "workers": "4"}, "execution")
    with pytest.raises(ConfigError, match=r"execution: unknown key\(s\) \['threads'\]"):
        from_section(ExecutionConfig, {"threads": 2}, "execution")

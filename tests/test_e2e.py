"""End to end: `dvc repro` of the whole pipeline on the synthetic dataset, in a temporary copy."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SMOKE = {
    "study": {
        "datasets": ["synthetic"],
        "protocols": ["corrected", "faithful"],
        "variants": ["fp32", "ptq_int8", "w4a8", "ternary_reference"],
        "moe_variants": ["moe", "moe_curiosity_route"],
    },
    "train": {"seeds": [0], "epochs": 15},
    "features": {"backbone": "logmel_stats"},
    "benchmark": {
        "warmup": 5,
        "samples": 200,
        "torch_samples": 40,
        "block": 40,
        "batch_sizes": [1, 8],
        "batch_repeats": 10,
    },
}


def _copy_repo(dst: Path, smoke: dict | None = None) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    for section, values in (smoke or SMOKE).items():
        params[section].update(values)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], cwd=dst, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dst, check=True)
    subprocess.run(git + ["commit", "-qm", "smoke"], cwd=dst, check=True)


def _dvc_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "CODECARBON_LOG_LEVEL": "error",
    }


def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "dvc"), *args], cwd=cwd, env=_dvc_env(), capture_output=True, text=True
    )


@pytest.mark.slow
def test_dvc_repro_on_synthetic_runs_to_the_report_and_is_then_a_no_op(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    r = _dvc(["repro"], repo)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (repo / "reports" / "report.md").read_text()
    assert "Claims verdict" in report or "claims verdict" in report.lower()
    metrics = yaml.safe_load((repo / "reports" / "metrics.json").read_text())
    assert (repo / "reports" / "benchmark_metrics.json").is_file()
    assert metrics, "reports/metrics.json is empty"
    t0 = time.perf_counter()
    again = _dvc(["repro"], repo)
    assert again.returncode == 0
    assert "up to date" in (again.stdout + again.stderr)
    assert time.perf_counter() - t0 < 30
    shown = _dvc(["metrics", "show"], repo)
    assert shown.returncode == 0 and "reports/metrics.json" in shown.stdout
    _edits_rerun_only_what_they_can_change(repo)


def _changed(repo: Path) -> set[str]:
    r = _dvc(["status", "--json"], repo)
    assert r.returncode == 0, r.stderr[-2000:]
    return set(json.loads(r.stdout or "{}"))


def _edited(repo: Path, rel: str, edit) -> set[str]:
    """The stages `dvc status` lists after `edit` of file `rel`; the file is restored after."""
    path = repo / rel
    before = path.read_text()
    path.write_text(edit(before))
    try:
        return _changed(repo)
    finally:
        path.write_text(before)


def _w4a8_at_2_bits(text: str) -> str:
    params = yaml.safe_load(text)
    params["variants"]["w4a8"]["weight_bits"] = 2
    return yaml.safe_dump(params, sort_keys=False)


def _edits_rerun_only_what_they_can_change(repo: Path) -> None:
    """A forced export that writes identical artefacts reruns nothing below it; a docstring edit
    in report code reruns only `report`; one in analysis only `stats` (the report renders what
    stats wrote); one in the run folder's contract the stages that read run folders; editing
    variants.w4a8 the train instances (which retrain w4a8 and the MoEs only)."""
    r = _dvc(["repro", "-f", "--single-item", "export@synthetic-corrected"], repo)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _changed(repo) == set()  # export.json holds no seconds: the benchmark stays valid
    doc = lambda text: text.replace('"""', '"""Edited. ', 1)  # noqa: E731
    assert _edited(repo, "src/qmoe/report/plotting.py", doc) == {"report"}
    assert _edited(repo, "src/qmoe/analysis/stats.py", doc) == {"stats"}
    readers = {
        f"{s}@synthetic-{p}"
        for s in ("train", "export", "benchmark")
        for p in ("corrected", "faithful")
    }
    assert _edited(repo, "src/qmoe/contract/runs.py", doc) == readers | {
        "aggregate",
        "stats",
        "report",
    }
    # one train instance per protocol; inside it only w4a8 and the MoEs retrain (tests/training/
    # test_reuse.py), so nothing else of the study changes
    changed = _edited(repo, "params.yaml", _w4a8_at_2_bits)
    assert changed == {f"train@synthetic-{p}" for p in ("corrected", "faithful")}
    assert _changed(repo) == set()
    _a_variant_edit_retrains_only_its_models(repo)
    _a_swapped_checkpoint_and_a_forced_run_retrain(repo)


def _train_faithful(repo: Path, *flags: str) -> str:
    r = _dvc(["repro", *flags, "--single-item", "train@synthetic-faithful"], repo)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def _a_variant_edit_retrains_only_its_models(repo: Path) -> None:
    """Through DVC (persisted outputs): the faithful instance retrains w4a8 and the two MoEs,
    whose pool holds w4a8, and leaves the other variants' files untouched."""
    runs = repo / "data" / "runs" / "synthetic" / "faithful"
    stamps = lambda v: {f: f.stat().st_mtime_ns for f in (runs / v).rglob("*")}  # noqa: E731
    kept = {v: stamps(v) for v in ("fp32", "ptq_int8", "ternary_reference")}
    params = repo / "params.yaml"
    params.write_text(_w4a8_at_2_bits(params.read_text()))
    log = _train_faithful(repo)
    for v in kept:
        assert f"synthetic/faithful/{v}: kept (its inputs and files are unchanged)" in log
        assert stamps(v) == kept[v], f"{v} was rewritten"
    for v in ("w4a8", "moe", "moe_curiosity_route"):
        assert f"synthetic/faithful/{v}: training: its inputs changed" in log
        assert f"synthetic/faithful/{v} fold 1 seed 42: macro-F1" in log


def _a_swapped_checkpoint_and_a_forced_run_retrain(repo: Path) -> None:
    """`cp w4a8/fold1_seed42.pt fp32/fold1_seed42.pt` makes DVC rerun the instance, which
    retrains fp32 (its file is not as written) and keeps the rest; `dvc repro -f` retrains all."""
    runs = repo / "data" / "runs" / "synthetic" / "faithful"
    shutil.copy(runs / "w4a8" / "fold1_seed42.pt", runs / "fp32" / "fold1_seed42.pt")
    assert "train@synthetic-faithful" in _changed(repo)
    log = _train_faithful(repo)
    assert f"synthetic/faithful/fp32: training: its run folder {Path('data/runs')}" in log
    assert "altered: fold1_seed42.pt" in log
    assert "synthetic/faithful/w4a8: kept (its inputs and files are unchanged)" in log
    assert "train@synthetic-faithful" not in _changed(repo)
    log = _train_faithful(repo, "-f")
    for v in ("fp32", "w4a8", "moe"):
        assert f"synthetic/faithful/{v}: training: forced: DVC ran the stage" in log


def _git(args: list[str], repo: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True
    )


def _queue_states(repo: Path) -> list[str]:
    """The Status column (the last) of `dvc queue status`: Queued, Running, Success, Failed."""
    table = _dvc(["queue", "status"], repo).stdout.split("\n\n")[0].splitlines()
    if not table or not table[0].startswith("Task"):
        return []  # "No experiment tasks in the queue."
    return [line.split()[-1] for line in table[1:] if line.strip()]


@pytest.mark.slow
def test_two_queued_experiments_run_at_once_and_both_land_in_exp_show(tmp_path):
    """`dvc queue start -j 2` (README): both experiments run side by side and show their params
    and metrics in `dvc exp show`. The benchmark's machine lock would serialise benchmarks;
    these experiments change a stats knob, so they rerun aggregate, stats and report."""
    repo = tmp_path / "repo"
    repo.mkdir()
    smoke = {**SMOKE, "study": {**SMOKE["study"], "variants": ["fp32", "w4a8"], "moe_variants": []}}
    _copy_repo(repo, smoke)
    r = _dvc(["repro"], repo)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _git(["add", "-f", "dvc.lock", "reports"], repo)
    _git(["commit", "-qm", "results"], repo)
    for name, margin in (("margin-2", "0.02"), ("margin-5", "0.05")):
        queued = _dvc(
            ["exp", "run", "--queue", "-n", name, "-S", f"stats.tost_margin={margin}"], repo
        )
        assert queued.returncode == 0, queued.stderr[-2000:]
    # the queue's workers inherit the starter's stdout: into a file, not a pipe that
    # subprocess.run would wait on until the workers exit (the whole queue)
    with open(tmp_path / "queue_start.log", "w") as log:
        started = subprocess.run(
            [str(VENV_BIN / "dvc"), "queue", "start", "-j", "2"],
            cwd=repo,
            env=_dvc_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    assert started.returncode == 0, (tmp_path / "queue_start.log").read_text()[-2000:]
    most_running, deadline = 0, time.time() + 900
    while time.time() < deadline:
        states = _queue_states(repo)
        most_running = max(most_running, states.count("Running"))
        if states and all(s in ("Success", "Failed") for s in states):
            break
        time.sleep(1)
    assert _queue_states(repo) == ["Success", "Success"], _dvc(["queue", "logs", "margin-2"], repo)
    assert most_running == 2  # side by side, not one after the other
    shown = json.loads(_dvc(["exp", "show", "--json"], repo).stdout)
    names = {
        e["name"]: e["data"]["params"]["params.yaml"]["data"]["stats"]["tost_margin"]
        for commit in shown
        for e in (commit.get("experiments") or [])
        for e in (e.get("revs") or [])
        if e.get("name")
    }
    assert names == {"margin-2": 0.02, "margin-5": 0.05}
    _dvc(["queue", "stop"], repo)

"""The committed results are the ones dvc.lock records: reports/ is regenerated, never edited."""

import hashlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "dvc.lock"


def _recorded_outs() -> dict[str, str]:
    stages = yaml.safe_load(LOCK.read_text())["stages"]
    return {o["path"]: o.get("md5") for s in stages.values() for o in s.get("outs", [])}


@pytest.mark.skipif(not LOCK.is_file(), reason="no committed dvc.lock")
@pytest.mark.parametrize(
    "path",
    [
        "reports/metrics.json",
        "reports/benchmark_metrics.json",
        "reports/verdicts.json",
        "reports/summary.md",
        "reports/report.md",
        "reports/plots/f1_per_fold.csv",
        "reports/tables/runs.csv",
    ],
)
def test_committed_report_files_match_the_committed_lock(path):
    recorded = _recorded_outs()
    assert path in recorded, f"dvc.lock records no output {path}"
    md5 = hashlib.md5((ROOT / path).read_bytes()).hexdigest()
    assert md5 == recorded[path], f"{path} differs from what dvc.lock records: edited by hand?"


@pytest.mark.parametrize("path", ["reports/report.md", "reports/summary.md"])
def test_committed_results_come_from_a_clean_commit(path):
    """Results whose provenance says '-dirty' came from code that no commit holds: regenerate
    them from a clean checkout (`git status` empty) before committing them."""
    from qmoe.report.provenance import commits_named

    commits = commits_named((ROOT / path).read_text())
    assert commits, f"{path} names no code commit"
    dirty = [c for c in commits if c.endswith("-dirty") or c == "unknown"]
    assert not dirty, f"{path}: provenance names {dirty}: regenerate from a clean commit"

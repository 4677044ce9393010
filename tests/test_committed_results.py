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

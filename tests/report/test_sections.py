"""Report sections, DVC metrics and provenance (qmoe.report.sections, qmoe.report.document,
qmoe.report.provenance)."""

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from repo_params import section
from scipy import stats as sps

from qmoe.io import ConfigError, from_section
from qmoe.report import document, provenance, sections


def _runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {
            "dataset": "d",
            "protocol": "corrected",
            "variant": v,
            "fold": f,
            "seed": s,
            "macro_f1": 0.8 + 0.02 * rng.random(),
            "accuracy": 0.81,
            "weighted_f1": 0.8,
            "latency_median_ms": 0.2 + 0.01 * f,
            "energy_per_inference_mj": 0.3,
        }
        for v in ("fp32", "w4a8")
        for f in (1, 2, 3)
        for s in (0, 1)
    ]
    return pd.DataFrame(rows)


def test_metrics_are_mean_std_per_variant_and_deterministic():
    runs = _runs()
    m = sections.metrics(runs)
    sel = runs[runs["variant"] == "w4a8"]
    entry = m["d"]["corrected"]["w4a8"]
    assert entry["macro_f1_mean"] == round(sel["macro_f1"].mean(), 6)
    assert entry["macro_f1_std"] == round(sel["macro_f1"].std(ddof=1), 6)
    assert "latency_median_ms" not in entry  # measured values live in benchmark_metrics
    assert entry["n_models"] == 6
    bench = sections.benchmark_metrics(runs)["d"]["corrected"]["w4a8"]
    assert bench["latency_median_ms"] == round(sel["latency_median_ms"].median(), 6)
    assert bench["energy_per_inference_mj"] == 0.3
    shuffled = runs.sample(frac=1.0, random_state=1)
    assert json.dumps(sections.metrics(shuffled), sort_keys=True) == json.dumps(m, sort_keys=True)


def test_variant_summary_t_interval():
    runs = _runs()
    s = sections.variant_summary(runs, "macro_f1").set_index("variant")
    x = runs.loc[runs["variant"] == "fp32", "macro_f1"]
    half = sps.t.ppf(0.975, 5) * x.std(ddof=1) / np.sqrt(6)
    assert s.loc["fp32", "ci_high"] - s.loc["fp32", "mean"] == pytest.approx(half)


def test_f1_per_fold_plot_data_has_a_stable_y_field():
    plot = sections.f1_per_fold(_runs(), "macro_f1")
    assert list(plot.columns) == [
        "run",
        "dataset",
        "protocol",
        "variant",
        "fold",
        "seed",
        "metric",
        "f1",
    ]
    assert plot["run"].iloc[0] == "d/corrected/fp32/f1s0" and plot["run"].is_unique


def test_not_computed_groups_by_reason_and_drops_nothing():
    status = ["computed", "not computed", "not computed"]
    frame = pd.DataFrame(
        {
            "dataset": "d",
            "protocol": "corrected",
            "variant": ["a", "b", "c"],
            "baseline": "fp32",
            "status": status,
            "reason": ["", "no runs of b", "no runs of c"],
        }
    )
    text = sections.not_computed({"f1_paired": frame, "other": pd.DataFrame({"x": [1]})})
    assert text.startswith("2 planned tests were not computed")
    assert "| no runs of b | 1 | b vs fp32 | d/corrected | f1_paired |" in text
    all_done = sections.not_computed({"f1_paired": frame.iloc[:1]})
    assert all_done == "Every planned test was computed.\n"


def test_what_was_run_lists_folds_seeds_and_missing_protocols():
    text = sections.what_was_run(_runs())
    assert "`d` / `corrected`: 2 variants x 3 folds [1, 2, 3] x seeds [0, 1] = 12" in text
    assert "not run: protocol(s) ['faithful']" in text


def test_variant_table_names_what_each_variant_is():
    lines = sections.variant_table(["q16_reference", "fp32", "mine"]).splitlines()
    assert lines[2:] == [
        "| `fp32` | FP32-Base | FP32 MLP |",
        "| `q16_reference` | Q16-Base | FP32 MLP with pre-LayerNorm: the reference's '16-bit' "
        "is not 16-bit |",
        "| `mine` | (not in paper) | not described in qmoe.catalog |",
    ]


def _report(formats=None, **verdict) -> dict:
    """params `report` with other `formats` and changes to its `verdict` entry."""
    out = {**section("report"), "verdict": {**section("report.verdict"), **verdict}}
    return out if formats is None else {**out, "formats": formats}


def test_report_config_validation():
    with pytest.raises(ConfigError, match="report.formats"):
        from_section(document.ReportConfig, _report(formats=["pdf"]), "report")
    with pytest.raises(ConfigError, match="report.verdict.ratio_tol"):
        from_section(document.ReportConfig, _report(ratio_tol=-1.0), "report")
    cfg = from_section(
        document.ReportConfig, _report(ratio_tol=0.02, formats=["png", "pdf"]), "report"
    )
    assert cfg.verdict.ratio_tol == 0.02 and cfg.formats == ("png", "pdf")


# --- provenance -------------------------------------------------------------------------------


def test_manifest_digest_is_order_independent_and_content_sensitive():
    m = pd.DataFrame({"clip_id": ["b", "a"], "sha256": ["2", "1"]})
    expected = hashlib.sha256(b"a  1\nb  2").hexdigest()
    assert provenance.manifest_digest(m) == expected
    assert provenance.manifest_digest(m.iloc[::-1]) == expected
    assert provenance.manifest_digest(m.assign(sha256=["2", "x"])) != expected


def test_dataset_rows_read_dataset_json_and_manifest(tmp_path):
    folder = tmp_path / "esc10"
    folder.mkdir()
    (folder / "dataset.json").write_text(
        json.dumps({"source": "u", "licence": "CC BY", "file_count": 2, "archive_sha256": "ab"})
    )
    pd.DataFrame({"clip_id": ["a", "b"], "sha256": ["1", "2"]}).to_csv(folder / "manifest.csv")
    row = provenance.dataset_rows(tmp_path, ["esc10", "absent"]).set_index("dataset")
    assert row.loc["esc10", "archive_sha256"] == "ab" and row.loc["esc10", "files"] == 2
    assert row.loc["absent", "manifest_sha256_digest"] == "n/a (no manifest.csv)"


def test_energy_statement_says_estimated_unless_counters_were_read():
    assert "**estimated**" in provenance.energy_statement(["codecarbon:cpu_load"])
    assert "**estimated**" in provenance.energy_statement(["rapl", "constant"])
    assert "hardware power counters" in provenance.energy_statement(["codecarbon:rapl"])


def test_git_commit_outside_git_is_unknown(tmp_path):
    assert provenance.git_commit(tmp_path) == "unknown"


def _repo(tmp_path: Path) -> Path:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    (tmp_path / "reports" / "tables").mkdir(parents=True)
    (tmp_path / "reports" / "report.md").write_text("old\n")
    (tmp_path / "reports" / "tables" / "esc10.csv").write_text("old\n")
    (tmp_path / "dvc.lock").write_text("old\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  report:\n    cmd: python r.py\n    outs: [reports/report.md]\n"
        "  table:\n    foreach: [esc10]\n    do:\n      cmd: python t.py\n"
        "      metrics:\n      - reports/tables/${item}.csv:\n          cache: false\n"
    )
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(git + ["add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-qm", "c"], cwd=tmp_path, check=True)
    return tmp_path


def test_git_commit_is_clean_while_the_pipeline_rewrites_its_own_outputs(tmp_path):
    repo = _repo(tmp_path)
    head = provenance._git(["rev-parse", "HEAD"], repo)
    for rel in ("reports/report.md", "reports/tables/esc10.csv", "dvc.lock"):
        (repo / rel).write_text("new\n")
    assert provenance.git_commit(repo) == head
    (repo / "reports" / "report.md").unlink()  # DVC deletes an out before its stage runs
    assert provenance.git_commit(repo) == head


def test_git_commit_is_dirty_when_code_or_params_changed(tmp_path):
    repo = _repo(tmp_path)
    head = provenance._git(["rev-parse", "HEAD"], repo)
    (repo / "src" / "code.py").write_text("x = 2\n")
    assert provenance.git_commit(repo) == f"{head}-dirty"
    (repo / "src" / "code.py").write_text("x = 1\n")
    (repo / "dvc.yaml").write_text((repo / "dvc.yaml").read_text() + "# edited\n")
    assert provenance.git_commit(repo) == f"{head}-dirty"

"""aggregate -> stats -> report end to end on a small synthetic results tree (architecture.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = [
    "fp32",
    "w4a8",
    "w8a8",
    "q16_reference",
    "fp16",
    "moe",
    "moe_curiosity_log",
    "moe_curiosity_kl",
]


def write_params(path: Path, dataset: str = "toy", variants=VARIANTS, **stats) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["study"] = {
        **params["study"],
        "datasets": [dataset],
        "protocols": ["corrected", "faithful"],
        "variants": [v for v in variants if not v.startswith("moe")],
        "moe_variants": [v for v in variants if v.startswith("moe")],
    }
    params["stats"] = {**params.get("stats", {}), "n_resamples": 500, **stats}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_stage(name: str, args: list[str], params: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The stage run as DVC runs it: in the folder of its params.yaml."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args],
        cwd=params.parent,
        env=env,
        capture_output=True,
        text=True,
    )


def stage_argv(tmp: Path) -> dict[str, list[str]]:
    """The three stages' arguments, as dvc.yaml gives them, for a study under `tmp`."""
    d, r = tmp / "data", tmp / "reports"
    return {
        "aggregate": [
            "--runs",
            f"{d}/runs",
            "--costs",
            f"{d}/train_cost",
            "--benchmarks",
            f"{d}/benchmarks",
            "--out",
            f"{r}/tables/runs.csv",
        ],
        "stats": [
            "--table",
            f"{r}/tables/runs.csv",
            "--runs",
            f"{d}/runs",
            "--benchmarks",
            f"{d}/benchmarks",
            "--deployed",
            f"{d}/deployed",
            "--out",
            f"{r}/stats",
        ],
        "report": [
            "--table",
            f"{r}/tables/runs.csv",
            "--stats",
            f"{r}/stats",
            "--runs",
            f"{d}/runs",
            "--costs",
            f"{d}/train_cost",
            "--benchmarks",
            f"{d}/benchmarks",
            "--raw",
            f"{d}/raw",
            "--metrics",
            f"{r}/metrics.json",
            "--bench_metrics",
            f"{r}/benchmark_metrics.json",
            "--verdicts",
            f"{r}/verdicts.json",
            "--plots",
            f"{r}/plots/f1_per_fold.csv",
            "--figures",
            f"{r}/figures",
            "--tables",
            f"{r}/tables/paper",
            "--out",
            f"{r}/report.md",
            "--summary",
            f"{r}/summary.md",
        ],
    }


def pipeline(tmp: Path, params: Path) -> list[subprocess.CompletedProcess]:
    return [run_stage(name, args, params, tmp) for name, args in stage_argv(tmp).items()]


# --- tests ------------------------------------------------------------------------------------


def _stage_main(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _in_process(tmp: Path, params: Path, monkeypatch) -> None:
    """The three stages' main() in this process (what `pipeline` runs as subprocesses)."""
    monkeypatch.chdir(params.parent)
    for name, args in stage_argv(tmp).items():
        monkeypatch.setattr(sys, "argv", [name, *args])
        _stage_main(name)()


@pytest.fixture(scope="module")
def study(tmp_path_factory, results_tree):
    """A synthetic study with one fold of w4a8 missing, run through all three stages once."""
    tmp = tmp_path_factory.mktemp("study")
    results_tree(tmp / "data", VARIANTS, skip=(("w4a8", 2),))
    params = write_params(tmp / "params.yaml")
    with pytest.MonkeyPatch.context() as mp:
        _in_process(tmp, params, mp)
    return tmp


def test_aggregate_writes_one_row_per_model_with_facts_and_every_metric(study):
    runs = pd.read_csv(study / "reports" / "tables" / "runs.csv")
    per_variant = 3 * 2 + 3 * 1  # corrected 3 folds x 2 seeds, faithful
    assert len(runs) == len(VARIANTS) * per_variant - 3  # w4a8 fold 2: 2 + 1 models skipped
    assert list(runs.columns[:11]) == [
        "dataset",
        "protocol",
        "variant",
        "fold",
        "seed",
        "kind",
        "weight_bits",
        "activation_bits",
        "precision_bits",
        "is_moe",
        "curiosity",
    ]
    for col in (
        "macro_f1",
        "train_energy_kwh",
        "latency_median_ms",
        "energy_per_inference_mj",
        "bench_macro_f1",
        "bench_energy_method",
        "size_packed_bytes",
    ):
        assert col in runs.columns
    assert not runs.duplicated(["dataset", "protocol", "variant", "fold", "seed"]).any()
    first = runs.groupby("variant").first()
    assert first.loc["w4a8", ["kind", "weight_bits", "activation_bits"]].tolist() == [
        "bitlinear",
        4.0,
        8.0,
    ]
    assert first.loc["moe_curiosity_kl", ["kind", "is_moe", "curiosity"]].tolist() == [
        "moe",
        True,
        "kl",
    ]


def test_report_has_the_verdict_table_with_every_claim(study):
    from qmoe.analysis.paper_claims import CLAIMS, EXTENSIONS

    report = (study / "reports" / "report.md").read_text()
    verdict = report[report.index("## Claims verdict") : report.index("## Results, both protocols")]
    paper, extensions = verdict.split("### Our extensions")
    for spec in CLAIMS:
        where = extensions if spec.id in EXTENSIONS else paper
        assert f"| {spec.claim} [{spec.source}] | {spec.paper} |" in where
    assert "Ours (corrected)" in verdict and "Ours (faithful)" in verdict
    # every test clip's recording is its own in the synthetic manifest: no sibling in training
    assert "in training: `corrected`: 0 of 36 (0.0 %); `faithful`: 0 of 36 (0.0 %)." in verdict
    # energy estimated (codecarbon): no significance table for it, a pointer to latency
    tests = report[report.index("## Statistical tests") : report.index("## Figures")]
    assert "### Energy per inference\n\nNo significance table" in tests
    assert "Energy per inference (paired t" not in tests
    # the accuracy claims show the deployed artefacts' F1 beside the training form's
    ours = pd.read_csv(study / "reports" / "stats" / "claims.csv").set_index(["claim", "protocol"])
    f1 = ours.loc[("moe_no_gain", "corrected"), "ours"]
    assert f1.startswith("training form: ") and "; deployed artefacts: " in f1
    for section in (
        "## What was run",
        "## Paper tables",
        "## Statistical tests",
        "## Figures",
        "## Not computed",
        "## Provenance",
        "Manifest digest",
        "**estimated**",
    ):
        assert section in report


def test_methods_state_what_each_protocol_does_and_disclosures_sit_by_the_verdicts(study):
    from qmoe.io import from_section, load_params
    from qmoe.training.fit import TrainConfig
    from qmoe.training.protocols import make_protocol

    report = (study / "reports" / "report.md").read_text()
    methods = report[report.index("## Methods") : report.index("## Provenance")]
    cfg = from_section(TrainConfig, load_params(study / "params.yaml")["train"], "train")
    for name in ("corrected", "faithful"):
        block = methods[methods.index(f"Protocol `{name}`:") :]
        for line in make_protocol(name, cfg).describe():
            assert f"- {line}\n" in block, (name, line)
    verdicts = report[
        report.index("## Claims verdict") : report.index("## Results, both protocols")
    ]
    for fragment in (
        "tuned by the reference",
        "chosen on the test fold",
        "EfficientNet-Lite0",
        "macro-F1",
        "transductive",
    ):
        assert fragment in verdicts


def test_every_figure_and_paper_table_exists(study):
    from qmoe.report.figures import FIGURES
    from qmoe.report.paper_tables import PAPER_TABLES

    figures = study / "reports" / "figures"
    for name in FIGURES:
        assert (figures / "png" / f"toy_{name}.png").stat().st_size > 1000
    assert not (figures / "pdf").exists()  # report.formats [png]: no PDF duplicates
    report = (study / "reports" / "report.md").read_text()
    assert report.count("![toy_") == len(FIGURES)
    paper = study / "reports" / "tables" / "paper"
    stems = {t.stem for t in PAPER_TABLES}
    assert {p.stem for p in paper.glob("*.md")} == {p.stem for p in paper.glob("*.tex")} == stems
    table2 = (paper / "table2_quantization.md").read_text()
    assert table2.startswith("# Table 2: quantisation ablation")
    assert "| corrected | toy | 4 | w4a8 | Q4-Base |" in table2
    assert "| corrected | toy | 32 | q16_reference | Q16-Base |" in table2  # FP32, by its config


def test_incomplete_pairs_are_reported_not_dropped(study):
    f1 = pd.read_csv(study / "reports" / "stats" / "f1_paired.csv")
    row = f1[
        (f1["family"] == "f1_vs_fp32") & (f1["variant"] == "w4a8") & (f1["protocol"] == "corrected")
    ].iloc[0]
    assert row["status"] == "not computed"
    assert row["reason"] == (
        "incomplete pairs: w4a8 lacks macro_f1 for fold 2 seed 0, fold 2 seed 1"
    )
    report = (study / "reports" / "report.md").read_text()
    assert "w4a8 lacks macro_f1 for fold 2 seed 0" in report


def test_stats_outputs_and_claims(study):
    from qmoe.analysis.paper_claims import CLAIMS

    stats = study / "reports" / "stats"
    summary = json.loads((stats / "stats.json").read_text())
    assert summary["config"]["tost_margin"] == 0.01 and summary["config"]["n_resamples"] == 500
    # w4a8 lacks fold 2 (its two pairs per protocol); no route model: an empty same-weights table
    assert summary["families"]["tost_f1"] == {"computed": 4, "not_computed": 4}
    assert summary["families"]["routing_same_weights"] == {"computed": 0, "not_computed": 0}
    claims = pd.read_csv(stats / "claims.csv")
    assert claims[["claim", "protocol"]].apply(tuple, axis=1).tolist() == [
        (c.id, p) for c in CLAIMS for p in ("corrected", "faithful")
    ]
    assert len(list(stats.glob("ref_*.csv"))) == 6 and len(list(stats.glob("std_*.csv"))) == 5
    routing = claims[claims["claim"] == "routing_q8_confidence"].set_index("protocol")
    assert routing["computed"].all()  # the synthetic 8-bit expert gets gate_prob 0.5 vs 0.7
    assert 0.25 < routing.loc["corrected", "estimate"] < 0.32


def test_metrics_json_and_plot_data(study):
    metrics = json.loads((study / "reports" / "metrics.json").read_text())
    assert set(metrics["toy"]) == {"corrected", "faithful"}
    assert set(metrics["toy"]["corrected"]) == set(VARIANTS)
    # the claims verdict as metrics: counts of every verdict over the paper's claims, and each
    # claim's and extension's verdict with its scope, per protocol
    from qmoe.analysis.paper_claims import EXTENSIONS

    verdicts = json.loads((study / "reports" / "verdicts.json").read_text())
    claims = pd.read_csv(study / "reports" / "stats" / "claims.csv")
    for protocol in ("corrected", "faithful"):
        entry = verdicts["toy"][protocol]
        assert set(entry["extensions"]) == EXTENSIONS
        assert set(entry["claims"]) == set(claims["claim"]) - EXTENSIONS
        assert sum(entry["counts"].values()) == len(entry["claims"])
        assert set(entry["counts"]) == {
            "reproduced",
            "not_reproduced",
            "inconclusive",
            "not_testable_here",
            "not_computed",
            "holds_by_arithmetic",
            "indicative_only",
        }
        from qmoe.analysis.paper_claims import BY_ID

        judged = {**entry["claims"], **entry["extensions"]}
        for claim, e in judged.items():
            scope = e["scope"]
            if BY_ID[claim].timing is None:
                assert scope == {"dataset": "toy", "runtime": "", "regime": "", "batch": "",
                                 "note": ""}, claim  # fmt: skip
            else:  # latency: what was measured, whatever the dataset
                runtime = {"corrected": "ORT 1.31.1", "faithful": "torch 2.9.1 eager"}[protocol]
                assert scope["runtime"].startswith(runtime) or scope["batch"] == "64", claim
                assert scope["regime"] in ("after_backbone", "cold whole-fold pass"), claim
                measured = (
                    f"{scope['runtime']}, {scope['regime']}, batch {scope['batch']}, this CPU"
                )
                rests = e["verdict"] in ("reproduced", "not reproduced", "inconclusive")
                assert scope["note"] == (measured if rests else ""), claim
        # toy is not one of the paper's datasets: comparisons are indicative, never a verdict,
        # except latency's: it depends on the runtime, cache and batch, not on the clips
        decisive = {
            c for c, e in judged.items() if e["verdict"] in ("reproduced", "not reproduced")
        }
        assert all(BY_ID[c].timing is not None for c in decisive)
        verdict_list = [e["verdict"] for e in entry["claims"].values()]
        assert entry["counts"]["indicative_only"] == verdict_list.count("indicative only") > 0
    plot = pd.read_csv(study / "reports" / "plots" / "f1_per_fold.csv")
    runs = pd.read_csv(study / "reports" / "tables" / "runs.csv")
    assert len(plot) == len(runs) and plot["f1"].tolist() == runs["macro_f1"].round(6).tolist()


def test_a_listed_run_without_a_folder_is_an_error_naming_it(tmp_path, results_tree):
    results_tree(tmp_path / "data", ["fp32"])
    params = write_params(tmp_path / "params.yaml", variants=["fp32", "w2a8"])
    r = run_stage("aggregate", stage_argv(tmp_path)["aggregate"], params, tmp_path)
    assert r.returncode == 1
    assert "error: " in r.stderr and "variant=w2a8" in r.stderr and "protocol=corrected" in r.stderr
    assert not (tmp_path / "reports" / "tables" / "runs.csv").exists()


def test_margin_out_of_range_fails_before_any_output(tmp_path, results_tree):
    results_tree(tmp_path / "data", ["fp32", "w4a8"])
    params = write_params(tmp_path / "params.yaml", variants=["fp32", "w4a8"], tost_margin=2.0)
    argv = stage_argv(tmp_path)
    agg = run_stage("aggregate", argv["aggregate"], params, tmp_path)
    assert agg.returncode == 0, agg.stderr
    r = run_stage("stats", argv["stats"], params, tmp_path)
    assert r.returncode == 1 and "stats.tost_margin" in r.stderr
    assert not (tmp_path / "reports" / "stats").exists()


@pytest.mark.slow
def test_three_stages_as_subprocesses_give_identical_outputs_twice(tmp_path, results_tree):
    chosen = ["fp32", "w4a8", "w8a8", "q16_reference", "moe", "moe_curiosity_log"]
    results_tree(tmp_path / "data", chosen)
    params = write_params(tmp_path / "params.yaml", variants=chosen)
    first = pipeline(tmp_path, params)
    assert [r.returncode for r in first] == [0, 0, 0], [r.stderr[-2000:] for r in first]
    snapshot = {
        p.relative_to(tmp_path): p.read_bytes()
        for p in (tmp_path / "reports").rglob("*")
        if p.is_file()
    }
    second = pipeline(tmp_path, params)
    assert [r.returncode for r in second] == [0, 0, 0]
    again = {
        p.relative_to(tmp_path): p.read_bytes()
        for p in (tmp_path / "reports").rglob("*")
        if p.is_file()
    }
    assert again.keys() == snapshot.keys()
    assert [k for k in snapshot if snapshot[k] != again[k]] == []


def test_every_figure_has_its_one_line_caption(study):
    from qmoe.report.figures import FIGURES

    report = (study / "reports" / "report.md").read_text()
    for name, caption in FIGURES.items():
        assert caption and "\n" not in caption
        image = f"![toy_{name}](figures/png/toy_{name}.png)\n\n"
        assert f"{image}*{caption}*\n" in report, name


def test_the_report_opens_with_the_summary_that_summary_md_carries(study):
    from qmoe.analysis.paper_claims import BY_ID
    from qmoe.report.summary import KEY_CLAIMS

    report = (study / "reports" / "report.md").read_text()
    brief = (study / "reports" / "summary.md").read_text()
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Summary", "## What was run", "## Claims verdict"]
    assert report.index("## Summary\n\n" + brief) < report.index("## What was run")
    claims = [line for line in brief.splitlines() if line.startswith("| ") and "[" in line]
    assert [line.split(" | ")[0] for line in claims[1:]] == [
        f"| {BY_ID[c].claim} [{BY_ID[c].source}]" for c in KEY_CLAIMS
    ]
    tally = report.split("Verdicts over claims x protocols: ", 1)[1].split(".\n", 1)[0]
    assert f"Verdicts: {tally}." in brief  # the same counts as the full claims table
    assert report.index("## Results, both protocols") < report.index("## Deployment\n")

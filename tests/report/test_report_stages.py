"""aggregate -> stats -> report end to end on a small synthetic results tree (architecture.md)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["dog", "rain", "siren"]
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
EXPERTS = ["ternary_reference", "w4a8", "w8a8"]
SEEDS = {"corrected": [0, 1], "faithful": [42]}
FOLDS, PER_FOLD = (1, 2, 3), 12
SIZES = {"fp32": 48_000, "w4a8": 7_000, "w8a8": 13_000, "q16_reference": 48_000, "fp16": 24_000}


def _raw(root: Path, dataset: str) -> None:
    folder = root / "raw" / dataset
    folder.mkdir(parents=True)
    rows = [
        {
            "clip_id": f"c{i:03d}",
            "path": f"files/c{i:03d}.wav",
            "label_id": i % 3,
            "label_name": CLASSES[i % 3],
            "fold": 1 + i % 3,
            "source_id": f"s{i}",
            "duration_s": 1.0,
            "sample_rate": 22050,
            "sha256": hashlib.sha256(str(i).encode()).hexdigest(),
        }
        for i in range(PER_FOLD * len(FOLDS))
    ]
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    (folder / "dataset.json").write_text(
        json.dumps(
            {
                "name": dataset,
                "source": {"url": "synthetic"},
                "licence": "CC0",
                "classes": CLASSES,
                "folds": 3,
                "file_count": len(rows),
                "archive_sha256": "0" * 64,
                "rejects": [],
            }
        )
    )


def _model(rng: np.random.Generator, variant: str, fold: int, seed: int) -> dict:
    f1 = 0.80 + 0.01 * fold + 0.01 * rng.standard_normal() - (0.02 if variant == "w4a8" else 0)
    return {
        "fold": fold,
        "seed": seed,
        "accuracy": f1 + 0.01,
        "macro_f1": f1,
        "weighted_f1": f1,
        "best_epoch": 5,
        "selected_epoch": 5,
        "epochs_run": 20,
        "train_seconds": 3.0 + rng.random(),
        "n_train": 20,
        "n_val": 4,
        "n_test": PER_FOLD,
        "n_params": 1_193_930,
        "train_energy_kwh": 1e-5 * (1 + rng.random()),
        "train_emissions_kg": 3e-6,
        "energy_method": "codecarbon:cpu_load_estimate",
    }


def _predictions(rng, variant: str, fold: int, seed: int) -> pd.DataFrame:
    label = np.arange(PER_FOLD) % 3
    pred = np.where(rng.random(PER_FOLD) < 0.8, label, (label + 1) % 3)
    frame = pd.DataFrame(
        {
            "fold": fold,
            "seed": seed,
            "clip_id": [f"c{fold}{i:02d}" for i in range(PER_FOLD)],
            "label": label,
            "pred": pred,
        }
    )
    if variant.startswith("moe"):
        frame["expert"] = rng.integers(0, 3, PER_FOLD)
        frame["gate_prob"] = np.where(frame["expert"] == 2, 0.5, 0.7) + 0.05 * rng.random(PER_FOLD)
    if "curiosity" in variant:
        frame["uncertainty"] = rng.gamma(2.0, 0.01, PER_FOLD)
    return frame


def _bench_row(rng, variant: str, m: dict, lat: np.ndarray) -> dict:
    e_mj = 0.3 + 0.05 * rng.random() + (0.1 if variant == "w8a8" else 0)
    train = m["train_energy_kwh"]
    return {
        "fold": m["fold"],
        "seed": m["seed"],
        "latency_n": lat.size,
        "latency_median_ms": float(np.median(lat)),
        "latency_mean_ms": float(lat.mean()),
        "latency_std_ms": float(lat.std(ddof=1)),
        "latency_iqr_ms": 0.01,
        "latency_p95_ms": float(np.quantile(lat, 0.95)),
        "latency_p99_ms": 0.5,
        "reference_fold_pass_s": 0.01 + 0.002 * rng.random(),
        "energy_block_n": 200,
        "energy_block_kwh": e_mj * 200 / 3.6e9,
        "energy_per_inference_mj": e_mj,
        "energy_method": "codecarbon:cpu_load_estimate",
        "train_energy_kwh": train,
        "break_even_inferences": train * 3.6e9 / e_mj,
        "deploy_over_train_1e3": 1e3 * e_mj / (train * 3.6e9),
        "deploy_over_train_1e6": 1e6 * e_mj / (train * 3.6e9),
        "size_packed_bytes": SIZES.get(variant, 60_000),
        "size_fp32_state_dict_bytes": 48_000,
        "size_reference_kb": 50.0,
        "n_params": m["n_params"],
        "macro_f1": m["macro_f1"],
        "f1_per_inference_mj": m["macro_f1"] / e_mj,
        "f1_per_train_wh": m["macro_f1"] / (train * 1e3),
    }


def make_tree(data: Path, dataset: str = "toy", variants=VARIANTS, seed: int = 0, skip: tuple = (),
              folds=FOLDS, seeds: dict | None = None, n_latency: int = 150) -> None:
    """data/raw, data/runs and data/benchmarks of a small study; `skip` drops (variant, fold)."""
    rng = np.random.default_rng(seed)
    _raw(data, dataset)
    for protocol, seeds in (seeds or SEEDS).items():
        for variant in variants:
            run = data / "runs" / dataset / protocol / variant
            bench = data / "benchmarks" / dataset / protocol / variant
            (bench / "latency").mkdir(parents=True)
            run.mkdir(parents=True)
            metrics, preds, summary, routing = [], [], [], []
            for fold in folds:
                for s in seeds:
                    if (variant, fold) in skip:
                        continue
                    m = _model(rng, variant, fold, s)
                    sigma = 0.1 if "curiosity" in variant else 0.3
                    lat = rng.lognormal(np.log(0.2), sigma, n_latency)
                    np.save(bench / "latency" / f"fold{fold}_seed{s}.npy", lat)
                    metrics.append(m)
                    preds.append(_predictions(rng, variant, fold, s))
                    summary.append(_bench_row(rng, variant, m, lat))
                    routing += [
                        {"fold": fold, "seed": s, "expert": e, "expert_name": n, "frequency": 1 / 3}
                        for e, n in enumerate(EXPERTS)
                    ]
            (run / "metrics.json").write_text(
                json.dumps(
                    {
                        "dataset": dataset,
                        "protocol": protocol,
                        "variant": variant,
                        "class_names": CLASSES,
                        "runs": metrics,
                    }
                )
            )
            pd.concat(preds).to_csv(run / "predictions.csv", index=False)
            pd.DataFrame(summary).to_csv(bench / "summary.csv", index=False)
            if variant.startswith("moe"):
                pd.DataFrame(routing).to_csv(bench / "routing.csv", index=False)
            (bench / "device.json").write_text(json.dumps({"cpu": "toy CPU", "threads": 1}))


def write_params(path: Path, dataset: str = "toy", variants=VARIANTS, **stats) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["study"] = {
        "datasets": [dataset],
        "protocols": ["corrected", "faithful"],
        "variants": list(variants),
    }
    params["stats"] = {**params.get("stats", {}), "n_resamples": 500, **stats}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_stage(name: str, args: list[str], params: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QMOE_PARAMS": str(params), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def pipeline(tmp: Path, params: Path) -> list[subprocess.CompletedProcess]:
    d, r = tmp / "data", tmp / "reports"
    return [
        run_stage(
            "aggregate",
            [
                "--runs",
                f"{d}/runs",
                "--benchmarks",
                f"{d}/benchmarks",
                "--out",
                f"{r}/tables/runs.csv",
            ],
            params,
            tmp,
        ),
        run_stage(
            "stats",
            [
                "--table",
                f"{r}/tables/runs.csv",
                "--runs",
                f"{d}/runs",
                "--benchmarks",
                f"{d}/benchmarks",
                "--out",
                f"{r}/stats",
            ],
            params,
            tmp,
        ),
        run_stage(
            "report",
            [
                "--table",
                f"{r}/tables/runs.csv",
                "--stats",
                f"{r}/stats",
                "--runs",
                f"{d}/runs",
                "--benchmarks",
                f"{d}/benchmarks",
                "--raw",
                f"{d}/raw",
                "--metrics",
                f"{r}/metrics.json",
                "--bench_metrics",
                f"{r}/benchmark_metrics.json",
                "--plots",
                f"{r}/plots/f1_per_fold.csv",
                "--figures",
                f"{r}/figures",
                "--tables",
                f"{r}/tables/paper",
                "--out",
                f"{r}/report.md",
            ],
            params,
            tmp,
        ),
    ]


# --- tests ------------------------------------------------------------------------------------


def _stage_main(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _in_process(tmp: Path, params: Path, monkeypatch) -> None:
    """The three stages' main() in this process (what `pipeline` runs as subprocesses)."""
    monkeypatch.setenv("QMOE_PARAMS", str(params))
    d, r = tmp / "data", tmp / "reports"
    argv = {
        "aggregate": ["--runs", f"{d}/runs", "--benchmarks", f"{d}/benchmarks",
                      "--out", f"{r}/tables/runs.csv"],
        "stats": ["--table", f"{r}/tables/runs.csv", "--runs", f"{d}/runs",
                  "--benchmarks", f"{d}/benchmarks", "--out", f"{r}/stats"],
        "report": ["--table", f"{r}/tables/runs.csv", "--stats", f"{r}/stats", "--runs",
                   f"{d}/runs", "--benchmarks", f"{d}/benchmarks", "--raw", f"{d}/raw",
                   "--metrics", f"{r}/metrics.json",
                   "--bench_metrics", f"{r}/benchmark_metrics.json", "--plots", f"{r}/plots/f1_per_fold.csv",
                   "--figures", f"{r}/figures", "--tables", f"{r}/tables/paper",
                   "--out", f"{r}/report.md"],
    }
    for name, args in argv.items():
        monkeypatch.setattr(sys, "argv", [name, *args])
        _stage_main(name)()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A synthetic study with one fold of w4a8 missing, run through all three stages once."""
    tmp = tmp_path_factory.mktemp("study")
    make_tree(tmp / "data", skip=(("w4a8", 2),))
    params = write_params(tmp / "params.yaml")
    with pytest.MonkeyPatch.context() as mp:
        _in_process(tmp, params, mp)
    return tmp


def test_aggregate_writes_one_row_per_model_with_every_metric(study):
    runs = pd.read_csv(study / "reports" / "tables" / "runs.csv")
    per_variant = 3 * 2 + 3 * 1                            # corrected 3 folds x 2 seeds, faithful
    assert len(runs) == len(VARIANTS) * per_variant - 3     # w4a8 fold 2: 2 + 1 models skipped
    assert list(runs.columns[:5]) == ["dataset", "protocol", "variant", "fold", "seed"]
    for col in ("macro_f1", "train_energy_kwh", "latency_median_ms", "energy_per_inference_mj",
                "bench_macro_f1", "bench_energy_method", "size_packed_bytes"):
        assert col in runs.columns
    assert not runs.duplicated(["dataset", "protocol", "variant", "fold", "seed"]).any()


def test_report_has_the_verdict_table_with_every_claim(study):
    from qmoe.analysis.verdict import CLAIMS

    report = (study / "reports" / "report.md").read_text()
    verdict = report[report.index("## Claims verdict"):report.index("## Results, both protocols")]
    for spec in CLAIMS:
        assert spec.claim in verdict
    assert "Ours (corrected)" in verdict and "Ours (faithful)" in verdict
    for section in ("## What was run", "## Paper tables", "## Statistical tests", "## Figures",
                    "## Not computed", "## Provenance", "Manifest digest", "**estimated**"):
        assert section in report


def test_every_figure_and_paper_table_exists(study):
    from qmoe.report.figures import FIGURES

    figures = study / "reports" / "figures"
    for name in FIGURES:
        assert (figures / "png" / f"toy_{name}.png").stat().st_size > 1000
        assert (figures / "pdf" / f"toy_{name}.pdf").is_file()
    report = (study / "reports" / "report.md").read_text()
    assert report.count("![toy_") == len(FIGURES)
    paper = study / "reports" / "tables" / "paper"
    stems = {p.stem for p in paper.glob("*.md")}
    assert stems == {p.stem for p in paper.glob("*.tex")} and len(stems) == 5


def test_incomplete_pairs_are_reported_not_dropped(study):
    f1 = pd.read_csv(study / "reports" / "stats" / "f1_paired.csv")
    row = f1[(f1["family"] == "f1_vs_fp32") & (f1["variant"] == "w4a8")
             & (f1["protocol"] == "corrected")].iloc[0]
    assert row["status"] == "not computed"
    assert row["reason"] == ("incomplete pairs: w4a8 lacks macro_f1 for fold 2 seed 0, "
                             "fold 2 seed 1")
    report = (study / "reports" / "report.md").read_text()
    assert "w4a8 lacks macro_f1 for fold 2 seed 0" in report


def test_stats_outputs_and_claims(study):
    from qmoe.analysis.verdict import CLAIMS

    stats = study / "reports" / "stats"
    summary = json.loads((stats / "stats.json").read_text())
    assert summary["config"]["tost_margin"] == 0.01 and summary["config"]["n_resamples"] == 500
    assert summary["families"]["tost_f1"]["computed"] + summary["families"]["tost_f1"][
        "not_computed"] == 8
    claims = pd.read_csv(stats / "claims.csv")
    assert len(claims) == 2 * len(CLAIMS)
    assert len(list(stats.glob("ref_*.csv"))) == 6 and len(list(stats.glob("std_*.csv"))) == 5


def test_metrics_json_and_plot_data(study):
    metrics = json.loads((study / "reports" / "metrics.json").read_text())
    assert set(metrics["toy"]) == {"corrected", "faithful"}
    assert set(metrics["toy"]["corrected"]) == set(VARIANTS)
    plot = pd.read_csv(study / "reports" / "plots" / "f1_per_fold.csv")
    runs = pd.read_csv(study / "reports" / "tables" / "runs.csv")
    assert len(plot) == len(runs) and plot["f1"].tolist() == runs["macro_f1"].round(6).tolist()


def test_a_listed_run_without_a_folder_is_an_error_naming_it(tmp_path):
    make_tree(tmp_path / "data", variants=["fp32"])
    params = write_params(tmp_path / "params.yaml", variants=["fp32", "w2a8"])
    r = run_stage("aggregate", ["--runs", "data/runs", "--benchmarks", "data/benchmarks",
                                "--out", "reports/runs.csv"], params, tmp_path)
    assert r.returncode == 1
    assert "error: " in r.stderr and "variant=w2a8" in r.stderr and "protocol=corrected" in r.stderr
    assert not (tmp_path / "reports" / "runs.csv").exists()


def test_benchmark_and_run_keys_must_agree(tmp_path):
    make_tree(tmp_path / "data", variants=["fp32"])
    summary = tmp_path / "data/benchmarks/toy/faithful/fp32/summary.csv"
    pd.read_csv(summary).iloc[1:].to_csv(summary, index=False)
    params = write_params(tmp_path / "params.yaml", variants=["fp32"])
    r = run_stage("aggregate", ["--runs", "data/runs", "--benchmarks", "data/benchmarks",
                                "--out", "runs.csv"], params, tmp_path)
    assert r.returncode == 1 and "only in runs [(1, 42)]" in r.stderr


def test_margin_out_of_range_fails_before_any_output(tmp_path):
    make_tree(tmp_path / "data", variants=["fp32", "w4a8"])
    params = write_params(tmp_path / "params.yaml", variants=["fp32", "w4a8"], tost_margin=2.0)
    agg = run_stage("aggregate", ["--runs", "data/runs", "--benchmarks", "data/benchmarks",
                                  "--out", "runs.csv"], params, tmp_path)
    assert agg.returncode == 0, agg.stderr
    r = run_stage("stats", ["--table", "runs.csv", "--runs", "data/runs", "--benchmarks",
                            "data/benchmarks", "--out", "stats"], params, tmp_path)
    assert r.returncode == 1 and "stats.tost_margin" in r.stderr
    assert not (tmp_path / "stats").exists()


@pytest.mark.slow
def test_three_stages_as_subprocesses_give_identical_outputs_twice(tmp_path):
    make_tree(tmp_path / "data", variants=["fp32", "w4a8", "w8a8", "q16_reference", "moe",
                                           "moe_curiosity_log"])
    params = write_params(tmp_path / "params.yaml", variants=["fp32", "w4a8", "w8a8",
                                                              "q16_reference", "moe",
                                                              "moe_curiosity_log"])
    first = pipeline(tmp_path, params)
    assert [r.returncode for r in first] == [0, 0, 0], [r.stderr[-2000:] for r in first]
    snapshot = {p.relative_to(tmp_path): p.read_bytes()
                for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    second = pipeline(tmp_path, params)
    assert [r.returncode for r in second] == [0, 0, 0]
    again = {p.relative_to(tmp_path): p.read_bytes()
             for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    assert again.keys() == snapshot.keys()
    assert [k for k in snapshot if snapshot[k] != again[k]] == []


def test_run_folder_must_name_its_own_run(tmp_path):
    from qmoe.analysis import results

    make_tree(tmp_path / "data", variants=["fp32"])
    path = tmp_path / "data/runs/toy/corrected/fp32/metrics.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "variant": "w4a8"}))
    study = results.Study(("toy",), ("corrected",), ("fp32",))
    with pytest.raises(ValueError, match="variant is 'w4a8', expected 'fp32'"):
        results.runs_table(tmp_path / "data/runs", tmp_path / "data/benchmarks", study)


def test_latency_files_are_read_by_key(tmp_path):
    from qmoe.analysis import results

    make_tree(tmp_path / "data", variants=["fp32"], n_latency=7)
    where = results.Where("toy", "faithful", "fp32")
    lat = results.load_latency(tmp_path / "data/benchmarks", where)
    assert len(lat) == 3 * 7 and sorted(lat["fold"].unique()) == [1, 2, 3]
    np.save(where.under(tmp_path / "data/benchmarks") / "latency" / "fold1.npy", np.ones(3))
    with pytest.raises(ValueError, match="fold<k>_seed<s>.npy"):
        results.load_latency(tmp_path / "data/benchmarks", where)

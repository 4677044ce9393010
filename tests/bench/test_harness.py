"""stages/benchmark.py on tiny trained-looking run folders (architecture.md section 4)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from qmoe.analysis.results import SUMMARY_FIELDS
from qmoe.io import save_checkpoint
from qmoe.training.artefacts import rebuild
from qmoe.variants import resolve, to_dict

ROOT = Path(__file__).resolve().parents[2]
D, CLASSES, FOLDS = 12, 3, (1, 2)
VARIANTS = {
    "fp32": {"kind": "fp32"},
    "ptq_int8": {"kind": "ptq_int8", "engine": "auto"},
    "w4a8": {"kind": "bitlinear", "weight_bits": 4},
    "w8a8": {"kind": "bitlinear", "weight_bits": 8},
    "ternary_reference": {"kind": "ternary_reference", "act_threshold": 0.05, "weight_threshold": 0.15},
    "moe_curiosity_log": {"kind": "moe", "top_k": 1, "balance": "reference", "balance_alpha": 1e-3,
                          "curiosity": {"mode": "log", "mc_samples": 4}},
}
EXPERTS = ["ternary_reference", "w4a8", "w8a8"]
BENCH = {"threads": 1, "warmup": 2, "samples": 100, "block": 40, "batch_sizes": [1, 4],
         "batch_repeats": 3, "energy_samples": 100, "energy_repeats": 2}


def _features(root: Path) -> Path:
    g = np.random.default_rng(0)
    n = 10 * len(FOLDS)
    table = pd.DataFrame({"clip_id": [f"c{i:02d}" for i in range(n)],
                          "label_id": np.arange(n) % CLASSES, "fold": 1 + np.arange(n) % 2})
    emb = g.normal(size=(n, D)).astype(np.float32)
    emb_frame = pd.DataFrame(emb, columns=[f"emb_{j:04d}" for j in range(D)])
    table = pd.concat([table, emb_frame], axis=1)
    folder = root / "features"
    folder.mkdir()
    table.to_parquet(folder / "features.parquet")
    return folder


def _runs(root: Path, variant: str, protocol: str = "corrected") -> Path:
    """A run folder as the train stage writes it: one checkpoint per fold (seed 0) + metrics."""
    folder = root / "runs" / variant
    folder.mkdir(parents=True)
    runs = []
    for fold in FOLDS:
        meta = {"dataset": "toy", "protocol": protocol, "variant": variant,
                "variant_config": to_dict(resolve(variant, VARIANTS, EXPERTS)),
                "in_dim": D, "num_classes": CLASSES,
                "model": {"hidden_sizes": [8, 6], "dropout": 0.1}, "fold": fold, "seed": 0,
                "test_clip_ids": [f"c{i:02d}" for i in range(fold - 1, 20, 2)]}
        torch.manual_seed(fold)
        model = rebuild(meta).model
        save_checkpoint(folder / f"fold{fold}_seed0.pt", model.state_dict(), meta)
        runs.append({"fold": fold, "seed": 0, "macro_f1": 0.5 + fold / 10, "n_params": 123,
                     "train_energy_kwh": 1e-5 * fold})
    (folder / "metrics.json").write_text(json.dumps(
        {"dataset": "toy", "protocol": protocol, "variant": variant, "runs": runs}))
    return folder


def _params(root: Path, **bench) -> Path:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"benchmark": {**BENCH, **bench},
                                    "energy": {"country_iso_code": "IRL"}}))
    return path


def _stage():
    path = ROOT / "stages" / "benchmark.py"
    spec = importlib.util.spec_from_file_location("stage_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(monkeypatch, tmp_path: Path, variant: str, params: Path, runs: Path | None = None):
    """Run the stage in this process as DVC would; returns (exit code, out folder)."""
    from qmoe.cli import run_stage

    out = tmp_path / "bench" / variant
    runs = runs if runs is not None else tmp_path / "runs" / variant
    monkeypatch.setenv("QMOE_PARAMS", str(params))
    monkeypatch.setattr("sys.argv", ["benchmark.py", "--dataset", "toy", "--protocol", "corrected",
                                     "--variant", variant, "--features",
                                     str(tmp_path / "features"), "--runs", str(runs),
                                     "--out", str(out)])
    try:
        run_stage(_stage().main)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, out


def test_outputs_follow_the_contract_and_link_to_the_device(tmp_path, monkeypatch):
    _features(tmp_path)
    _runs(tmp_path, "moe_curiosity_log")
    code, out = _run(monkeypatch, tmp_path, "moe_curiosity_log", _params(tmp_path))
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "batch_latency.csv", "device.json", "energy.csv", "latency", "order.json", "routing.csv",
        "summary.csv"]
    device = json.loads((out / "device.json").read_text())
    summary = pd.read_csv(out / "summary.csv")
    assert set(SUMMARY_FIELDS) <= set(summary.columns)
    assert set(summary.columns) - set(SUMMARY_FIELDS) == {
        "energy_blocks", "energy_block_s", "energy_per_inference_mj_iqr", "device_id", "device"}
    assert (summary["device_id"] == device["device_id"]).all() and device["threads"] == 1
    assert list(zip(summary.fold, summary.seed)) == [(1, 0), (2, 0)]
    for fold in FOLDS:
        samples = np.load(out / "latency" / f"fold{fold}_seed0.npy")
        assert samples.dtype == np.float64 and samples.shape == (100,) and (samples > 0).all()
        row = summary[summary.fold == fold].iloc[0]
        assert row.latency_n == 100 and row.latency_median_ms == pytest.approx(np.median(samples))
        assert row.latency_p99_ms == pytest.approx(np.percentile(samples, 99))
    # energy: every block kept (energy.csv), interleaved across models; per inference = the
    # median block / n; break-even and ratios follow from it
    blocks = pd.read_csv(out / "energy.csv")
    assert list(zip(blocks.fold, blocks.block)) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert (blocks.n == 100).all() and (blocks.energy_kwh > 0).all()
    assert (blocks.device_id == device["device_id"]).all()
    median_kwh = blocks.groupby("fold").energy_kwh.median().to_numpy()
    assert summary.energy_block_kwh.to_numpy() == pytest.approx(median_kwh)
    assert (summary.energy_blocks == 2).all()
    per_j = summary.energy_block_kwh * 3.6e6 / 100
    assert summary.energy_per_inference_mj.to_numpy() == pytest.approx((per_j * 1e3).to_numpy())
    train_j = summary.train_energy_kwh * 3.6e6
    assert summary.break_even_inferences.to_numpy() == pytest.approx((train_j / per_j).to_numpy())
    assert summary.deploy_over_train_1e6.to_numpy() == pytest.approx(
        (1e6 * per_j / train_j).to_numpy())
    assert summary.f1_per_train_wh.to_numpy() == pytest.approx(
        (summary.macro_f1 / (summary.train_energy_kwh * 1e3)).to_numpy())
    assert summary.energy_method.str.startswith("codecarbon ").all()
    assert (summary.energy_block_kwh > 0).all()
    # routing: one row per expert per model, frequencies summing to 1
    routing = pd.read_csv(out / "routing.csv")
    assert list(routing.expert_name[:3]) == ["ternary_reference", "w4a8", "w8a8"]
    assert routing.groupby("fold").frequency.sum().to_numpy() == pytest.approx([1.0, 1.0])
    batch = pd.read_csv(out / "batch_latency.csv")
    assert sorted(batch.batch_size.unique()) == [1, 4] and (batch.n == 3).all()
    order = json.loads((out / "order.json").read_text())
    assert order["device_id"] == device["device_id"] and order["block"] == 40
    assert [b["block"] for b in order["blocks"]] == [0, 0, 1, 1, 2, 2]


def test_sizes_are_those_of_each_deployed_artefact(tmp_path, monkeypatch):
    from qmoe.quant import packing
    from qmoe.training.artefacts import load_trained

    _features(tmp_path)
    for variant in ("fp32", "ptq_int8", "w4a8"):
        runs = _runs(tmp_path, variant)
        code, out = _run(monkeypatch, tmp_path, variant, _params(tmp_path))
        assert code == 0 and "routing.csv" not in {p.name for p in out.iterdir()}
        summary = pd.read_csv(out / "summary.csv")
        for row in summary.itertuples():
            net = load_trained(runs / f"fold{row.fold}_seed{row.seed}.pt").model.net
            assert row.size_packed_bytes == len(packing.serialise(packing.artefact_state(net)))
            reference = packing.reference_size_bytes(net)
            expected_kb = (reference if reference is not None
                           else packing.state_dict_bytes(net)) / 1000
            assert row.size_reference_kb == pytest.approx(expected_kb)
        if variant == "fp32":
            assert (summary.size_packed_bytes == summary.size_fp32_state_dict_bytes).all()


def _error(capsys) -> str:
    return capsys.readouterr().err


def test_missing_checkpoint_is_named_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    _features(tmp_path)
    runs = _runs(tmp_path, "fp32")
    (runs / "fold2_seed0.pt").unlink()
    code, out = _run(monkeypatch, tmp_path, "fp32", _params(tmp_path))
    assert code == 1 and not out.exists()
    assert f"checkpoint {runs / 'fold2_seed0.pt'} not found" in _error(capsys)


def test_corrupt_checkpoint_is_named(tmp_path, monkeypatch, capsys):
    _features(tmp_path)
    runs = _runs(tmp_path, "fp32")
    (runs / "fold1_seed0.pt").write_bytes(b"not a checkpoint")
    code, out = _run(monkeypatch, tmp_path, "fp32", _params(tmp_path))
    assert code == 1 and not out.exists()
    assert f"checkpoint {runs / 'fold1_seed0.pt'} is corrupt" in _error(capsys)


@pytest.mark.parametrize("field, value, message", [
    ("threads", 0, "benchmark.threads: 0 not in [1, 256]"),
    ("samples", 50, "benchmark.samples: 50 not in [100, 10000000]"),
    ("energy_samples", 10, "benchmark.energy_samples: 10 not in"),
    ("block", 500, "benchmark.block: 500 not in [1, samples=100]"),
])
def test_out_of_range_settings_name_the_field(tmp_path, monkeypatch, capsys, field, value, message):
    _features(tmp_path)
    _runs(tmp_path, "fp32")
    code, out = _run(monkeypatch, tmp_path, "fp32", _params(tmp_path, **{field: value}))
    assert code == 1 and not out.exists()
    assert message in _error(capsys)


def test_metrics_without_training_energy_are_refused(tmp_path, monkeypatch, capsys):
    _features(tmp_path)
    runs = _runs(tmp_path, "fp32")
    metrics = json.loads((runs / "metrics.json").read_text())
    metrics["runs"][1]["train_energy_kwh"] = 0.0
    (runs / "metrics.json").write_text(json.dumps(metrics))
    code, out = _run(monkeypatch, tmp_path, "fp32", _params(tmp_path))
    assert code == 1 and not out.exists()
    assert "runs[1] train_energy_kwh=0.0 is not a measurement" in _error(capsys)


def test_codecarbon_failure_is_an_error_with_no_output(tmp_path, monkeypatch, capsys):
    import codecarbon

    class Broken:
        def __init__(self, **kwargs):
            raise PermissionError("cannot read /proc/stat")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Broken)
    _features(tmp_path)
    _runs(tmp_path, "fp32")
    code, out = _run(monkeypatch, tmp_path, "fp32", _params(tmp_path))
    assert code == 1 and not out.exists()
    message = "CodeCarbon could not start its offline tracker: cannot read /proc/stat"
    assert message in _error(capsys)


def test_codecarbon_zero_energy_is_not_written_as_a_measurement(tmp_path, monkeypatch, capsys):
    import codecarbon

    class Zero:
        _hardware = [type("CPU", (), {"_mode": "cpu_load", "_tdp": 8})()]

        def __init__(self, **kwargs):
            pass

        def start(self):
            pass

        def stop(self):
            pass

        def start_task(self, name):
            pass

        def stop_task(self):
            return type("Data", (), {"energy_consumed": 0.0, "emissions": 0.0, "duration": 0.1})()

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Zero)
    _features(tmp_path)
    _runs(tmp_path, "fp32")
    code, out = _run(monkeypatch, tmp_path, "fp32", _params(tmp_path))
    assert code == 1 and not out.exists()
    assert "zero energy for task 'inference fold1_seed0 block 1/2 x100'" in _error(capsys)


def test_runs_of_another_variant_are_refused(tmp_path, monkeypatch, capsys):
    _features(tmp_path)
    runs = _runs(tmp_path, "w4a8")
    code, out = _run(monkeypatch, tmp_path, "fp32", _params(tmp_path), runs=runs)
    assert code == 1 and not out.exists()
    assert "variant is 'w4a8', expected 'fp32'" in _error(capsys)


def test_energy_row_arithmetic_is_exact():
    from qmoe.bench.energy import EnergyReading
    from qmoe.bench.harness import energy_row

    def reading(kwh):
        return EnergyReading("t", energy_kwh=kwh, emissions_kg=1e-7, duration_s=kwh * 2e5,
                             method="codecarbon x")

    # blocks of 3.6 J, 7.2 J and 36 J over 1000 calls: median 7.2 mJ per call; training 1 Wh
    readings = [reading(1e-6), reading(1e-5), reading(2e-6)]
    row = energy_row({"train_energy_kwh": 1e-3, "macro_f1": 0.9}, readings, n=1000)
    assert row["energy_per_inference_mj"] == pytest.approx(7.2, rel=1e-12)
    assert row["energy_per_inference_mj_iqr"] == pytest.approx((36 + 7.2) / 2 - (3.6 + 7.2) / 2)
    assert row["energy_block_kwh"] == 2e-6 and row["energy_block_s"] == pytest.approx(0.4)
    assert row["break_even_inferences"] == pytest.approx(3600 / 7.2e-3, rel=1e-12)
    assert row["deploy_over_train_1e3"] == pytest.approx(7.2 / 3600, rel=1e-12)
    assert row["deploy_over_train_1e6"] == pytest.approx(7.2e3 / 3600, rel=1e-12)
    assert row["f1_per_inference_mj"] == pytest.approx(0.9 / 7.2, rel=1e-12)
    assert row["f1_per_train_wh"] == pytest.approx(0.9, rel=1e-12)
    assert row["energy_method"] == "codecarbon x" and row["energy_blocks"] == 3


def test_energy_blocks_with_different_methods_are_refused():
    from qmoe.bench.energy import EnergyReading
    from qmoe.bench.harness import energy_row

    readings = [EnergyReading("t", 1e-6, 1e-7, 0.1, "codecarbon a"),
                EnergyReading("t", 1e-6, 1e-7, 0.1, "codecarbon b")]
    with pytest.raises(RuntimeError, match="different methods"):
        energy_row({"train_energy_kwh": 1e-3, "macro_f1": 0.9}, readings, n=10)

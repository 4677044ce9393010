"""Shared fixtures: variant configs from the repository's params.yaml, and a small synthetic
results tree (data/raw, data/runs, data/train_cost, data/benchmarks), written through
qmoe.contract as the stages write them (docs/architecture.md 1-4).
Fixtures of one test folder live in that folder's conftest.py (tests/deploy/conftest.py)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmoe import variants
from qmoe.contract.benchmarks import BenchFolder
from qmoe.contract.raw import MANIFEST_COLUMNS, RawFolder, write_manifest
from qmoe.contract.runs import (
    COST_FIELDS,
    ModelKey,
    RunFolder,
    TrainOutputs,
    write_metrics,
    write_protocol,
)
from qmoe.contract.study import RunId
from qmoe.io import save_json

# test modules import tests/repo_params.py (params.yaml and configs built from it) by name
sys.path.insert(0, str(Path(__file__).resolve().parent))
from repo_params import PARAMS, config  # noqa: E402

CLASSES = ["dog", "rain", "siren"]
SEEDS = {"corrected": [0, 1], "faithful": [42]}
FOLDS, PER_FOLD = (1, 2, 3), 12
SIZES = {"fp32": 48_000, "w4a8": 7_000, "w8a8": 13_000, "q16_reference": 48_000, "fp16": 24_000}


def variant_config(name: str, **changes) -> dict:
    """metrics.json `variant_config` of params.yaml variant `name`, with `changes` to its entry."""
    table = {**PARAMS["variants"], name: {**PARAMS["variants"][name], **changes}}
    return variants.to_dict(variants.resolve(name, table, PARAMS["study"]["experts"]))


@pytest.fixture(scope="session")
def config_of():
    """variant_config(name, **changes) -> the dict the train stage records."""
    return variant_config


@pytest.fixture(scope="session")
def with_facts():
    """runs frame -> the same with the fact columns aggregate writes (params.yaml configs)."""

    def add(runs: pd.DataFrame, configs: dict | None = None) -> pd.DataFrame:
        cfgs = {v: (configs or {}).get(v) or variant_config(v) for v in runs["variant"].unique()}
        facts = {v: variants.facts(variants.from_dict(c))._asdict() for v, c in cfgs.items()}
        return runs.assign(
            **{k: [facts[v][k] for v in runs["variant"]] for k in variants.VariantFacts._fields}
        )

    return add


def _raw(root: Path, dataset: str) -> None:
    folder = RawFolder(root / "raw" / dataset)
    folder.root.mkdir(parents=True)
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
    write_manifest(folder.root, pd.DataFrame(rows, columns=MANIFEST_COLUMNS))
    save_json(
        folder.dataset_json,
        {
            "name": dataset,
            "source": {"url": "synthetic"},
            "licence": "CC0",
            "classes": CLASSES,
            "folds": 3,
            "file_count": len(rows),
            "archive_sha256": "0" * 64,
            "rejects": [],
        },
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
        "n_train": 20,
        "n_val": 4,
        "n_test": PER_FOLD,
        "n_params": 1_193_930,
    }


def _cost(rng: np.random.Generator, fold: int, seed: int) -> dict:
    """One model's data/train_cost entry (measured: outside the DVC-hashed run folder)."""
    values = (fold, seed, 3.0 + rng.random(), 1e-5 * (1 + rng.random()), 3e-6)
    return dict(zip(COST_FIELDS, values, strict=True))


def _predictions(rng, variant: str, fold: int, seed: int) -> pd.DataFrame:
    label = np.arange(PER_FOLD) % 3
    pred = np.where(rng.random(PER_FOLD) < 0.8, label, (label + 1) % 3)
    frame = pd.DataFrame(
        {
            "fold": fold,
            "seed": seed,
            "label": label,
            "pred": pred,
            # the manifest's clips of this fold (_raw: fold 1 + i % 3)
            "clip_id": [f"c{i:03d}" for i in range(fold - 1, PER_FOLD * len(FOLDS), len(FOLDS))],
        }
    )
    if variant.startswith("moe"):
        frame["expert"] = rng.integers(0, 3, PER_FOLD)
        frame["gate_prob"] = np.where(frame["expert"] == 2, 0.5, 0.7) + 0.05 * rng.random(PER_FOLD)
    if "curiosity" in variant:
        frame["uncertainty"] = rng.gamma(2.0, 0.01, PER_FOLD)
    return frame


# per-inference samples of each (runtime folder, regime): the warm ONNX ones times these factors
SAMPLE_SCALES = {
    ("latency", "warm"): 1.0,
    ("latency", "after_backbone"): 1.5,
    ("latency_torch", "warm"): 5.0,
    ("latency_torch", "after_backbone"): 6.0,
}


def _bench_row(rng, variant: str, m: dict, lat: np.ndarray) -> dict:
    e_mj = 0.3 + 0.05 * rng.random() + (0.1 if variant == "w8a8" else 0)
    return {
        "fold": m["fold"],
        "seed": m["seed"],
        "latency_runtime": "onnxruntime",
        "latency_n": lat.size,
        "latency_median_ms": float(np.median(lat)),
        "after_backbone_latency_median_ms": 1.5 * float(np.median(lat)),
        "torch_latency_median_ms": 5.0 * float(np.median(lat)),
        "torch_after_backbone_latency_median_ms": 6.0 * float(np.median(lat)),
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
        "size_packed_bytes": SIZES.get(variant, 60_000),
        "size_fp32_state_dict_bytes": 48_000,
        "size_reference_kb": 50.0,
        "n_params": m["n_params"],
        "macro_f1": m["macro_f1"],
        "deployed_macro_f1": m["macro_f1"] + 0.002 * rng.standard_normal(),
        "f1_per_inference_mj": m["macro_f1"] / e_mj,
    }


def make_tree(
    data: Path,
    variants_: list[str],
    dataset: str = "toy",
    seed: int = 0,
    skip: tuple = (),
    seeds: dict | None = None,
    n_latency: int = 150,
    configs: dict | None = None,
) -> None:
    """A small study under `data`; `skip` drops (variant, fold); `configs` replaces a variant's
    recorded `variant_config` (default: its params.yaml entry)."""
    rng = np.random.default_rng(seed)
    _raw(data, dataset)
    for protocol, model_seeds in (seeds or SEEDS).items():
        bench = BenchFolder(data / "benchmarks" / dataset / protocol)
        for variant in variants_:
            run = RunId(dataset, protocol, variant)
            folder = RunFolder(run.under(data / "runs"))
            folder.root.mkdir(parents=True)
            for latency, regime in SAMPLE_SCALES:
                (bench.variant(variant) / latency / regime).mkdir(parents=True)
            metrics, costs, preds, summary, routing = [], [], [], [], []
            for fold in FOLDS:
                for s in model_seeds:
                    if (variant, fold) in skip:
                        continue
                    m = _model(rng, variant, fold, s)
                    lat = rng.lognormal(
                        np.log(0.2), 0.1 if "curiosity" in variant else 0.3, n_latency
                    )
                    for (latency, regime), k in SAMPLE_SCALES.items():
                        key = ModelKey(fold, s)
                        np.save(bench.samples(variant, f"{latency}/{regime}", key), k * lat)
                    metrics.append(m)
                    costs.append(_cost(rng, fold, s))
                    preds.append(_predictions(rng, variant, fold, s))
                    summary.append(_bench_row(rng, variant, m, lat))
                    routing += [
                        {"fold": fold, "seed": s, "expert": e, "expert_name": n, "frequency": 1 / 3}
                        for e, n in enumerate(PARAMS["study"]["experts"])
                    ]
            config = (configs or {}).get(variant) or variant_config(variant)
            write_metrics(folder.root, run, config, CLASSES, metrics)
            costs_root = data / "train_cost" / dataset / protocol
            costs_root.mkdir(parents=True, exist_ok=True)
            save_json(
                TrainOutputs(folder.root.parent, costs_root).cost(variant),
                run._asdict()
                | {"energy_method": "codecarbon CPU estimated (TDP x load)", "runs": costs},
            )
            pd.concat(preds).to_csv(folder.predictions, index=False)
            pd.DataFrame(summary).to_csv(bench.summary(variant), index=False)
            if variant.startswith("moe"):
                pd.DataFrame(routing).to_csv(bench.routing(variant), index=False)
            save_json(bench.device(variant), {"cpu": "toy CPU", "threads": 1})
            _run_json(bench)
        outputs = TrainOutputs(*(data / k / dataset / protocol for k in ("runs", "train_cost")))
        _protocol_record(outputs, dataset, protocol)


def _protocol_record(outputs: TrainOutputs, dataset: str, protocol: str) -> None:
    """The train stage's record of what the protocol does (the report's protocol text)."""
    from qmoe.training.fit import TrainConfig
    from qmoe.training.protocols import make_protocol

    lines = make_protocol(protocol, config(TrainConfig, "train")).describe()
    write_protocol(outputs, dataset, protocol, lines)


def _run_json(bench: BenchFolder) -> None:
    """run.json of a benchmark: what the stats stage reads for the latency claims' scope."""
    snap = {"time": 0.0, "load_average": [0.5, 0.5, 0.5], "steal_ticks": 0}
    run = {
        "machine": {
            "start": snap,
            "end": snap | {"time": 60.0, "steal_ticks": 30},
            "clock_ticks_per_s": 100,
            "logical_cpus": 2,
            "after_backbone": {"l2_bytes": 524288, "buffer_bytes": 2097152},
        },
        "config": {"regimes": ["warm", "after_backbone"]},
        "versions": {"onnxruntime": "1.31.1", "torch": "2.9.1"},
    }
    save_json(bench.run_json, run)


@pytest.fixture(scope="session")
def results_tree():
    """make_tree(data, variants, dataset="toy", seed=0, skip=(), seeds=None, n_latency=150,
    configs=None): a synthetic results tree of 3 folds, seeds {corrected: [0, 1], faithful:
    [42]}, with each run's variant_config."""
    return make_tree

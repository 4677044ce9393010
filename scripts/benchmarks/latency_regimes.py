"""Measurements behind the benchmark's cache regimes and MoE forms (numbers quoted in the notes;
timing belongs here, not in the test suite).

    python scripts/benchmarks/latency_regimes.py regimes     # warm vs after_backbone, fp32 heads
    python scripts/benchmarks/latency_regimes.py stage --protocol corrected   # the stage's cost

`regimes`: two fp32 heads as ONNX graphs, one that fits the pinned core's L2 (256 -> 128 -> 10)
and the study's (1280 -> 640 -> 320 -> 10, 3.3 MB), timed in both regimes in one ABBA
round-robin (qmoe.bench.blocks) with the flush of params `benchmark`; prints each median and
after_backbone / warm.

`stage`: the benchmark stage on a synthetic run tree of the study's shapes (untrained models of
every variant of params.yaml, ESC-10's 5 folds x 80 test clips, one seed), exported by the export
stage's code and timed with params `benchmark` (both regimes, MoE parts): the wall time of
benchmark_tree, and of each phase in its log.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from qmoe import models, variants
from qmoe.bench import blocks, machine, suite, tree
from qmoe.bench.runners import Target
from qmoe.contract.benchmarks import Regime
from qmoe.contract.checkpoint import CheckpointMeta, save_checkpoint
from qmoe.contract.runs import ModelKey
from qmoe.contract.study import runs_of
from qmoe.deploy import graph as G
from qmoe.deploy import runtime
from qmoe.deploy.folder import deploy_tree, export_params
from qmoe.energy import EnergyConfig
from qmoe.executor import ExecutionConfig
from qmoe.io import from_section, save_json
from qmoe.training.artefacts import Standardized

ROOT = Path(__file__).resolve().parents[2]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
D, C, FOLDS, PER_FOLD = 1280, 10, 5, 80


def _fp32_head(widths: list[int], rng: np.random.Generator):
    g, h = G.Graph(), "x"
    for i, (k, n) in enumerate(zip(widths, widths[1:])):
        w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        h = G.linear(g, h, w, np.zeros(n, np.float32))
        h = g.op("Relu", [h]) if i < len(widths) - 2 else h
    g.alias(h, "logits")
    return G.to_model(
        g, [G.value("x", G.FLOAT, ["batch", widths[0]])], [G.value("logits", G.FLOAT, ["batch", C])]
    )


def regimes_check(turns: int, block: int) -> None:
    cfg = from_section(suite.SuiteConfig, PARAMS["benchmark"], "benchmark")
    rng = np.random.default_rng(0)
    heads = {"fits L2 (256-128-10)": [256, 128, C], "study (1280-640-320-10)": [D, 640, 320, C]}
    with machine.MachineLock():
        cpu = machine.pin_to_core(cfg.cpu)
        flush, record = suite.after_backbone(cpu, cfg)
        prepared = []
        for name, widths in heads.items():
            sess = runtime.session(_fp32_head(widths, rng), 1)
            x = rng.standard_normal((PER_FOLD, widths[0])).astype(np.float32)
            fns = [lambda r=r, s=sess: s.run(None, {"x": r}) for r in np.split(x, PER_FOLD)]
            target = Target(name, ModelKey(1, 0), "onnxruntime")
            blocks.warm(fns, 200)
            prepared.append(blocks.Prepared(target, {1: fns}))
        timed = (Regime.WARM, Regime.AFTER_BACKBONE)
        per_turn = {p.target: block for p in prepared}
        start = machine.snapshot(cpu)
        raw, _ = blocks.round_robin(prepared, 1, per_turn, turns, timed, flush)
        end = machine.snapshot(cpu)
    print(f"cpu {cpu}, flush {record}, load {start['load_average']} -> {end['load_average']}")
    for p in prepared:
        warm, cold = (float(np.median(raw[(p.target, r)])) / 1e3 for r in timed)
        print(
            f"{p.target.variant}: ONNX Runtime {runtime.ort_version()}, batch 1, median "
            f"warm {warm:.1f} us, after_backbone {cold:.1f} us: x{cold / warm:.2f} "
            f"({turns} rounds x {block} calls each)"
        )


def _tree(root: Path, protocol: str) -> dict[str, Path]:
    """features.parquet and runs/<variant>/ of untrained models of every study variant."""
    study = PARAMS["study"]
    rng = np.random.default_rng(0)
    n = FOLDS * PER_FOLD
    emb = (rng.standard_normal((n, D)) * 2 + 1).astype(np.float32)
    table = pd.DataFrame({"clip_id": [f"c{i:03d}" for i in range(n)]})
    table["fold"], table["label_id"] = np.arange(n) % FOLDS + 1, np.arange(n) % C
    table = pd.concat(
        [table, pd.DataFrame(emb, columns=[f"emb_{j:04d}" for j in range(D)])], axis=1
    )
    (root / "features").mkdir(parents=True)
    table.to_parquet(root / "features" / "features.parquet")
    mlp = models.MLPConfig(D, C, tuple(PARAMS["model"]["hidden_sizes"]), 0.1)
    xt = torch.from_numpy(emb)
    for name in study["variants"] + study["moe_variants"]:
        cfg = variants.resolve(name, PARAMS["variants"], study["experts"])
        out = root / "runs" / name
        out.mkdir(parents=True)
        runs, preds = [], []
        for fold in range(1, FOLDS + 1):
            torch.manual_seed(fold)
            test = table.index[table["fold"] == fold]
            model = Standardized(models.build(cfg, mlp), xt.mean(0), xt.std(0))
            ids = tuple(table.loc[test, "clip_id"])
            meta = CheckpointMeta(
                "synthetic", protocol, name, cfg, D, C, tuple(map(str, range(C))),
                mlp.hidden_sizes, 0.1, fold, 0, 1, 1, ids,
            )  # fmt: skip
            save_checkpoint(out / f"fold{fold}_seed0.pt", model.state_dict(), meta.to_dict())
            runs.append({"fold": fold, "seed": 0, "macro_f1": 0.1, "n_params": 1})
            preds.append(
                pd.DataFrame(
                    {"fold": fold, "seed": 0, "clip_id": ids, "label": table.loc[test, "label_id"]}
                )
            )
        save_json(
            out / "metrics.json",
            {"dataset": "synthetic", "protocol": protocol, "variant": name, "runs": runs},
        )
        pd.concat(preds).assign(pred=0).to_csv(out / "predictions.csv", index=False)
    return {"features": root / "features", "runs": root / "runs"}


class _NoMeter:
    """CodeCarbon stand-in (the cost of its start-up is not the benchmark's timing loop's)."""

    method = "not measured (scripts/benchmarks)"

    def measure(self, task):
        import contextlib

        @contextlib.contextmanager
        def reading():
            class R:
                duration_s, energy_kwh = 1.0, 1e-9

            yield R()

        return reading()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def stage_cost(protocol: str) -> None:
    study = PARAMS["study"]
    names = tuple(study["variants"] + study["moe_variants"])
    cfg = from_section(suite.SuiteConfig, PARAMS["benchmark"], "benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = _tree(root, protocol)
        t0 = time.perf_counter()
        deploy_tree(
            runs_of("synthetic", protocol, names),
            export_params(PARAMS["export"]),
            t["features"],
            t["runs"],
            root / "deployed",
            ExecutionConfig("local", None),
        )
        t1 = time.perf_counter()
        tree.benchmark_tree(
            runs_of("synthetic", protocol, names),
            cfg,
            from_section(EnergyConfig, PARAMS["energy"], "energy"),
            t["features"],
            t["runs"],
            root / "deployed",
            root / "bench",
            _NoMeter,
        )
        t2 = time.perf_counter()
        run = yaml.safe_load((root / "bench" / "run.json").read_text())
    m = run["machine"]
    print(
        f"{protocol}: export {t1 - t0:.1f} s; benchmark_tree {t2 - t1:.1f} s ({len(names)} "
        f"variants x {FOLDS} models, regimes {list(cfg.regimes)}, front end not timed); load "
        f"{m['start']['load_average']} -> {m['end']['load_average']}, flush {m['after_backbone']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["regimes", "stage"])
    ap.add_argument("--protocol", default="corrected", choices=["corrected", "faithful"])
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--block", type=int, default=200)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    if args.what == "regimes":
        regimes_check(args.turns, args.block)
    else:
        stage_cost(args.protocol)


if __name__ == "__main__":
    main()

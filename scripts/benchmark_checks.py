"""Side-by-side checks of the benchmark harness on trained models (numbers quoted in the notes).

Usage (after the train stage has run on a dataset, e.g. esc10):
    python scripts/benchmark_checks.py --runs data/runs/esc10/corrected \
        --features data/features/esc10

1. Repeatability: two separate harness runs (each with its own warm-up) on the same fp32 model;
   their medians should agree within 5 %.
2. ptq_int8 / fp32 batch-1 latency in one round robin, for each int8 engine, eager and
   TorchScript-frozen (where the deployed model scripts), and at batch 64.
3. Packed artefact sizes of every variant found, against the FP32 state dict.
"""

from __future__ import annotations

import argparse
import copy
import json
import warnings
from pathlib import Path

import pandas as pd
import torch

from qmoe.bench import harness, timing
from qmoe.quant import packing, ptq

WARMUP, BLOCK = 100, 100


def _item(runs: Path, variant: str, table: pd.DataFrame) -> harness.Loaded:
    metrics = json.loads((runs / variant / "metrics.json").read_text())["runs"]
    return harness.load_models(runs / variant, metrics[:1], table)[0]


def _medians(models: dict, x: torch.Tensor, samples: int) -> dict[str, float]:
    rr = timing.round_robin_latency(models, {k: x for k in models}, WARMUP, samples, BLOCK)
    return {k: timing.summarize(v).median_ms for k, v in rr.samples_ms.items()}


def _scripted(model: torch.nn.Module) -> torch.nn.Module:
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.script(copy.deepcopy(model).eval()))


def repeatability(fp32: harness.Loaded, samples: int) -> None:
    a = _medians({"fp32": fp32.model.model}, fp32.x_test, samples)["fp32"]
    b = _medians({"fp32": fp32.model.model}, fp32.x_test, samples)["fp32"]
    print(
        f"1. fp32 median, harness run A {a:.4f} ms, run B {b:.4f} ms: "
        f"|A - B| / A = {abs(a - b) / a:.2%} (goal <= 5 %)"
    )


def int8_ratio(fp32: harness.Loaded, samples: int) -> None:
    eager = fp32.model.model
    models = {"fp32": eager, "fp32 torchscript": _scripted(eager)}
    for engine in ("x86", "fbgemm", "onednn", "qnnpack"):
        int8 = ptq.dynamic_int8(copy.deepcopy(eager), engine)
        models[f"int8 {engine}"] = int8
        if engine == "x86":
            models["int8 x86 torchscript"] = _scripted(int8)
    med = {}
    for name, model in models.items():  # the engine is global: set it before each model's turn
        engine = name.split()[1] if name.startswith("int8") else "x86"
        torch.backends.quantized.engine = engine
        med[name] = _medians({name: model}, fp32.x_test, samples)[name]
    x64 = fp32.x_test[torch.arange(64) % len(fp32.x_test)]
    torch.backends.quantized.engine = "x86"
    b64 = {
        k: timing.batch_latency(models[k], x64, 64, 10, 200).median_ms
        for k in ("fp32", "int8 x86", "fp32 torchscript", "int8 x86 torchscript")
    }
    print("2. batch-1 median latency, 1 thread (ratio to eager fp32 / to scripted fp32):")
    for k, v in med.items():
        print(f"   {k:22s} {v:.4f} ms  {v / med['fp32']:.2f}x  {v / med['fp32 torchscript']:.2f}x")
    print("   batch-64 median: " + ", ".join(f"{k} {v:.3f} ms" for k, v in b64.items()))
    print(
        f"   int8/fp32 eager: b1 {med['int8 x86'] / med['fp32']:.2f}, "
        f"b64 {b64['int8 x86'] / b64['fp32']:.2f}; TorchScript both: "
        f"b1 {med['int8 x86 torchscript'] / med['fp32 torchscript']:.2f}, "
        f"b64 {b64['int8 x86 torchscript'] / b64['fp32 torchscript']:.2f} (goal <= 0.7)"
    )


def sizes(runs: Path, table: pd.DataFrame, fp32: harness.Loaded) -> None:
    fp32_bytes = packing.state_dict_bytes(fp32.model.model.net)
    print(f"3. packed artefacts against the FP32 state dict ({fp32_bytes:,d} B):")
    for folder in sorted(p for p in runs.iterdir() if (p / "metrics.json").is_file()):
        net = _item(runs, folder.name, table).model.model.net
        size = len(packing.serialise(packing.artefact_state(net)))
        print(f"   {folder.name:22s} {size:>10,d} B = {size / fp32_bytes:.3f} x FP32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    table = pd.read_parquet(args.features / "features.parquet")
    fp32 = _item(args.runs, "fp32", table)
    repeatability(fp32, args.samples)
    int8_ratio(fp32, args.samples)
    sizes(args.runs, table, fp32)


if __name__ == "__main__":
    main()

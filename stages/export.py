"""Export every trained model of one (dataset, protocol) to its ONNX artefact, check it against its
checkpoint and score it at batch 1 on its test fold. DVC stage: export.

Outputs (docs/architecture.md section 3b, qmoe.contract.deployed): <out>/<variant>/ holds
fold{k}_seed{s}.onnx and the variant's tables, <out>/export.json (nothing measured: identical
artefacts never rerun the benchmark); the seconds taken go to --timings. A model whose artefact
disagrees with it fails the stage, naming it.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from qmoe.cli import read_params, run_stage
from qmoe.contract.study import Study
from qmoe.executor import ExecutionConfig, warm_pool
from qmoe.io import atomic_path, from_section, save_json

log = logging.getLogger("stages.export")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--protocol", required=True)
    ap.add_argument("--features", type=Path, required=True, help="data/features/<dataset>")
    ap.add_argument("--runs", type=Path, required=True, help="data/runs/<dataset>/<protocol>")
    ap.add_argument("--out", type=Path, required=True, help="data/deployed/<dataset>/<protocol>")
    ap.add_argument("--timings", type=Path, required=True, help="seconds taken (read by no stage)")
    args = ap.parse_args()

    params = read_params()
    study = from_section(Study, params.get("study"), "study")
    execution = from_section(ExecutionConfig, params.get("execution"), "execution")
    warm_pool(execution, ["qmoe.deploy.folder"])  # its imports (torch, onnx) overlap ours
    from qmoe.deploy.folder import deploy_tree, export_params

    t0 = time.perf_counter()
    frame = deploy_tree(
        study.runs(args.dataset, args.protocol),
        export_params(params.get("export")),
        args.features,
        args.runs,
        args.out,
        execution,
    )
    seconds = round(time.perf_counter() - t0, 2)
    with atomic_path(args.timings) as tmp:
        save_json(tmp, {"dataset": args.dataset, "protocol": args.protocol, "seconds": seconds})
    for variant, part in frame.groupby("variant", sort=False):
        log.info(
            "%s: deployed macro-F1 %.4f (torch, batch 1: %.4f), %.0f kB (%.3f of fp32), "
            "max |logit diff| %.2g; %s",
            variant,
            part["deployed_macro_f1"].mean(),
            part["torch_b1_macro_f1"].mean(),
            part["size_file_bytes"].mean() / 1e3,
            (part["size_file_bytes"] / part["size_fp32_file_bytes"]).mean(),
            part["max_abs_diff"].max(),
            part["artefact"].iloc[0],
        )


if __name__ == "__main__":
    run_stage(main)

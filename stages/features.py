"""Embed every clip of a raw dataset folder (mel -> image -> backbone). DVC stage: features.

Reads <raw>'s manifest (architecture.md 1, qmoe.contract.raw) and writes <out>'s feature table
(manifest columns + emb_0000..emb_{D-1}, manifest row order) and features.json
(architecture.md 2, qmoe.contract.features).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from qmoe.cli import read_params, run_stage
from qmoe.contract.features import FeatureFolder, write_table
from qmoe.contract.raw import read_manifest
from qmoe.executor import ExecutionConfig
from qmoe.features import (
    FeaturesConfig,
    embed_manifest,
    features_info,
    features_table,
    features_timings,
    mel_used,
)
from qmoe.io import atomic_dir, atomic_path, from_section, save_json

log = logging.getLogger("stages.features")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", type=Path, required=True, help="data/raw/<dataset>")
    ap.add_argument("--out", type=Path, required=True, help="data/features/<dataset>")
    ap.add_argument(
        "--timings",
        type=Path,
        required=True,
        help="wall and thread seconds (JSON), outside the hashed output folder",
    )
    args = ap.parse_args()

    params = read_params()
    cfg = from_section(FeaturesConfig, params.get("features"), "features")
    execution = from_section(ExecutionConfig, params.get("execution"), "execution")
    manifest = read_manifest(args.raw)
    log.info("%s: %d clips, backbone %s", args.raw, len(manifest), cfg.backbone)
    emb = embed_manifest(manifest, args.raw, cfg, execution=execution)
    table = features_table(manifest, emb.matrix)
    with atomic_dir(args.out) as tmp:
        write_table(tmp, table)
        save_json(
            FeatureFolder(tmp).info,
            {
                "dataset": args.raw.name,
                **features_info(cfg, emb, len(manifest)),
                "mel": mel_used(cfg.mel, manifest["sample_rate"]),  # f_max as capped
                "max_seconds": cfg.max_seconds,
            },
        )
    with atomic_path(args.timings) as tmp_timings:
        save_json(tmp_timings, {"dataset": args.raw.name, **features_timings(emb)})
    log.info("wrote %s (%d x %d embedding)", args.out, *emb.matrix.shape)


if __name__ == "__main__":
    run_stage(main)

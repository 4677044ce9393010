"""Embed every clip of a raw dataset folder (mel -> image -> backbone). DVC stage: features.

Reads <raw>/manifest.csv (architecture.md 1) and writes <out>/features.parquet (manifest columns +
emb_0000..emb_{D-1}, manifest row order) and <out>/features.json (architecture.md 2).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from qmoe.cli import read_params, run_stage
from qmoe.executor import ExecutionConfig
from qmoe.features import (
    FeaturesConfig,
    embed_manifest,
    features_info,
    features_table,
    features_timings,
    mel_used,
)
from qmoe.io import InputError, atomic_dir, atomic_path, from_section, save_json

log = logging.getLogger("stages.features")

NEEDED = ["clip_id", "path", "sample_rate"]  # the rest of the manifest is passed through
TEXT = {"clip_id": str, "path": str, "label_name": str, "source_id": str, "sha256": str}


def read_manifest(raw: Path) -> pd.DataFrame:
    path = raw / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found (run the download stage)")
    df = pd.read_csv(path, dtype=TEXT, keep_default_na=False, na_values=[""])
    missing = [c for c in NEEDED if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}")
    if df.empty:
        raise InputError(f"{path}: no clips")
    if df["path"].isna().any() or df["sample_rate"].isna().any():
        raise InputError(
            f"{path}: empty `path` or `sample_rate` in row(s) "
            f"{df.index[df['path'].isna() | df['sample_rate'].isna()].tolist()[:10]}"
        )
    return df


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
        table.to_parquet(tmp / "features.parquet", index=False)
        save_json(
            tmp / "features.json",
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

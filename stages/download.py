"""Fetch one dataset into data/raw/<dataset> (files/, manifest, dataset.json). Stage: download.

QMOE_MIRROR (folders separated by os.pathsep) is searched before the network; see
docs/architecture.md section 1 for the output contract.
"""

import argparse
import logging
from pathlib import Path

from qmoe import datasets
from qmoe.cli import read_params, run_stage
from qmoe.io import from_section

log = logging.getLogger("stages.download")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, help=f"one of {sorted(datasets.SPECS)}")
    ap.add_argument("--out", type=Path, required=True, help="output folder, data/raw/<dataset>")
    ap.add_argument(
        "--bundled",
        type=Path,
        default=None,
        help="the repository's committed datasets (data/external): read first",
    )
    args = ap.parse_args()

    cfg = from_section(datasets.DownloadConfig, read_params().get("download"), "download")
    meta = datasets.build(args.dataset, args.out, cfg, bundled=args.bundled)
    log.info("wrote %s: %d files, classes %s", args.out, meta["file_count"], meta["class_names"])


if __name__ == "__main__":
    run_stage(main)

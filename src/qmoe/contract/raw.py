"""data/raw/<dataset> (docs/architecture.md section 1): files/, manifest.csv and dataset.json, and
the one validating reader of the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from qmoe.io import InputError

# manifest.csv columns every dataset has, in order (ESC datasets add target, major_*, scrambled_*)
MANIFEST_COLUMNS = [
    "clip_id",
    "path",
    "label_id",
    "label_name",
    "fold",
    "source_id",
    "duration_s",
    "sample_rate",
    "sha256",
]
NEEDED = ["clip_id", "path", "sample_rate"]  # what the readers use; the rest is passed through
TEXT = {"clip_id": str, "path": str, "label_name": str, "source_id": str, "sha256": str}


class RawFolder(NamedTuple):
    """data/raw/<dataset>: what the download stage writes there."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def dataset_json(self) -> Path:
        return self.root / "dataset.json"

    def clip(self, path: str) -> Path:
        """A clip's file from its manifest `path` (relative to the raw folder)."""
        return self.root / path


def write_manifest(raw: Path, manifest: pd.DataFrame) -> None:
    manifest.to_csv(RawFolder(raw).manifest, index=False, lineterminator="\n")


def read_manifest(raw: Path) -> pd.DataFrame:
    """manifest.csv of `raw` (text columns as text); a missing file, column or value, or no clip
    at all, raises naming the file."""
    path = RawFolder(raw).manifest
    if not path.is_file():
        raise InputError(f"{path}: not found (run the download stage)")
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

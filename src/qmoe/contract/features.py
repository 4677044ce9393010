"""data/features/<dataset> (docs/architecture.md section 2): features.parquet and features.json,
and the one reader of the feature table."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd


class FeatureFolder(NamedTuple):
    """data/features/<dataset>: what the features stage writes there."""

    root: Path

    @property
    def table(self) -> Path:
        return self.root / "features.parquet"

    @property
    def info(self) -> Path:
        return self.root / "features.json"

    @property
    def files(self) -> list[Path]:
        """The folder's files as written (what the train stage's record digests)."""
        return [f for f in (self.table, self.info) if f.is_file()]


def write_table(folder: Path, table: pd.DataFrame) -> None:
    table.to_parquet(FeatureFolder(folder).table, index=False)


def read_table(folder: Path) -> pd.DataFrame:
    """The feature table of `folder`, as written (a protocol's view: training.protocols)."""
    path = FeatureFolder(Path(folder)).table
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature table not found (run the features stage)")
    return pd.read_parquet(path)

"""A tiny feature table as the features stage writes it, for the train grid's tests
(tests/conftest.py puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def feature_folder(root: Path, nan_clip: int | None = None) -> Path:
    """features.parquet as the features stage writes it: 3 classes x 3 folds x 6 clips, 12-d."""
    rng = np.random.default_rng(0)
    n, classes = 54, 3
    labels = np.arange(n) % classes
    x = (3 * rng.standard_normal((classes, 12)))[labels] + rng.standard_normal((n, 12))
    if nan_clip is not None:
        x[nan_clip] = np.nan
    table = pd.DataFrame(
        {
            "clip_id": [f"c{i:02d}" for i in range(n)],
            "label_id": labels,
            "label_name": [f"class{k}" for k in labels],
            "fold": np.arange(n) // 18 + 1,
            "source_id": [f"s{i}" for i in range(n)],
        }
    )
    emb = pd.DataFrame(x.astype(np.float32), columns=[f"emb_{i:04d}" for i in range(12)])
    folder = root / "features"
    folder.mkdir(parents=True, exist_ok=True)
    pd.concat([table, emb], axis=1).to_parquet(folder / "features.parquet", index=False)
    return folder

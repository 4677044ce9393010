"""Deployed weight bytes split into the hidden layers and the head, so compression can be compared
like with like.

The study's k-bit BitLinear models keep an FP32 head (reference 7.1) while the half-precision model
stores its head in 16 bits, so whole-file sizes compare different things. The export stage counts
the packed tensor bytes of each model's hidden layers apart from its head (the deployed table's
qmoe.contract.deployed.LAYER_COLUMNS, from qmoe.deploy.sizes); `layer_bytes` reads them. Sizes
depend on the shapes and the config only, so the first model of each variant stands for all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qmoe.analysis.results import variant_facts
from qmoe.contract.deployed import LAYER_COLUMNS, DeployedFolder

COLUMNS = ["dataset", "protocol", "variant", "body_bytes", "head_bytes", "weight_bits", "reason"]


def _deployed_row(path: Path, fold: int, seed: int) -> pd.Series | str:
    """The deployed table's row of one model, or why there is none."""
    if not path.is_file():
        return f"{path}: not found"
    table = pd.read_csv(path)
    if missing := sorted(set(LAYER_COLUMNS) - set(table.columns)):
        return f"{path}: no columns {missing} (rerun the export stage)"
    hit = table[(table["fold"] == fold) & (table["seed"] == seed)]
    return hit.iloc[0] if not hit.empty else f"{path}: no row of fold{fold}_seed{seed}"


def layer_bytes(deployed_root: Path, runs: pd.DataFrame, kinds: tuple[str, ...]) -> pd.DataFrame:
    """One row per (dataset, protocol, variant) of the single-model `kinds` in `runs`, from the
    export stage's tables under `deployed_root` (data/deployed)."""
    facts = variant_facts(runs)
    chosen = runs[runs["variant"].isin(facts.index[facts["kind"].isin(kinds)])]
    rows = []
    for (d, p, v), part in chosen.groupby(["dataset", "protocol", "variant"], sort=True):
        first = part.sort_values(["fold", "seed"]).iloc[0]
        path = DeployedFolder(Path(deployed_root) / d / p).table(v)
        found = _deployed_row(path, int(first["fold"]), int(first["seed"]))
        bits = facts.loc[v, "weight_bits"]
        row = {"dataset": d, "protocol": p, "variant": v, "weight_bits": bits}
        if isinstance(found, str):  # sizes are then 'not computed' with this reason
            row |= {"body_bytes": np.nan, "head_bytes": np.nan, "reason": found}
        else:
            body, head = (int(found[c]) for c in LAYER_COLUMNS)
            row |= {"body_bytes": body, "head_bytes": head, "reason": ""}
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)

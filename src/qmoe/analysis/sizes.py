"""Deployed weight bytes split into the hidden layers and the head, so compression can be compared
like with like.

The study's k-bit BitLinear models keep an FP32 head (reference 7.1) while the half-precision model
stores its head in 16 bits, so whole-file sizes compare different things. The export stage counts
the packed tensor bytes of each model's hidden layers apart from its head (deployed.csv's
`size_body_bytes`, `size_head_bytes`: qmoe.deploy.sizes); `layer_bytes` reads them. Sizes depend on
the shapes and the config only, so the first model of each variant stands for all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qmoe.analysis.results import Where, variant_facts

COLUMNS = ["dataset", "protocol", "variant", "body_bytes", "head_bytes", "weight_bits", "reason"]
DEPLOYED = {"body_bytes": "size_body_bytes", "head_bytes": "size_head_bytes"}  # deployed.csv


def _deployed_row(path: Path, fold: int, seed: int) -> pd.Series | str:
    """The deployed.csv row of one model, or why there is none."""
    if not path.is_file():
        return f"{path}: not found"
    table = pd.read_csv(path)
    if missing := sorted(set(DEPLOYED.values()) - set(table.columns)):
        return f"{path}: no columns {missing} (rerun the export stage)"
    hit = table[(table["fold"] == fold) & (table["seed"] == seed)]
    return hit.iloc[0] if not hit.empty else f"{path}: no row of fold{fold}_seed{seed}"


def layer_bytes(deployed_root: Path, runs: pd.DataFrame, kinds: tuple[str, ...]) -> pd.DataFrame:
    """One row per (dataset, protocol, variant) of the single-model `kinds` in `runs`, from
    data/deployed/<dataset>/<protocol>/<variant>/deployed.csv under `deployed_root`."""
    facts = variant_facts(runs)
    chosen = runs[runs["variant"].isin(facts.index[facts["kind"].isin(kinds)])]
    rows = []
    for (d, p, v), part in chosen.groupby(["dataset", "protocol", "variant"], sort=True):
        first = part.sort_values(["fold", "seed"]).iloc[0]
        path = Where(d, p, v).under(deployed_root) / "deployed.csv"
        found = _deployed_row(path, int(first["fold"]), int(first["seed"]))
        row = {
            "dataset": d,
            "protocol": p,
            "variant": v,
            "weight_bits": facts.loc[v, "weight_bits"],
        }
        if isinstance(found, str):  # sizes are then 'not computed' with this reason
            row |= {"body_bytes": np.nan, "head_bytes": np.nan, "reason": found}
        else:
            row |= {k: int(found[c]) for k, c in DEPLOYED.items()} | {"reason": ""}
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)

"""Deployed weight bytes split into the hidden layers and the head, so compression can be compared
like with like.

The study's k-bit BitLinear models keep an FP32 head (reference 7.1) while the half-precision model
stores its head in 16 bits, so whole-file sizes compare different things. `layer_bytes` packs one
trained model per single-model variant as it is deployed (`qmoe.quant.packing.pack_state`: k-bit
codes packed densely with their scales; everything else as stored) and counts the tensor bytes of
the hidden layers (`body.*`, pre-LayerNorms included) apart from the head (`head.*`). Sizes depend
on the shapes and the config only, so the first model of each variant stands for all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qmoe.analysis.results import variant_facts
from qmoe.contract.runs import ModelKey, RunFolder
from qmoe.contract.study import RunId
from qmoe.quant.packing import pack_state
from qmoe.training.artefacts import load_trained

COLUMNS = ["dataset", "protocol", "variant", "body_bytes", "head_bytes", "weight_bits", "reason"]


def split_bytes(net) -> tuple[int, int]:
    """(hidden-layer bytes, head bytes) of a deployed MLP's packed tensors."""
    body = head = 0
    for key, t in pack_state(net).items():
        n = t.numel() * t.element_size()
        if key.startswith("head."):
            head += n
        else:
            body += n
    return body, head


def layer_bytes(runs_root: Path, runs: pd.DataFrame, kinds: tuple[str, ...]) -> pd.DataFrame:
    """One row per (dataset, protocol, variant) of the single-model `kinds` in `runs`."""
    facts = variant_facts(runs)
    chosen = runs[runs["variant"].isin(facts.index[facts["kind"].isin(kinds)])]
    rows = []
    for (d, p, v), part in chosen.groupby(["dataset", "protocol", "variant"], sort=True):
        first = part.sort_values(["fold", "seed"]).iloc[0]
        path = RunFolder(RunId(d, p, v).under(runs_root)).checkpoint(
            ModelKey(int(first["fold"]), int(first["seed"]))
        )
        row = {
            "dataset": d,
            "protocol": p,
            "variant": v,
            "body_bytes": np.nan,
            "head_bytes": np.nan,
            "weight_bits": facts.loc[v, "weight_bits"],
            "reason": "",
        }
        if path.is_file():
            row["body_bytes"], row["head_bytes"] = split_bytes(
                load_trained(path, frozen=True).model.net
            )
        else:  # sizes are then 'not computed' with this reason, not a failed stage
            row["reason"] = f"{path}: checkpoint not found"
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)

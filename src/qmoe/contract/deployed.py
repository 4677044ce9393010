"""data/deployed/<dataset>/<protocol> (docs/architecture.md section 3b): each variant's artefacts,
deployed.csv and routing.csv, and export.json; their one writer and reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from qmoe.contract.runs import ModelKey
from qmoe.io import InputError

# deployed.csv, one row per model; int8 models add ZCLIP_COLUMNS, MoEs DISPATCH_COLUMNS
DEPLOYED_COLUMNS = [
    "fold",
    "seed",
    "artefact",
    "n_test",
    "deployed_macro_f1",
    "deployed_accuracy",
    "deployed_weighted_f1",
    "torch_b1_macro_f1",
    "batch_macro_f1",
    "size_file_bytes",
    "size_tensor_bytes",
    "size_quantised_weight_bytes",
    "size_fp32_file_bytes",
    "size_body_bytes",
    "size_head_bytes",
    "max_abs_diff",
    "bound",
    "exact_share",
    "loose_bound",
    "training_max_abs_diff",
    "argmax_agreement",
    "routing_agreement",
    "layers_checked",
    "ort_keeps_fp16",
]
# packed tensor bytes of a single MLP's hidden layers and of its head (qmoe.deploy.sizes; empty for
# an MoE or an int8 model): compression compared like with like (qmoe.analysis.sizes)
LAYER_COLUMNS = ["size_body_bytes", "size_head_bytes"]
ZCLIP_COLUMNS = ["zclip_deployed_macro_f1", "zclip_batch_macro_f1", "zclip_clipped_values"]
DISPATCH_COLUMNS = ["dispatch_expert_agreement", "dispatch_max_abs_diff"]
ROUTING_COLUMNS = ["fold", "seed", "expert", "expert_name", "frequency"]


class DeployedFolder(NamedTuple):
    """data/deployed/<dataset>/<protocol>: what the export stage writes there."""

    root: Path

    def artefact(self, variant: str, key: ModelKey, part: str = "") -> Path:
        """The model's ONNX file; `part`: zclip, router, expert<i> (qmoe.deploy.runtime)."""
        return self.root / variant / f"{key.stem}{f'.{part}' if part else ''}.onnx"

    def table(self, variant: str) -> Path:
        return self.root / variant / "deployed.csv"

    def routing(self, variant: str) -> Path:
        return self.root / variant / "routing.csv"

    @property
    def export_json(self) -> Path:
        return self.root / "export.json"


def write_tables(folder: Path, rows: list[dict[str, Any]], routing: list[dict[str, Any]]) -> None:
    """Each variant's deployed.csv and (MoE) routing.csv from rows carrying `variant`."""
    out = DeployedFolder(folder)
    for variant, part in pd.DataFrame(rows).groupby("variant", sort=False):
        part.drop(columns="variant").to_csv(out.table(variant), index=False)
    for variant, part in pd.DataFrame(routing).groupby("variant", sort=False) if routing else []:
        part.drop(columns="variant").to_csv(out.routing(variant), index=False)


class VariantDeployed(NamedTuple):
    table: pd.DataFrame  # deployed.csv
    routing: pd.DataFrame | None  # routing.csv (MoE), else None


def read_variant(folder: Path, variant: str) -> VariantDeployed:
    """One variant's deployed.csv (and routing.csv when it has one)."""
    files = DeployedFolder(Path(folder))
    path = files.table(variant)
    if not path.is_file():
        raise InputError(f"{path}: not found (run the export stage)")
    routing = files.routing(variant)
    return VariantDeployed(pd.read_csv(path), pd.read_csv(routing) if routing.is_file() else None)

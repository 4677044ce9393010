"""Deploy fixtures: a tiny trained-model tree in the train stage's layout (architecture.md 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from qmoe import models, variants
from qmoe.contract.checkpoint import CheckpointMeta, save_checkpoint
from qmoe.contract.features import write_table
from qmoe.contract.runs import RunFolder, write_metrics
from qmoe.contract.study import RunId
from qmoe.training.artefacts import Standardized

TINY = {"in_dim": 24, "num_classes": 3, "hidden_sizes": (32, 16), "n_clips": 30}
TINY_VARIANTS = {
    "fp32": {"kind": "fp32"},
    "ptq_int8": {"kind": "ptq_int8", "engine": "auto"},
    "fp16": {"kind": "half", "dtype": "float16"},
    "w4a8": {"kind": "bitlinear", "weight_bits": 4},
    "w8a8": {"kind": "bitlinear", "weight_bits": 8},
    "ternary_reference": {
        "kind": "ternary_reference",
        "act_threshold": 0.05,
        "weight_threshold": 0.15,
    },
    "moe": {
        "kind": "moe",
        "top_k": 1,
        "balance": "reference",
        "balance_alpha": 1.0e-3,
        "curiosity": {"mode": "log", "mc_samples": 4},
    },
}
TINY_EXPERTS = ["ternary_reference", "w4a8"]


def write_run_tree(
    root: Path, names: list[str], folds: tuple[int, ...] = (1, 2), seed: int = 0
) -> dict[str, Path]:
    """features/features.parquet and runs/<variant>/{metrics.json, predictions.csv, fold*.pt} of
    untrained (random) models: what `export` and `benchmark` read. Returns the folders."""
    g = torch.Generator().manual_seed(0)
    n, d, c = TINY["n_clips"], TINY["in_dim"], TINY["num_classes"]
    emb = torch.randn(n, d, generator=g) * 2 + 1
    fold_of = np.arange(n) % 5 + 1
    labels = np.arange(n) % c
    table = pd.DataFrame(
        {"clip_id": [f"c{i:02d}" for i in range(n)], "fold": fold_of, "label_id": labels}
    )
    emb_frame = pd.DataFrame(emb.numpy(), columns=[f"emb_{j:04d}" for j in range(d)])
    table = pd.concat([table, emb_frame], axis=1)
    (root / "features").mkdir(parents=True)
    write_table(root / "features", table)
    for name in names:
        _write_variant(root / "runs" / name, name, table, emb, folds, seed)
    return {"features": root / "features", "runs": root / "runs"}


def _write_variant(
    out: Path, name: str, table: pd.DataFrame, emb: torch.Tensor, folds: tuple[int, ...], seed: int
) -> None:
    cfg = variants.resolve(name, TINY_VARIANTS, TINY_EXPERTS)
    mlp = models.MLPConfig(TINY["in_dim"], TINY["num_classes"], TINY["hidden_sizes"], 0.1)
    out.mkdir(parents=True)
    runs, preds = [], []
    for fold in folds:
        torch.manual_seed(fold)
        test = np.flatnonzero(table["fold"].to_numpy() == fold)
        model = Standardized(models.build(cfg, mlp), emb.mean(0), emb.std(0))
        meta = CheckpointMeta(
            dataset="tiny",
            protocol="corrected",
            variant=name,
            variant_config=cfg,
            in_dim=TINY["in_dim"],
            num_classes=TINY["num_classes"],
            class_names=tuple(f"class{i}" for i in range(TINY["num_classes"])),
            hidden_sizes=tuple(TINY["hidden_sizes"]),
            dropout=0.1,
            fold=fold,
            seed=seed,
            selected_epoch=1,
            best_epoch=1,
            test_clip_ids=tuple(table["clip_id"].iloc[test]),
        )
        save_checkpoint(RunFolder(out).checkpoint(meta.key), model.state_dict(), meta.to_dict())
        runs.append(
            {"fold": fold, "seed": seed, "macro_f1": 0.5, "n_params": 1, "train_energy_kwh": 1e-6}
        )
        preds.append(
            pd.DataFrame(
                {
                    "fold": fold,
                    "seed": seed,
                    "clip_id": table["clip_id"].iloc[test],
                    "label": table["label_id"].iloc[test],
                    "pred": 0,
                }
            )
        )
    config = variants.to_dict(cfg)
    write_metrics(out, RunId("tiny", "corrected", name), config, None, runs)
    pd.concat(preds).to_csv(RunFolder(out).predictions, index=False)


@pytest.fixture
def run_tree(tmp_path):
    return write_run_tree(tmp_path, [v for v in TINY_VARIANTS if v != "fp16"])


@pytest.fixture
def run_tree_of(tmp_path):
    """write_run_tree for chosen variant names (under tmp_path/tree)."""
    return lambda names: write_run_tree(tmp_path / "tree", names)

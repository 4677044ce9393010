"""One training run of the study: a `TrainJob` (one variant on the protocol's embeddings), a split
and a seed -> the trained model, its deployed predictions and metrics.

`run_one` is fit (`fit_model`), deploy (`deploy_model`), then score (`routing_check`,
`run_metrics`); the train stage's units (qmoe.training.units) call it once per fold and seed.
"""

from __future__ import annotations

import copy
import time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from qmoe import models
from qmoe.contract.checkpoint import CheckpointMeta
from qmoe.io import ConfigError, InputError, choose, seed_everything
from qmoe.training import routing
from qmoe.training.artefacts import Standardized, fit_zscore
from qmoe.training.fit import (
    FitResult,
    MoETrainConfig,
    Prediction,
    TrainConfig,
    fit,
    predict,
    recipe_for,
)
from qmoe.training.metrics import scores
from qmoe.training.protocols import Protocol, Split
from qmoe.variants import MoEConfig, VariantConfig

# train.labels -> (id column, name column) of the manifest (docs/architecture.md section 1)
LABEL_COLUMNS = {
    "classes": ("label_id", "label_name"),
    "major": ("major_id", "major_name"),  # ESC: official categories, target // 10
    "scrambled": ("scrambled_id", "scrambled_name"),  # ESC: the reference's 5-way mapping (4.1)
}


class Embeddings(NamedTuple):
    x: Tensor  # (n, d) float32 raw embeddings
    y: Tensor  # (n,) int64 contiguous class ids
    folds: np.ndarray  # (n,) official fold, 0 = none
    groups: np.ndarray  # (n,) source recording id (for grouped splits)
    clip_ids: list[str]
    class_names: list[str]


def embeddings_from_table(table: pd.DataFrame, labels: str) -> Embeddings:
    """Feature table (manifest columns + emb_*) -> tensors, with the chosen label set."""
    id_col, name_col = choose(labels, LABEL_COLUMNS, "label set (train.labels)")
    if id_col not in table.columns:
        raise ConfigError(
            f"train.labels: {labels!r} needs column {id_col!r}, which this dataset "
            f"lacks (only ESC datasets have major/scrambled labels)"
        )
    emb_cols = [c for c in table.columns if c.startswith("emb_")]
    if not emb_cols:
        raise InputError("feature table has no emb_* columns")
    raw = table[id_col].to_numpy()
    ids = np.unique(raw)  # remap to 0..C-1 in ascending id order
    names = [str(table.loc[raw == i, name_col].iloc[0]) for i in ids]
    y = torch.as_tensor(np.searchsorted(ids, raw), dtype=torch.long)
    x = torch.from_numpy(table[emb_cols].to_numpy(dtype=np.float32, copy=True))
    return Embeddings(
        x,
        y,
        table["fold"].to_numpy(dtype=int),
        table["source_id"].astype(str).to_numpy(),
        table["clip_id"].astype(str).tolist(),
        names,
    )


class TrainJob(NamedTuple):
    """What every model of one variant shares (dataset/protocol/variant: the names its checkpoint
    records; `moe_cfg`: the MoE recipe, None for a single model)."""

    dataset: str
    protocol: str
    variant: str
    data: Embeddings
    variant_cfg: VariantConfig
    model_cfg: models.ModelConfig
    cfg: TrainConfig
    moe_cfg: MoETrainConfig | None
    protocol_obj: Protocol


class RunResult(NamedTuple):
    model: Standardized  # trained (not deployed) model, selected epoch
    fit: FitResult
    prediction: Prediction  # of the deployed model on the test fold
    metrics: dict[str, Any]  # deterministic: the same bits on every run
    routing: dict[str, Any] | None  # escalating MoEs: qmoe.training.routing record
    train_seconds: float  # measured: kept out of `metrics` (the train stage's cost file)


class Fitted(NamedTuple):
    """A trained model (selected epoch) and what deploying and scoring it need."""

    model: Standardized
    fit: FitResult
    mlp: models.MLPConfig
    train_seconds: float


def run_name(job: TrainJob, split: Split, seed: int) -> str:
    """How logs and errors name one model."""
    return f"{job.dataset}/{job.protocol}/{job.variant} fold {split.fold} seed {seed}"


def run_one(job: TrainJob, split: Split, seed: int) -> RunResult:
    """Train one variant on one fold with one seed and evaluate it as deployed on the test fold."""
    fitted = fit_model(job, split, seed)
    deployed = deploy_model(job, split, fitted.model)
    # MC passes in eval use the router's fixed mask bank: the same u(x) in any batch
    pred = predict(deployed, job.data.x[split.test], job.protocol_obj.eval_batch)
    routed = routing_check(job, split, deployed, fitted.mlp.num_classes)
    metrics = run_metrics(job.data, split, seed, fitted, pred, routed)
    return RunResult(fitted.model, fitted.fit, pred, metrics, routed, fitted.train_seconds)


def fit_model(job: TrainJob, split: Split, seed: int) -> Fitted:
    """Train on the split's training part, with the recipe and epoch choice of the protocol."""
    data, variant = job.data, job.variant_cfg
    mlp = models.mlp_config(
        job.model_cfg, in_dim=data.x.shape[1], num_classes=len(data.class_names)
    )
    generator = seed_everything(seed * 1000 + split.fold)  # model init, shuffling, MC dropout
    zs = fit_zscore(data.x[split.train])
    model = Standardized(models.build(variant, mlp), zs.mean, zs.std)
    # Corrected: every variant keeps its epoch of lowest validation loss. Faithful (6.3, 8.5):
    # single models keep their last epoch, the MoE its best held-out (= test) epoch by F1.
    moe = isinstance(variant, MoEConfig)
    if moe and job.moe_cfg is None:
        raise ValueError(f"{run_name(job, split, seed)}: an MoE variant needs the train.moe recipe")
    recipe = recipe_for(job.cfg, job.moe_cfg if moe else None, job.protocol_obj.selection(moe))
    t0 = time.perf_counter()
    result = fit(
        model,
        data.x[split.train],
        data.y[split.train],
        data.x[split.val],
        data.y[split.val],
        mlp.num_classes,
        recipe,
        generator,
        run_name(job, split, seed),
    )
    return Fitted(model, result, mlp, time.perf_counter() - t0)


def deploy_model(job: TrainJob, split: Split, model: Standardized) -> Standardized:
    """The deployed form of a copy of `model`, its router threshold calibrated first (in place)."""
    cal = job.protocol_obj.calibration_rows(split)  # `route`: the threshold, never the test fold
    if hasattr(model.net, "calibrate_"):
        with torch.no_grad():
            model.net.eval().calibrate_((job.data.x[cal] - model.norm_mean) / model.norm_std)
    return models.deploy(copy.deepcopy(model), job.variant_cfg)


def routing_check(
    job: TrainJob, split: Split, deployed: Standardized, num_classes: int
) -> dict[str, Any] | None:
    """An escalating MoE's routing record (qmoe.training.routing); None for any other model."""
    if not routing.escalates(deployed):
        return None
    protocol, data = job.protocol_obj, job.data
    return routing.routing_record(
        deployed,
        data.x[protocol.calibration_rows(split)],
        protocol.calibration,
        data.x[split.test],
        data.y[split.test],
        num_classes,
        protocol.eval_batch,
        job.moe_cfg.check_mc_samples,
        job.moe_cfg.check_banks,
    )


def run_metrics(
    data: Embeddings,
    split: Split,
    seed: int,
    fitted: Fitted,
    pred: Prediction,
    routed: dict[str, Any] | None,
) -> dict[str, Any]:
    """One `runs` entry of the run metrics: scores of the deployed model on the test fold."""
    s = scores(data.y[split.test], pred.pred, fitted.mlp.num_classes)
    metrics = {
        "fold": split.fold,
        "seed": seed,
        "accuracy": s.accuracy,
        "macro_f1": s.macro_f1,
        "weighted_f1": s.weighted_f1,
        "best_epoch": fitted.fit.best_epoch,
        "selected_epoch": fitted.fit.selected_epoch,
        "epochs_run": fitted.fit.epochs_run,
        "n_train": len(split.train),
        "n_val": len(split.val),
        "n_test": len(split.test),
        "n_params": sum(p.numel() for p in fitted.model.net.parameters()),
    }
    if routed is not None:
        metrics |= {
            "n_calibration": routed["n_calibration"],
            "escalated_share": float(np.mean(routed["escalated"])),
        }
    return metrics


def prediction_frame(data: Embeddings, split: Split, seed: int, pred: Prediction) -> pd.DataFrame:
    """predictions.csv rows: one per test clip (routing columns for an MoE)."""
    frame = pd.DataFrame(
        {
            "fold": split.fold,
            "seed": seed,
            "clip_id": [data.clip_ids[i] for i in split.test],
            "label": data.y[split.test].numpy(),
            "pred": pred.pred.numpy(),
        }
    )
    if pred.expert is not None:
        frame["expert"] = pred.expert.numpy()
        frame["gate_prob"] = pred.gate_prob.numpy()
    if pred.uncertainty is not None:
        frame["uncertainty"] = pred.uncertainty.float().numpy()
    return frame


def checkpoint_meta(job: TrainJob, split: Split, seed: int, run: RunResult) -> CheckpointMeta:
    """What `qmoe.training.artefacts.load_trained` and `benchmark` need, next to the weights."""
    data = job.data
    return CheckpointMeta(
        dataset=job.dataset,
        protocol=job.protocol,
        variant=job.variant,
        variant_config=job.variant_cfg,
        in_dim=int(data.x.shape[1]),
        num_classes=len(data.class_names),
        class_names=tuple(data.class_names),
        hidden_sizes=tuple(job.model_cfg.hidden_sizes),
        dropout=job.model_cfg.dropout,
        fold=split.fold,
        seed=seed,
        selected_epoch=run.fit.selected_epoch,
        best_epoch=run.fit.best_epoch,
        test_clip_ids=tuple(data.clip_ids[i] for i in split.test),
    )


def curiosity_record(
    data: Embeddings, split: Split, pred: Prediction, routed: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Per test sample: u, label, prediction and chosen expert (None when u is not computed);
    for an escalating MoE also its routing record (qmoe.training.routing)."""
    if pred.uncertainty is None:
        return None
    return {
        "clip_id": [data.clip_ids[i] for i in split.test],
        "u": pred.uncertainty.float().tolist(),
        "label": data.y[split.test].tolist(),
        "pred": pred.pred.tolist(),
        "expert": pred.expert.tolist(),
        **(routed or {}),
    }

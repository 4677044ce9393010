"""Export, check and score every trained model of one (dataset, protocol) run tree.

One unit = one checkpoint (variant, fold, seed): load it as deployed (qmoe.training.artefacts),
write its ONNX artefact, check it (qmoe.deploy.verify: refused on any mismatch, naming it), and
score it at batch 1 on its test fold beside the torch model, also at batch 1. Units run on the
executor (params `execution`); the stage writes (qmoe.contract.deployed)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
import pandas as pd
import torch

from qmoe import models
from qmoe.contract.checkpoint import CheckpointMeta
from qmoe.contract.deployed import ROUTING_COLUMNS, DeployedFolder, write_tables
from qmoe.contract.features import read_table
from qmoe.contract.runs import ModelKey, RunFolder, read_metrics
from qmoe.contract.study import RunId, instance, variant_names
from qmoe.deploy import dispatch, runtime, sizes
from qmoe.deploy.export import ExportConfig, Exported, ExportError, export
from qmoe.deploy.graph import OPSET
from qmoe.deploy.verify import CheckConfig, verify
from qmoe.executor import ExecutionConfig, run_units
from qmoe.io import ConfigError, InputError, atomic_dir, from_section, save_json
from qmoe.quant import ptq
from qmoe.training.artefacts import Standardized, load_trained
from qmoe.training.metrics import scores
from qmoe.training.protocols import feature_table
from qmoe.variants import FP32Config


class ExportParams(NamedTuple):
    """params.yaml `export`: graph form (block_size, accuracy_level) and `check` (tolerance)."""

    graph: ExportConfig
    check: CheckConfig


def export_params(section: Any) -> ExportParams:
    """Both configs from params `export`; unknown or missing keys are refused by name."""
    if not isinstance(section, dict) or "check" not in section:
        raise ConfigError("export: expected a mapping with block_size, accuracy_level and check")
    graph = from_section(ExportConfig, {k: v for k, v in section.items() if k != "check"}, "export")
    return ExportParams(graph, from_section(CheckConfig, section["check"], "export.check"))


class Unit(NamedTuple):
    variant: str
    checkpoint: Path  # <runs>/<variant>/fold{k}_seed{s}.pt
    key: ModelKey

    def name(self) -> str:
        return f"{self.variant} fold {self.key.fold} seed {self.key.seed}"


class TestFold(NamedTuple):
    """What every unit needs from the run tree and the features (sent once to each worker)."""

    emb: np.ndarray  # (n_clips, d) float32 raw embeddings
    row_of: dict[str, int]  # clip_id -> row of emb
    labels: dict[tuple[str, int, int], dict[str, int]]  # (variant, fold, seed) -> clip -> label
    params: ExportParams
    where: str  # "<dataset>/<protocol>", for messages


class Deployed(NamedTuple):
    onnx: bytes
    row: dict[str, Any]  # its row of the variant's table (qmoe.contract.deployed)
    routing: list[dict[str, Any]]  # MoE: its routing rows (share of test clips per expert)
    zclip: bytes | None  # int8 models: the z-clipped artefact
    parts: dict[str, bytes]  # MoE: router and expert graphs for host dispatch, by part name


def units(runs: Path, run_ids: tuple[RunId, ...]) -> list[Unit]:
    """One unit per model listed in each variant's run metrics (in its order)."""
    return [
        Unit(r.variant, RunFolder(runs / r.variant).checkpoint(key), key)
        for r in run_ids
        for key in read_metrics(runs / r.variant, r).keys
    ]


def test_labels(runs: Path, names: list[str]) -> dict[tuple[str, int, int], dict[str, int]]:
    """Each model's test-fold labels from its variant's predictions.csv (the label set trained)."""
    out: dict[tuple[str, int, int], dict[str, int]] = {}
    for variant in names:
        frame = pd.read_csv(
            RunFolder(runs / variant).predictions, usecols=["fold", "seed", "clip_id", "label"]
        )
        for (fold, seed), part in frame.groupby(["fold", "seed"]):
            out[(variant, int(fold), int(seed))] = dict(
                zip(part["clip_id"].astype(str), part["label"].astype(int))
            )
    return out


def test_fold(
    table: pd.DataFrame, runs: Path, names: list[str], params: ExportParams, where: str
) -> TestFold:
    emb = table[[c for c in table.columns if c.startswith("emb_")]].to_numpy(dtype=np.float32)
    row_of = {cid: i for i, cid in enumerate(table["clip_id"].astype(str))}
    return TestFold(emb, row_of, test_labels(runs, names), params, where)


@functools.lru_cache(maxsize=8)
def fp32_bytes(in_dim: int, num_classes: int, hidden: tuple[int, ...]) -> int:
    """File size of the FP32 artefact of this classifier shape (the size ratios' denominator)."""
    net = models.build(FP32Config(), models.MLPConfig(in_dim, num_classes, hidden, 0.0))
    model = Standardized(net, torch.zeros(in_dim), torch.ones(in_dim)).eval()
    return len(export(model, ExportConfig(32, 4)).proto.SerializeToString())


def _inputs(shared: TestFold, unit: Unit, meta: CheckpointMeta) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, d) raw test embeddings, y (n,) labels) of the unit's test fold."""
    ids = [str(c) for c in meta.test_clip_ids]
    labels = shared.labels.get((unit.variant, *unit.key), {})
    missing = [c for c in ids if c not in shared.row_of or c not in labels]
    if not ids or missing:
        raise InputError(
            f"{unit.checkpoint}: {len(missing)} of {len(ids)} test clips lack an "
            f"embedding or a label in predictions.csv, e.g. {missing[:3]}"
        )
    return shared.emb[[shared.row_of[c] for c in ids]], np.array([labels[c] for c in ids])


def deploy_unit(shared: TestFold, unit: Unit) -> Deployed:
    """Export, check and score one checkpoint; any failure names variant, fold and seed."""
    context = f"{shared.where}/{unit.name()}"
    loaded = load_trained(unit.checkpoint, frozen=True)
    x, y = _inputs(shared, unit, loaded.meta)
    try:
        exported = export(loaded.model, shared.params.graph)
        data = exported.proto.SerializeToString()
        sess = runtime.session(data)
    except ExportError as e:
        raise ExportError(f"{context}: export failed: {e}") from None
    v = _verify(shared, loaded.model, exported, sess, x, context)
    row = _row(unit, loaded, exported, data, sess, x, y, v)
    zclip, parts = None, {}
    if any(ptq.is_dynamic_int8(m) for m in loaded.model.modules()):
        zclip, more = _zclip(shared, loaded, x, y, context)
        row |= more
    if v.deployed_expert is not None:
        parts, more = dispatch.host_parts(
            loaded.model, shared.params.graph, sess, x, v.check.bound, context
        )
        row |= more
    return Deployed(data, row, _routing(loaded.variant, unit.key, v.deployed_expert), zclip, parts)


def _verify(shared: TestFold, model: Any, exported: Exported, sess: Any, x: np.ndarray,
            context: str, clip: np.ndarray | None = None) -> Any:  # fmt: skip
    """qmoe.deploy.verify.verify with the stage's graph block size and check tolerances."""
    graph, check = shared.params.graph, shared.params.check
    return verify(model, exported, sess, x, graph.block_size, check, context, clip=clip)


def _row(
    unit: Unit, loaded: Any, exported: Exported, data: bytes, sess: Any, x: np.ndarray,
    y: np.ndarray, v: Any
) -> dict[str, Any]:  # fmt: skip
    """The model's row of its variant's table (qmoe.contract.deployed.DEPLOYED_COLUMNS): scores,
    sizes, the check."""
    c = loaded.meta.num_classes
    dep, tor = (
        scores(torch.from_numpy(y), torch.from_numpy(v.deployed_pred), c),
        scores(torch.from_numpy(y), torch.from_numpy(v.torch_pred), c),
    )
    fp32 = fp32_bytes(loaded.meta.in_dim, c, loaded.meta.hidden_sizes)
    return {
        "fold": unit.key.fold,
        "seed": unit.key.seed,
        "artefact": exported.artefact,
        "n_test": len(y),
        "deployed_macro_f1": dep.macro_f1,
        "deployed_accuracy": dep.accuracy,
        "deployed_weighted_f1": dep.weighted_f1,
        "torch_b1_macro_f1": tor.macro_f1,
        "batch_macro_f1": _batch_f1(sess, x, y, c),
        **sizes.file_bytes(exported, data, fp32),
        **sizes.layer_bytes(loaded.model),
        **v.check._asdict(),
        "ort_keeps_fp16": runtime.keeps_fp16(exported.proto) if exported.half else None,
    }


def _batch_f1(sess: Any, x: np.ndarray, y: np.ndarray, c: int) -> float:
    """Macro-F1 of one call on the whole test fold (the reference's batched evaluation form:
    per-tensor dynamic int8 scales then span every clip of the fold)."""
    pred = runtime.run(sess, x)["logits"].argmax(1)
    return scores(torch.from_numpy(y), torch.from_numpy(pred), c).macro_f1


def _zclip(
    shared: TestFold, loaded: Any, x: np.ndarray, y: np.ndarray, context: str
) -> tuple[bytes, dict[str, float]]:
    """The int8 deployment that survives outlier clips: z-scores clipped per dimension to the
    largest |z| of the clips outside the test fold (the model's training and validation part),
    so one test clip far outside the training range cannot set the activation scale."""
    model = loaded.model
    mean, std = model.norm_mean.numpy(), model.norm_std.numpy()
    test = set(str(c) for c in loaded.meta.test_clip_ids)
    rest = shared.emb[[i for cid, i in shared.row_of.items() if cid not in test]]
    bound = np.abs((rest - mean) / std).max(axis=0)  # (d,)
    exported = export(model, shared.params.graph, clip=bound)
    data = exported.proto.SerializeToString()
    sess = runtime.session(data)
    v = _verify(shared, model, exported, sess, x, f"{context} (z-clipped)", clip=bound)
    c = loaded.meta.num_classes
    f1 = scores(torch.from_numpy(y), torch.from_numpy(v.deployed_pred), c).macro_f1
    return data, {
        "zclip_deployed_macro_f1": f1,
        "zclip_batch_macro_f1": _batch_f1(sess, x, y, c),
        "zclip_clipped_values": int((np.abs((x - mean) / std) > bound).sum()),
    }


def _routing(variant: Any, key: ModelKey, expert: np.ndarray | None) -> list[dict[str, Any]]:
    """Share of the test fold's batch-1 calls whose top-1 expert is each expert of the MoE."""
    if expert is None:
        return []
    names = [e.name for e in variant.experts]
    counts = np.bincount(expert, minlength=len(names))
    share = counts / len(expert)
    return [
        dict(zip(ROUTING_COLUMNS, (key.fold, key.seed, i, name, share[i]), strict=True))
        for i, name in enumerate(names)
    ]


def deploy_tree(
    run_ids: tuple[RunId, ...],
    params: ExportParams,
    features: Path,
    runs: Path,
    out: Path,
    execution: ExecutionConfig,
) -> pd.DataFrame:
    """Export every model of `run_ids` (one dataset and protocol; `runs` = data/runs/<dataset>/
    <protocol>) into `out`, atomically (qmoe.contract.deployed): each model's artefacts, each
    variant's tables and export.json. Returns all rows."""
    dataset, protocol = instance(run_ids)
    table = feature_table(protocol, read_table(features))  # the protocol's inputs
    todo, names = units(runs, run_ids), variant_names(run_ids)
    shared = test_fold(table, runs, names, params, f"{dataset}/{protocol}")
    results = run_units(deploy_unit, shared, todo, execution, name=Unit.name)
    with atomic_dir(out) as tmp:
        rows = _write_models(DeployedFolder(tmp), todo, results)
        save_json(
            DeployedFolder(tmp).export_json,
            {
                "dataset": dataset,
                "protocol": protocol,
                "variants": names,
                "onnxruntime": runtime.ort_version(),
                "onnx": onnx.__version__,
                "opset": OPSET,
                "block_size": params.graph.block_size,
                "accuracy_level": params.graph.accuracy_level,
                "check": dataclasses.asdict(params.check),
                "models": len(todo),  # no time here: identical artefacts hash alike
            },
        )
    return rows


def _write_models(out: DeployedFolder, todo: list[Unit], results: list[Deployed]) -> pd.DataFrame:
    """Every unit's artefacts, then each variant's tables; returns the rows with `variant`."""
    rows, routing = [], []
    for unit, res in zip(todo, results, strict=True):
        out.artefact(unit.variant, unit.key).parent.mkdir(exist_ok=True)
        out.artefact(unit.variant, unit.key).write_bytes(res.onnx)
        if res.zclip is not None:
            out.artefact(unit.variant, unit.key, "zclip").write_bytes(res.zclip)
        for part, data in res.parts.items():
            out.artefact(unit.variant, unit.key, part).write_bytes(data)
        rows.append({"variant": unit.variant, **res.row})
        routing += [{"variant": unit.variant, **r} for r in res.routing]
    write_tables(out.root, rows, routing)
    return pd.DataFrame(rows)

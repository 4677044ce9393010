"""Export stage logic: every model of a run tree exported, checked, scored at batch 1, written."""

import json

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from qmoe.contract import deployed
from qmoe.contract.checkpoint import load_checkpoint, save_checkpoint
from qmoe.contract.study import runs_of
from qmoe.deploy import folder
from qmoe.deploy.export import ExportConfig
from qmoe.deploy.verify import CheckConfig
from qmoe.executor import ExecutionConfig, UnitUserError
from qmoe.io import ConfigError, InputError
from qmoe.training.metrics import scores

PARAMS = folder.ExportParams(
    ExportConfig(block_size=16, accuracy_level=4), CheckConfig(1e-5, 1e-4, 5e-3, 1e-2, 0.95, 0.99)
)
ONE = ExecutionConfig(backend="local", workers=1)
SPEC = runs_of("tiny", "corrected", ("fp32", "ptq_int8", "w4a8", "ternary_reference", "moe"))


def test_every_model_is_exported_checked_and_scored_at_batch_1(run_tree, tmp_path):
    out = tmp_path / "deployed"
    frame = folder.deploy_tree(SPEC, PARAMS, run_tree["features"], run_tree["runs"], out, ONE)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.onnx")) == sorted(
        [f"{r.variant}/fold{k}_seed0.onnx" for r in SPEC for k in (1, 2)]
        + [f"ptq_int8/fold{k}_seed0.zclip.onnx" for k in (1, 2)]
        + [f"moe/fold{k}_seed0.{p}.onnx" for k in (1, 2) for p in ("router", "expert0", "expert1")]
    )
    moe = pd.read_csv(out / "moe" / "deployed.csv")
    # the columns qmoe.contract.deployed (and docs/architecture.md 3b) promise, in their order;
    # with an int8 model and an MoE in the tree every table has both extras (empty where n/a)
    extras = deployed.ZCLIP_COLUMNS + deployed.DISPATCH_COLUMNS
    assert list(moe.columns) == deployed.DEPLOYED_COLUMNS + extras
    assert list(pd.read_csv(out / "moe" / "routing.csv").columns) == deployed.ROUTING_COLUMNS
    assert (moe["dispatch_expert_agreement"] == 1.0).all()
    assert (moe["dispatch_max_abs_diff"] <= 1e-6).all()
    assert list(frame["variant"]) == [r.variant for r in SPEC for _ in (1, 2)]
    w4 = pd.read_csv(out / "w4a8" / "deployed.csv")
    assert list(w4["fold"]) == [1, 2] and (w4["artefact"] == "MatMulNBits 4-bit").all()
    assert (w4["exact_share"] >= 0.95).all() and (w4["layers_checked"] == 2).all()
    assert (
        w4["size_file_bytes"]
        == [(out / "w4a8" / f"fold{k}_seed0.onnx").stat().st_size for k in (1, 2)]
    ).all()
    # the deployed F1 is the artefact's own batch-1 predictions scored on its test fold
    sess_model = onnx.load(out / "w4a8" / "fold1_seed0.onnx")
    import onnxruntime as ort

    sess = ort.InferenceSession(sess_model.SerializeToString(), providers=["CPUExecutionProvider"])
    table = pd.read_parquet(run_tree["features"] / "features.parquet")
    test = table[table["fold"] == 1]
    x = test[[c for c in table.columns if c.startswith("emb_")]].to_numpy(np.float32)
    pred = np.array([sess.run(None, {"x": x[i : i + 1]})[0].argmax() for i in range(len(x))])
    want = scores(torch.tensor(test["label_id"].to_numpy()), torch.tensor(pred), 3).macro_f1
    assert w4["deployed_macro_f1"].iloc[0] == pytest.approx(want, abs=1e-12)
    info = json.loads((out / "export.json").read_text())
    assert info["block_size"] == 16 and info["models"] == 10
    assert info["onnxruntime"] == ort.__version__
    assert "seconds" not in info  # nothing measured: identical artefacts leave the folder's hash


def test_sizes_follow_bit_width(run_tree, tmp_path):
    frame = folder.deploy_tree(
        SPEC, PARAMS, run_tree["features"], run_tree["runs"], tmp_path / "d", ONE
    ).set_index(["variant", "fold"])
    ratio = frame["size_file_bytes"] / frame["size_fp32_file_bytes"]
    assert ratio.loc[("fp32", 1)] == pytest.approx(1.0, abs=0.01)
    assert ratio.loc[("w4a8", 1)] < 1 and ratio.loc[("ptq_int8", 1)] < 1  # tiny: overheads rule
    assert frame.loc[("fp32", 1), "size_quantised_weight_bytes"] == 0
    # 4-bit codes of the hidden layers, K padded to whole 16-wide blocks (24 -> 32; 32), 2 codes
    # a byte, + one fp32 scale per (row, block): 32 rows x 2 blocks, 16 rows x 2 blocks
    assert frame.loc[
        ("w4a8", 1), "size_quantised_weight_bytes"
    ] == 32 * 32 // 2 + 16 * 32 // 2 + 4 * (32 * 2 + 16 * 2)
    # deployed.csv's layer bytes: fp32 hidden layers 24 -> 32 -> 16 (weights, biases, LayerNorm
    # weight and bias) and the 16 -> 3 head, 4 bytes each; the 4-bit model keeps an fp32 head
    body = 4 * (24 * 32 + 32 + 2 * 32 + 32 * 16 + 16 + 2 * 16)
    assert frame.loc[("fp32", 1), ["size_body_bytes", "size_head_bytes"]].tolist() == [
        body,
        4 * (16 * 3 + 3),
    ]
    assert frame.loc[("w4a8", 1), "size_head_bytes"] == 4 * (16 * 3 + 3)
    assert frame.loc[("w4a8", 1), "size_body_bytes"] < body / 3  # 4-bit codes, fp32 norms
    assert frame.loc[[("moe", 1), ("ptq_int8", 1)], "size_body_bytes"].isna().all()


def test_a_checkpoint_of_a_width_without_a_kernel_is_named_and_nothing_is_written(
    run_tree_of, tmp_path
):
    """A run folder trained before configs refused 3 bits: refused at load, naming the file."""
    tree = run_tree_of(["fp32", "w4a8"])
    path = tree["runs"] / "w4a8" / "fold1_seed0.pt"
    ckpt = load_checkpoint(path)
    ckpt.meta["variant_config"]["weight_bits"] = 3
    save_checkpoint(path, ckpt.state_dict, ckpt.meta)
    out = tmp_path / "deployed"
    with pytest.raises(
        UnitUserError,
        match=r"unit w4a8 fold 1 seed 0 failed: InputError: checkpoint .*/w4a8/fold1_seed0.pt: "
        r"variant_config.weight_bits: 3 cannot be exported \(no ONNX Runtime kernel\); "
        r"use one of \[1, 2, 4, 8\]",
    ):
        folder.deploy_tree(
            runs_of("tiny", "corrected", ("fp32", "w4a8")),
            PARAMS,
            tree["features"],
            tree["runs"],
            out,
            ONE,
        )
    assert not out.exists()


def test_missing_run_or_labels_are_named(run_tree_of, tmp_path):
    tree = run_tree_of(["fp32"])
    with pytest.raises(InputError, match=r"runs/w4a8/metrics.json: not found \(train w4a8 first\)"):
        folder.deploy_tree(
            runs_of("tiny", "corrected", ("fp32", "w4a8")),
            PARAMS,
            tree["features"],
            tree["runs"],
            tmp_path / "d",
            ONE,
        )
    preds = tree["runs"] / "fp32" / "predictions.csv"
    frame = pd.read_csv(preds)
    frame[frame["clip_id"] != "c00"].to_csv(preds, index=False)  # c00 is in fold 1
    with pytest.raises(
        UnitUserError,
        match=r"fold1_seed0.pt: 1 of 6 test clips lack an embedding "
        r"or a label in predictions.csv, e.g. \['c00'\]",
    ):
        folder.deploy_tree(
            runs_of("tiny", "corrected", ("fp32",)),
            PARAMS,
            tree["features"],
            tree["runs"],
            tmp_path / "d",
            ONE,
        )


def test_export_params_refuse_unknown_and_missing_keys():
    ok = {
        "block_size": 32,
        "accuracy_level": 4,
        "check": {
            "atol": 1e-5,
            "rtol": 1e-4,
            "fp16_rtol": 5e-3,
            "loose_rtol": 1e-2,
            "min_exact_share": 0.95,
            "min_routing_agreement": 0.99,
        },
    }
    assert folder.export_params(ok).graph.block_size == 32
    with pytest.raises(ConfigError, match=r"export: unknown key\(s\) \['bits'\]"):
        folder.export_params({**ok, "bits": 4})
    with pytest.raises(ConfigError, match=r"export.block_size: 48 not in \[16, 32, 64, 128, 256\]"):
        folder.export_params({**ok, "block_size": 48})
    with pytest.raises(ConfigError, match=r"export.check: missing required key 'loose_rtol'"):
        folder.export_params(
            {**ok, "check": {k: v for k, v in ok["check"].items() if k != "loose_rtol"}}
        )


def test_moe_routing_of_the_deployed_graph_is_written(run_tree, tmp_path):
    out = tmp_path / "deployed"
    folder.deploy_tree(
        runs_of("tiny", "corrected", ("fp32", "moe")),
        PARAMS,
        run_tree["features"],
        run_tree["runs"],
        out,
        ONE,
    )
    routing = pd.read_csv(out / "moe" / "routing.csv")
    assert list(routing.columns) == ["fold", "seed", "expert", "expert_name", "frequency"]
    assert list(routing["expert_name"]) == ["ternary_reference", "w4a8"] * 2
    assert routing.groupby("fold")["frequency"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert not (out / "fp32" / "routing.csv").exists()


def test_zclipped_int8_artefact_survives_an_outlier_clip_that_swamps_the_batch_scale(
    run_tree_of, tmp_path
):
    """One test clip far outside the training range (z ~ 1e3 on one dimension): in one batched
    call its value sets the per-tensor int8 activation scale for every clip; clipped to the
    training range it cannot."""
    import onnxruntime as ort

    tree = run_tree_of(["ptq_int8"])
    path = tree["features"] / "features.parquet"
    table = pd.read_parquet(path)
    table.loc[table["clip_id"] == "c00", "emb_0003"] = 2e3  # fold 1, test clip
    table.to_parquet(path)
    out = tmp_path / "d"
    frame = folder.deploy_tree(
        runs_of("tiny", "corrected", ("ptq_int8",)),
        PARAMS,
        tree["features"],
        tree["runs"],
        out,
        ONE,
    ).set_index("fold")
    assert frame.loc[1, "zclip_clipped_values"] >= 1
    x = table[table["fold"] == 1].filter(like="emb_").to_numpy(np.float32)

    def logits(name, batch):
        s = ort.InferenceSession(str(out / "ptq_int8" / name), providers=["CPUExecutionProvider"])
        if batch:
            return s.run(None, {"x": x})[0]
        return np.concatenate([s.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])

    others = slice(1, None)  # every clip but the outlier
    plain = np.abs(logits("fold1_seed0.onnx", True) - logits("fold1_seed0.onnx", False))[others]
    clipped = np.abs(
        logits("fold1_seed0.zclip.onnx", True) - logits("fold1_seed0.zclip.onnx", False)
    )[others]
    assert plain.max() > 10 * clipped.max()

"""The train stage keeps every variant whose inputs are unchanged (qmoe.training.reuse): a params
edit retrains that variant and the MoEs whose pool holds it, a code or features edit retrains all,
a variant dropped from the study leaves nothing behind, an incomplete run folder is retrained."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from repo_params import PARAMS, ROOT
from synthetic_features import feature_folder

from qmoe.executor import ExecutionConfig
from qmoe.io import from_section
from qmoe.models import ModelConfig
from qmoe.training.fit import TrainConfig
from qmoe.training.grid import RunSpec, train_protocol
from qmoe.training.reuse import INPUTS, Inputs, Outputs, Plan
from qmoe.variants import resolve

TRAIN = {**PARAMS["train"], "seeds": [0], "epochs": 6, "patience": 3}
ONE_SEED = from_section(TrainConfig, {**TRAIN, "moe": {**TRAIN["moe"], "patience": 3}}, "train")
MODEL = ModelConfig(hidden_sizes=(16, 8), dropout=0.1)
STUDY = ["fp32", "w4a8", "moe"]  # moe's pool: ternary_reference, w4a8, w8a8 (study.experts)


def _stamps(outputs: Outputs, variant: str) -> dict[str, int]:
    """Every output file of `variant` -> its modification time (ns): unchanged when kept."""
    files = [outputs.cost(variant), *outputs.folder(variant).rglob("*")]
    return {str(f): f.stat().st_mtime_ns for f in files if f.is_file()}


class Study:
    """One synthetic protocol's train stage, run again and again on the same outputs."""

    def __init__(self, root: Path):
        self.features = feature_folder(root)
        self.lock = root / "requirements.lock"
        shutil.copy(ROOT / "requirements.lock", self.lock)
        self.outputs = Outputs(root / "runs", root / "cost")
        self.variants = dict(PARAMS["variants"])

    def run(self, names: list[str] = STUDY, cfg=ONE_SEED) -> Plan:
        experts = PARAMS["study"]["experts"]
        return train_protocol(
            RunSpec("synthetic", "corrected"),
            {v: resolve(v, self.variants, experts) for v in names},
            MODEL,
            cfg,
            Inputs(self.features, ROOT / "stages" / "train.py", self.lock),
            self.outputs,
            "IRL",
            ExecutionConfig("local", 1),
        )


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    s = Study(tmp_path_factory.mktemp("reuse"))
    assert s.run() == Plan(train=STUDY, keep=[])
    return s


def test_a_second_run_keeps_everything_and_writes_nothing(study):
    before = {v: _stamps(study.outputs, v) for v in STUDY}
    assert study.run() == Plan(train=[], keep=STUDY)
    assert {v: _stamps(study.outputs, v) for v in STUDY} == before


def test_the_cost_file_records_the_inputs_and_the_run_folder_does_not(study):
    record = json.loads(study.outputs.cost("moe").read_text())[INPUTS]
    assert (
        record["variant"] == "moe" and record["train"]["moe"]["lr"] == PARAMS["train"]["moe"]["lr"]
    )
    experts = [e["name"] for e in record["variant_config"]["experts"]]
    assert experts == PARAMS["study"]["experts"]
    assert json.loads(study.outputs.cost("fp32").read_text())[INPUTS]["train"]["moe"] is None
    assert not any("inputs" in p.name for p in study.outputs.folder("fp32").rglob("*"))
    assert INPUTS not in json.loads((study.outputs.folder("fp32") / "metrics.json").read_text())


def test_editing_a_variant_retrains_it_and_the_moes_whose_pool_holds_it(study):
    kept = _stamps(study.outputs, "fp32")
    study.variants["w4a8"] = {**study.variants["w4a8"], "weight_bits": 2}
    try:
        assert study.run() == Plan(train=["w4a8", "moe"], keep=["fp32"])
    finally:
        study.variants["w4a8"] = PARAMS["variants"]["w4a8"]
    assert _stamps(study.outputs, "fp32") == kept
    assert study.run() == Plan(train=["w4a8", "moe"], keep=["fp32"])  # back to 4 bits
    assert study.run() == Plan(train=[], keep=STUDY)


def test_the_moe_recipe_retrains_only_moes(study):
    moe = dataclasses.replace(ONE_SEED.moe, lr=ONE_SEED.moe.lr / 2)
    assert study.run(cfg=dataclasses.replace(ONE_SEED, moe=moe)) == Plan(
        train=["moe"], keep=["fp32", "w4a8"]
    )
    assert study.run() == Plan(train=["moe"], keep=["fp32", "w4a8"])


def test_a_changed_library_lock_or_feature_table_retrains_everything(study):
    original = study.lock.read_bytes()
    study.lock.write_bytes(original + b"\n# torch upgraded\n")
    try:
        assert study.run(["fp32"]) == Plan(train=["fp32"], keep=[])
    finally:
        study.lock.write_bytes(original)
    assert study.run(["fp32"]) == Plan(train=["fp32"], keep=[])  # the lock as it was
    table = study.features / "features.parquet"
    saved = table.read_bytes()
    frame = pd.read_parquet(table)
    frame.loc[0, "emb_0000"] += 1.0
    frame.to_parquet(table, index=False)
    try:
        assert study.run(["fp32"]) == Plan(train=["fp32"], keep=[])
    finally:
        table.write_bytes(saved)
    assert study.run(["fp32"]) == Plan(train=["fp32"], keep=[])
    assert study.run(["fp32"]) == Plan(train=[], keep=["fp32"])


def test_a_dropped_variant_leaves_nothing_and_a_broken_folder_is_retrained(study):
    study.run(STUDY)
    assert study.run(["fp32", "w4a8"]) == Plan(train=[], keep=["fp32", "w4a8"])
    assert sorted(p.name for p in study.outputs.runs.iterdir()) == ["fp32", "w4a8"]
    assert sorted(p.name for p in study.outputs.costs.iterdir()) == ["fp32.json", "w4a8.json"]
    (study.outputs.folder("w4a8") / "metrics.json").unlink()
    (study.outputs.runs / "stray.txt").write_text("not a variant")
    assert study.run(["fp32", "w4a8"]) == Plan(train=["w4a8"], keep=["fp32"])
    assert not (study.outputs.runs / "stray.txt").exists()

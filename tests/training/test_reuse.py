"""The train stage keeps a variant only when its recorded inputs are today's and its run folder is
exactly as written (qmoe.training.reuse): a params edit retrains that variant and the MoEs whose
pool holds it, a code or features edit retrains all, a tampered, truncated, swapped or missing file
retrains, a kill at any write point never leaves a record describing other models, `force` retrains
everything, and energy settings retrain nothing."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
from repo_params import PARAMS, ROOT
from synthetic_features import feature_folder

from qmoe.contract.runs import TrainOutputs
from qmoe.contract.study import runs_of
from qmoe.executor import ExecutionConfig
from qmoe.io import from_section
from qmoe.models import ModelConfig
from qmoe.training import grid
from qmoe.training.fit import TrainConfig
from qmoe.training.grid import COUNTRY, train_protocol
from qmoe.training.reuse import FILES, INPUTS, Inputs, Plan
from qmoe.variants import resolve

TRAIN = {**PARAMS["train"], "seeds": [0], "epochs": 6, "patience": 3}
ONE_SEED = from_section(TrainConfig, {**TRAIN, "moe": {**TRAIN["moe"], "patience": 3}}, "train")
MODEL = ModelConfig(hidden_sizes=(16, 8), dropout=0.1)
STUDY = ["fp32", "w4a8", "moe"]  # moe's pool: ternary_reference, w4a8, w8a8 (study.experts)


def _stamps(outputs: TrainOutputs, variant: str) -> dict[str, int]:
    """Every output file of `variant` -> its modification time (ns): unchanged when kept."""
    files = [outputs.cost(variant), *outputs.folder(variant).rglob("*")]
    return {str(f): f.stat().st_mtime_ns for f in files if f.is_file()}


def _split(plan: Plan) -> tuple[list[str], list[str]]:
    return plan.train, plan.keep


class Study:
    """One synthetic protocol's train stage, run again and again on the same outputs."""

    def __init__(self, root: Path, protocol: str = "corrected"):
        self.features = feature_folder(root)
        self.lock = root / "requirements.lock"
        shutil.copy(ROOT / "requirements.lock", self.lock)
        self.outputs = TrainOutputs(root / "runs", root / "cost")
        self.variants = dict(PARAMS["variants"])
        self.protocol = protocol

    def run(self, names=STUDY, cfg=ONE_SEED, country="IRL", force=False) -> Plan:
        experts = PARAMS["study"]["experts"]
        return train_protocol(
            runs_of("synthetic", self.protocol, names),
            {v: resolve(v, self.variants, experts) for v in names},
            MODEL,
            cfg,
            Inputs(self.features, ROOT / "stages" / "train.py", self.lock),
            self.outputs,
            country,
            ExecutionConfig("local", 1),
            force=force,
        )


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    s = Study(tmp_path_factory.mktemp("reuse"))
    assert _split(s.run()) == (STUDY, [])
    return s


def test_a_second_run_keeps_everything_and_writes_nothing(study):
    before = {v: _stamps(study.outputs, v) for v in STUDY}
    assert study.run() == Plan(train=[], keep=STUDY, why={})
    assert {v: _stamps(study.outputs, v) for v in STUDY} == before


def test_the_cost_file_records_inputs_and_files_and_the_run_folder_does_not(study):
    cost = json.loads(study.outputs.cost("moe").read_text())
    record = cost[INPUTS]
    assert record["variant"] == "moe" and record["train"]["moe"]["lr"] == ONE_SEED.moe.lr
    experts = [e["name"] for e in record["variant_config"]["experts"]]
    assert experts == PARAMS["study"]["experts"]
    assert "energy_country" not in record and cost[COUNTRY] == "IRL"
    assert sorted(cost[FILES]) == sorted(
        p.relative_to(study.outputs.folder("moe")).as_posix()
        for p in study.outputs.folder("moe").rglob("*")
        if p.is_file()
    )
    assert json.loads(study.outputs.cost("fp32").read_text())[INPUTS]["train"]["moe"] is None
    assert not any("inputs" in p.name for p in study.outputs.folder("fp32").rglob("*"))
    assert INPUTS not in json.loads((study.outputs.folder("fp32") / "metrics.json").read_text())


def test_editing_a_variant_retrains_it_and_the_moes_whose_pool_holds_it(study):
    kept = _stamps(study.outputs, "fp32")
    study.variants["w4a8"] = {**study.variants["w4a8"], "weight_bits": 2}
    try:
        plan = study.run()
    finally:
        study.variants["w4a8"] = PARAMS["variants"]["w4a8"]
    assert _split(plan) == (["w4a8", "moe"], ["fp32"])
    assert plan.why["w4a8"] == "its inputs changed (variant_config.weight_bits)"
    assert _stamps(study.outputs, "fp32") == kept
    assert _split(study.run()) == (["w4a8", "moe"], ["fp32"])  # back to 4 bits
    assert _split(study.run()) == ([], STUDY)


def test_the_moe_recipe_retrains_only_moes(study):
    moe = dataclasses.replace(ONE_SEED.moe, lr=ONE_SEED.moe.lr / 2)
    plan = study.run(cfg=dataclasses.replace(ONE_SEED, moe=moe))
    assert _split(plan) == (["moe"], ["fp32", "w4a8"])
    assert plan.why["moe"] == "its inputs changed (train.moe.lr)"
    assert _split(study.run()) == (["moe"], ["fp32", "w4a8"])


def test_a_changed_library_lock_or_feature_table_retrains_everything(study):
    original = study.lock.read_bytes()
    study.lock.write_bytes(original + b"\n# torch upgraded\n")
    try:
        assert study.run(["fp32"]).why == {"fp32": "its inputs changed (code)"}
    finally:
        study.lock.write_bytes(original)
    assert _split(study.run(["fp32"])) == (["fp32"], [])  # the lock as it was
    table = study.features / "features.parquet"
    saved = table.read_bytes()
    frame = pd.read_parquet(table)
    frame.loc[0, "emb_0000"] += 1.0
    frame.to_parquet(table, index=False)
    try:
        assert study.run(["fp32"]).why == {"fp32": "its inputs changed (features)"}
    finally:
        table.write_bytes(saved)
    assert _split(study.run(["fp32"])) == (["fp32"], [])
    assert _split(study.run(["fp32"])) == ([], ["fp32"])


def test_a_dropped_variant_leaves_nothing_and_a_broken_folder_is_retrained(study):
    study.run(STUDY)
    assert _split(study.run(["fp32", "w4a8"])) == ([], ["fp32", "w4a8"])
    assert sorted(p.name for p in study.outputs.runs.iterdir()) == ["fp32", "w4a8"]
    assert sorted(p.name for p in study.outputs.costs.iterdir()) == ["fp32.json", "w4a8.json"]
    (study.outputs.folder("w4a8") / "metrics.json").unlink()
    (study.outputs.runs / "stray.txt").write_text("not a variant")
    plan = study.run(["fp32", "w4a8"])
    assert _split(plan) == (["w4a8"], ["fp32"])
    assert "missing: metrics.json" in plan.why["w4a8"]
    assert not (study.outputs.runs / "stray.txt").exists()


@pytest.mark.parametrize(
    "damage, why",
    [
        ("swap", "altered: fold1_seed0.pt"),  # cp w4a8/fold1_seed0.pt fp32/fold1_seed0.pt
        ("truncate", "altered: fold2_seed0.pt"),
        ("delete", "missing: fold3_seed0.pt"),
        ("extra", "not written by it: fold4_seed0.pt"),
    ],
)
def test_a_checkpoint_not_as_written_is_retrained_naming_it(study, damage, why):
    study.run(["fp32", "w4a8"])
    fp32, w4a8 = study.outputs.folder("fp32"), study.outputs.folder("w4a8")
    if damage == "swap":
        shutil.copy(w4a8 / "fold1_seed0.pt", fp32 / "fold1_seed0.pt")
    elif damage == "truncate":
        data = (fp32 / "fold2_seed0.pt").read_bytes()
        (fp32 / "fold2_seed0.pt").write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        (fp32 / "fold3_seed0.pt").unlink()
    else:
        shutil.copy(fp32 / "fold1_seed0.pt", fp32 / "fold4_seed0.pt")
    plan = study.run(["fp32", "w4a8"])
    assert _split(plan) == (["fp32"], ["w4a8"])
    assert (
        plan.why["fp32"].startswith(f"its run folder {fp32} is not as written")
        and why in (plan.why["fp32"])
    )
    assert _split(study.run(["fp32", "w4a8"])) == ([], ["fp32", "w4a8"])


def test_a_checkpoint_of_another_variant_is_refused_even_with_a_matching_digest(study):
    """The record names the file's digest and the checkpoint its own config: both must agree."""
    study.run(["fp32", "w4a8"])
    fp32 = study.outputs.folder("fp32")
    shutil.copy(study.outputs.folder("w4a8") / "fold1_seed0.pt", fp32 / "fold1_seed0.pt")
    cost = json.loads(study.outputs.cost("fp32").read_text())
    cost[FILES]["fold1_seed0.pt"] = grid.reuse.folder_digests(fp32)["fold1_seed0.pt"]
    study.outputs.cost("fp32").write_text(json.dumps(cost))
    plan = study.run(["fp32", "w4a8"])
    assert plan.why["fp32"] == (
        f"{fp32 / 'fold1_seed0.pt'} holds another model (variant, variant_config)"
    )


def test_force_retrains_every_variant(study):
    study.run(STUDY)
    plan = study.run(force=True)
    assert _split(plan) == (STUDY, []) and set(plan.why.values()) == {grid.reuse.FORCED}


def test_the_energy_country_retrains_nothing_and_recomputes_emissions(study):
    study.run(["fp32"])
    before = json.loads(study.outputs.cost("fp32").read_text())
    assert _split(study.run(["fp32"], country="FRA")) == ([], ["fp32"])
    after = json.loads(study.outputs.cost("fp32").read_text())
    assert after[COUNTRY] == "FRA" and after[INPUTS] == before[INPUTS]
    for old, new in zip(before["runs"], after["runs"], strict=True):
        assert new["train_energy_kwh"] == old["train_energy_kwh"]
        # CodeCarbon's offline mix: France's grid emits about a fifth of Ireland's per kWh
        assert 0.1 < new["train_emissions_kg"] / old["train_emissions_kg"] < 0.3
    assert _split(study.run(["fp32"])) == ([], ["fp32"])  # back to IRL: kept again


def _killed_at(study: Study, step: str) -> None:
    """Retrain fp32 in a forked child that is SIGKILLed right after write point `step`."""

    def child() -> None:
        def die(reached: str, variant: str) -> None:
            if reached == step:
                os.kill(os.getpid(), signal.SIGKILL)

        grid._reached = die
        study.run(["fp32"], force=True)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("step", grid.STEPS)
def test_a_kill_at_any_write_point_never_keeps_models_under_another_record(tmp_path, step):
    study = Study(tmp_path)
    study.run(["fp32"])
    _killed_at(study, step)
    plan = study.run(["fp32"])
    if step == grid.STEPS[-1]:  # everything written: the record describes the folder
        assert _split(plan) == ([], ["fp32"])
    else:
        assert _split(plan) == (["fp32"], [])
    assert _split(study.run(["fp32"])) == ([], ["fp32"])
    assert not [p for p in study.outputs.runs.iterdir() if p.name != "fp32"]  # no stale copies


def test_faithful_models_ignore_the_corrected_seeds(tmp_path):
    study = Study(tmp_path, protocol="faithful")
    assert _split(study.run(["fp32"])) == (["fp32"], [])
    seeds = dataclasses.replace(ONE_SEED, seeds=(5, 6), val_fraction=0.2)
    assert _split(study.run(["fp32"], cfg=seeds)) == ([], ["fp32"])
    assert _split(study.run(["fp32"], cfg=dataclasses.replace(ONE_SEED, split_seed=7))) == (
        ["fp32"],
        [],
    )

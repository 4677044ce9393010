"""dvc.yaml <-> stages/ <-> params.yaml consistency, and every params section builds its config."""

import copy
import re
from pathlib import Path

import pytest
import torch
import yaml
from repo_params import SECTION_CONFIGS, section_config

from qmoe.io import ConfigError, from_section, load_params

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = load_params(ROOT / "params.yaml")


def _body(stage: dict) -> dict:
    return stage.get("do", stage)


@pytest.mark.parametrize("name", sorted(DVC["stages"]))
def test_stage_script_named_after_stage_and_listed_in_deps(name):
    body = _body(DVC["stages"][name])
    script = f"stages/{name}.py"
    assert (ROOT / script).is_file(), f"{script} missing"
    assert body["cmd"].split()[:2] == ["python", script]
    assert script in body["deps"]


@pytest.mark.parametrize("name", sorted(DVC["stages"]))
def test_stage_reads_its_own_params_section(name):
    body = _body(DVC["stages"][name])
    groups = [p.split(".")[0] for p in body.get("params", [])]
    assert name in groups or name in ("download", "aggregate") or name in PARAMS
    for g in groups:
        assert g in PARAMS, f"stage {name} declares params group {g!r} absent from params.yaml"


def test_params_sections_are_exactly_those_the_stages_declare():
    """qmoe.cli refuses any other top-level section: no stage would read it."""
    from qmoe.cli import SECTIONS

    declared = {p.split(".")[0] for s in DVC["stages"].values() for p in _body(s).get("params", [])}
    assert set(SECTIONS) == declared == set(PARAMS)


def _key_paths(entry: dict, prefix: str = "") -> list[str]:
    """Every key of a params mapping, nested ones as dotted paths (mel, mel.n_fft, ...)."""
    out = []
    for k, v in entry.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _key_paths(v, f"{prefix}{k}.")
    return out


@pytest.mark.parametrize(
    "section,key", [(s, k) for s in SECTION_CONFIGS for k in _key_paths(PARAMS[s])]
)
def test_a_deleted_params_key_fails_naming_it_instead_of_falling_back(section, key):
    cls = section_config(section)
    params = copy.deepcopy(PARAMS[section])
    *parents, leaf = key.split(".")
    entry = params
    for part in parents:
        entry = entry[part]
    del entry[leaf]
    where = ".".join([section, *parents])
    with pytest.raises(ConfigError, match=f"^{re.escape(where)}: missing required key '{leaf}'$"):
        from_section(cls, params, section)


def test_train_config_builds_from_params():
    from qmoe.io import from_section
    from qmoe.training.fit import TrainConfig

    cfg = from_section(TrainConfig, PARAMS["train"], "train")
    assert cfg.seeds == (0, 1, 2) and cfg.split_seed == 42
    assert cfg.patience == 15 and cfg.batch_size == 64  # reference-method.md 6.4


def test_every_study_variant_builds():
    from qmoe import models
    from qmoe.variants import resolve

    study = PARAMS["study"]
    mlp = models.MLPConfig(in_dim=32, num_classes=5, hidden_sizes=(16, 8), dropout=0.1)
    for name in study["variants"] + study["moe_variants"]:
        net = models.build(resolve(name, PARAMS["variants"], study["experts"]), mlp)
        out = net(torch.randn(3, 32))
        assert (out if isinstance(out, torch.Tensor) else out.logits).shape == (3, 5)


def test_study_lists_only_known_names():
    from qmoe.training.protocols import PROTOCOLS

    assert set(PARAMS["study"]["protocols"]) <= set(PROTOCOLS)
    assert set(PARAMS["study"]["variants"]) <= set(PARAMS["variants"])


def test_default_study_is_the_papers_dataset_with_both_protocols():
    assert PARAMS["study"]["datasets"] == ["esc10"]  # committed in data/external: runs offline
    assert PARAMS["study"]["protocols"] == ["corrected", "faithful"]

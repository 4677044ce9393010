"""Trained artefacts: the ModelKey stem, and checkpoints whose meta disagrees with their weights."""

import pytest
import torch

from qmoe import models, variants
from qmoe.contract.checkpoint import (
    CheckpointMeta,
    checkpoint_bytes,
    load_checkpoint,
    save_checkpoint,
)
from qmoe.contract.runs import ModelKey
from qmoe.io import InputError
from qmoe.training.artefacts import Standardized, load_trained


def test_model_key_stem_round_trips_any_integer_seed():
    for key in (ModelKey(1, 0), ModelKey(10, 42), ModelKey(3, -1)):
        assert ModelKey.parse(key.stem) == key
    assert ModelKey(3, -1).stem == "fold3_seed-1"
    with pytest.raises(ValueError, match="'fold3' is not a model file stem"):
        ModelKey.parse("fold3")


# a meta as the train stage writes it (docs/architecture.md section 3): the keys on disk
META = {
    "dataset": "toy",
    "protocol": "corrected",
    "variant": "fp32",
    "variant_config": {"kind": "fp32"},
    "in_dim": 6,
    "num_classes": 3,
    "class_names": ["a", "b", "c"],
    "model": {"hidden_sizes": [4], "dropout": 0.1},
    "fold": 1,
    "seed": 0,
    "selected_epoch": 7,
    "best_epoch": 9,
    "test_clip_ids": ["c1", "c2"],
}


def _checkpoint(path, **meta_changes):
    mlp = models.MLPConfig(in_dim=6, num_classes=3, hidden_sizes=(4,), dropout=0.1)
    net = Standardized(models.build(variants.FP32Config(), mlp), torch.zeros(6), torch.ones(6))
    meta = {k: v for k, v in {**META, **meta_changes}.items() if v is not None}
    save_checkpoint(path, net.state_dict(), meta)
    return path


def test_a_checkpoint_written_the_current_way_loads_with_its_meta_typed(tmp_path):
    path = _checkpoint(tmp_path / "fold1_seed0.pt")
    meta = load_trained(path).meta
    assert meta == CheckpointMeta(
        "toy",
        "corrected",
        "fp32",
        variants.FP32Config(),
        6,
        3,
        ("a", "b", "c"),
        (4,),
        0.1,
        1,
        0,
        7,
        9,
        ("c1", "c2"),
    )
    assert meta.key == ModelKey(1, 0)
    assert meta.to_dict() == META and list(meta.to_dict()) == list(META)  # same keys, same order
    # the same bytes as a checkpoint saved from the plain dict
    state = load_checkpoint(path).state_dict
    assert checkpoint_bytes(state, meta.to_dict()) == path.read_bytes()


@pytest.mark.parametrize("key", ["protocol", "test_clip_ids", "model"])
def test_a_meta_lacking_a_key_is_refused_naming_it_and_the_file(tmp_path, key):
    path = _checkpoint(tmp_path / "fold1_seed0.pt", **{key: None})
    with pytest.raises(InputError, match=f"checkpoint {path}: meta lacks '{key}'"):
        load_trained(path)


def test_a_checkpoint_loads_as_its_variant(tmp_path):
    loaded = load_trained(_checkpoint(tmp_path / "fold1_seed0.pt"))
    assert loaded.variant == variants.FP32Config()
    assert loaded.model(torch.randn(2, 6)).shape == (2, 3)


def test_a_meta_claiming_a_huge_input_is_refused_before_building(tmp_path):
    path = _checkpoint(tmp_path / "fold1_seed0.pt", in_dim=10**9)
    with pytest.raises(
        InputError,
        match=r"meta in_dim 1000000000 does not match its norm_mean "
        r"of shape \(6,\)",
    ):
        load_trained(path)

"""Trained artefacts: the ModelKey stem, and checkpoints whose meta disagrees with their weights."""

import pytest
import torch

from qmoe import models, variants
from qmoe.io import InputError, save_checkpoint
from qmoe.training.artefacts import Standardized, load_trained
from qmoe.training.layout import ModelKey


def test_model_key_stem_round_trips_any_integer_seed():
    for key in (ModelKey(1, 0), ModelKey(10, 42), ModelKey(3, -1)):
        assert ModelKey.parse(key.stem) == key
    assert ModelKey(3, -1).stem == "fold3_seed-1"
    with pytest.raises(ValueError, match="'fold3' is not a model file stem"):
        ModelKey.parse("fold3")


def _checkpoint(path, **meta_changes):
    mlp = models.MLPConfig(in_dim=6, num_classes=3, hidden_sizes=(4,), dropout=0.1)
    net = Standardized(models.build(variants.FP32Config(), mlp), torch.zeros(6), torch.ones(6))
    meta = {
        "variant": "fp32",
        "variant_config": {"kind": "fp32"},
        "in_dim": 6,
        "num_classes": 3,
        "model": {"hidden_sizes": [4], "dropout": 0.1},
        "protocol": "corrected",
        **meta_changes,
    }
    save_checkpoint(path, net.state_dict(), meta)
    return path


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

import numpy as np
import pytest

from qmoe.io import ConfigError
from qmoe.training.protocols import Corrected, Faithful, protocol_class


def _data(n_per_class=20, classes=4, folds=5):
    labels = np.repeat(np.arange(classes), n_per_class)
    folds_ = np.tile(np.arange(1, folds + 1), n_per_class * classes // folds)
    groups = np.arange(len(labels)) // 2  # pairs of clips share a source recording
    return labels, folds_, groups


def test_corrected_uses_official_folds_and_disjoint_inner_validation():
    labels, folds, groups = _data()
    splits = Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=0)
    assert [s.fold for s in splits] == [1, 2, 3, 4, 5]
    for s in splits:
        assert np.array_equal(s.test, np.flatnonzero(folds == s.fold))
        assert set(s.train).isdisjoint(s.val)
        assert set(s.train).isdisjoint(s.test) and set(s.val).isdisjoint(s.test)
        assert len(s.train) + len(s.val) + len(s.test) == len(labels)
        assert len(s.val) == pytest.approx(0.1 * (len(labels) - len(s.test)), abs=1)
        # stratified: every class in the validation split
        assert set(labels[s.val]) == set(labels)


def test_corrected_is_seeded():
    labels, folds, groups = _data()
    a = Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=1)
    b = Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=1)
    c = Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=2)
    assert all(np.array_equal(x.val, y.val) for x, y in zip(a, b))
    assert any(not np.array_equal(x.val, y.val) for x, y in zip(a, c))


def test_corrected_without_official_folds_groups_recordings():
    labels, _, groups = _data()
    splits = Corrected(val_fraction=0.1).splits(labels, np.zeros(len(labels), int), groups, seed=0)
    for s in splits:
        assert set(groups[s.test]).isdisjoint(groups[np.r_[s.train, s.val]])


def test_faithful_matches_reference_split_and_validates_on_test():
    from sklearn.model_selection import StratifiedKFold

    labels, folds, groups = _data()
    splits = Faithful(n_folds=5, seed=42).splits(labels, folds, groups, seed=123)  # model seed does not move folds
    ref = list(StratifiedKFold(5, shuffle=True, random_state=42).split(labels, labels))
    for s, (tr, te) in zip(splits, ref):
        assert np.array_equal(s.train, np.sort(tr)) and np.array_equal(s.test, np.sort(te))
        assert np.array_equal(s.val, s.test)  # the reference's test-fold model selection


def test_mixed_fold_ids_are_refused():
    labels, folds, groups = _data()
    folds[0] = 0
    with pytest.raises(ValueError, match="fold 0"):
        Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=0)


def test_unknown_protocol_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown protocol 'nested'.*corrected.*faithful"):
        protocol_class("nested")


def test_val_fraction_range_checked():
    with pytest.raises(ConfigError, match="val_fraction"):
        Corrected(val_fraction=0.7)


def test_protocols_own_their_seeds_selection_rule_and_deploy_form():
    from pathlib import Path

    from qmoe.io import from_section, load_params
    from qmoe.training.fit import TrainConfig
    from qmoe.training.protocols import make_protocol

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    cfg = from_section(TrainConfig, {**params["train"], "seeds": [3, 5], "split_seed": 7}, "train")
    corrected, faithful = make_protocol("corrected", cfg), make_protocol("faithful", cfg)
    assert (corrected.name, corrected.seeds(cfg), corrected.frozen_deploy) == ("corrected", (3, 5), True)
    assert (faithful.name, faithful.seeds(cfg), faithful.frozen_deploy) == ("faithful", (7,), False)
    assert corrected.select_best(moe=False) and corrected.select_best(moe=True)
    assert not faithful.select_best(moe=False) and faithful.select_best(moe=True)

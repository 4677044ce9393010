from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import train_test_split

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
        assert len(s.val) == pytest.approx(0.1 * (len(labels) - len(s.test)), abs=2)
        # stratified: every class in the validation split; grouped: no shared recording
        assert set(labels[s.val]) == set(labels)
        assert set(groups[s.val]).isdisjoint(groups[s.train])


def test_corrected_is_seeded_and_the_validation_split_varies_with_the_model_seed():
    labels, folds, groups = _data()
    a = Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=1, model_seed=0)
    b = Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=1, model_seed=0)
    c = Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=2, model_seed=0)
    d = Corrected(val_fraction=0.1).splits(labels, folds, groups, seed=1, model_seed=1)
    assert all(np.array_equal(x.val, y.val) for x, y in zip(a, b))
    assert any(not np.array_equal(x.val, y.val) for x, y in zip(a, c))
    assert all(not np.array_equal(x.val, y.val) for x, y in zip(a, d))  # every fold
    assert all(np.array_equal(x.test, y.test) for x, y in zip(a, d))  # test folds never move


ESC10_META = Path(__file__).resolve().parents[2] / "src/qmoe/datasets/esc10_meta.csv"


def test_esc10_inner_validation_never_shares_a_recording_with_training():
    """ESC-10's real recording ids (src_file): a recording cut into several 5 s clips has all of
    them on one side. The former ungrouped split put a sibling of many validation clips in
    training (the issue measured 41-44 %)."""
    meta = pd.read_csv(ESC10_META)
    labels = np.searchsorted(np.unique(meta["target"]), meta["target"].to_numpy())
    folds, groups = meta["fold"].to_numpy(), meta["src_file"].astype(str).to_numpy()
    protocol = Corrected(val_fraction=0.1)
    leaked_before = []
    for model_seed in (0, 1, 2):
        for s in protocol.splits(labels, folds, groups, seed=42, model_seed=model_seed):
            assert set(groups[s.val]).isdisjoint(groups[s.train])
            assert len(s.train) + len(s.val) == 320 and 24 <= len(s.val) <= 40
            shares = np.bincount(labels[s.val], minlength=10) / len(s.val)
            assert len(set(labels[s.val])) >= 9 and shares.max() <= 0.2  # stratified
            rest = np.r_[s.train, s.val]
            tr, va = train_test_split(
                rest, test_size=32, stratify=labels[rest], random_state=42 + s.fold
            )  # the former split
            leaked_before.append(np.isin(groups[va], groups[tr]).mean())
    assert np.mean(leaked_before) > 0.3


def test_corrected_without_official_folds_groups_recordings():
    labels, _, groups = _data()
    splits = Corrected(val_fraction=0.1).splits(labels, np.zeros(len(labels), int), groups, seed=0)
    for s in splits:
        assert set(groups[s.test]).isdisjoint(groups[np.r_[s.train, s.val]])


def test_faithful_matches_reference_split_and_validates_on_test():
    from sklearn.model_selection import StratifiedKFold

    labels, folds, groups = _data()
    splits = Faithful(n_folds=5, seed=42).splits(
        labels, folds, groups, seed=123
    )  # model seed does not move folds
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
    from qmoe.training.protocols import Monitor, make_protocol

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    cfg = from_section(TrainConfig, {**params["train"], "seeds": [3, 5], "split_seed": 7}, "train")
    corrected, faithful = make_protocol("corrected", cfg), make_protocol("faithful", cfg)
    assert (corrected.name, corrected.seeds(cfg), corrected.frozen_deploy) == (
        "corrected",
        (3, 5),
        True,
    )
    assert (faithful.name, faithful.seeds(cfg), faithful.frozen_deploy) == ("faithful", (7,), False)
    loss, f1 = Monitor.VAL_LOSS, Monitor.WEIGHTED_F1
    assert [corrected.selection(moe) for moe in (False, True)] == [(loss, True), (loss, True)]
    assert [faithful.selection(moe) for moe in (False, True)] == [(f1, False), (f1, True)]


@pytest.mark.parametrize("name", ["corrected", "faithful"])
def test_train_fields_a_protocol_calls_unused_change_none_of_its_splits_or_seeds(name):
    """The train stage's reuse record leaves these fields out (qmoe.training.reuse): editing one
    must not change the protocol's folds, validation splits, seeds or checkpoint rule."""
    import dataclasses

    from qmoe.io import from_section, load_params
    from qmoe.training.fit import TrainConfig, recipe_for
    from qmoe.training.protocols import make_protocol

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    base = from_section(TrainConfig, params["train"], "train")
    edits = {"seeds": (11, 12), "val_fraction": 0.3, "faithful_folds": 4, "loss_min_delta": 0.05}
    labels, folds, groups = _data()

    def view(cfg):
        p = make_protocol(name, cfg)
        per_seed = [p.splits(labels, folds, groups, cfg.split_seed, s) for s in p.seeds(cfg)]
        arrays = [(s.fold, *map(tuple, (s.train, s.val, s.test))) for x in per_seed for s in x]
        recipes = [recipe_for(cfg, m, p.selection(m is not None)) for m in (None, cfg.moe)]
        return p.seeds(cfg), recipes, arrays

    unused = make_protocol(name, base).unused_train_fields
    assert unused and set(unused) <= set(edits)
    for field in unused:
        assert view(dataclasses.replace(base, **{field: edits[field]})) == view(base), field
    for field in set(edits) - set(unused):  # the fields it reads do change something
        assert view(dataclasses.replace(base, **{field: edits[field]})) != view(base), field


# --- faithful = the reference's task; the docs say what the code does (issue 12 item 6) -------


def _protocols():
    from qmoe.io import from_section, load_params
    from qmoe.training.fit import TrainConfig
    from qmoe.training.protocols import make_protocol

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    cfg = from_section(TrainConfig, params["train"], "train")
    return {name: make_protocol(name, cfg) for name in ("corrected", "faithful")}


def test_docs_protocols_page_states_each_protocols_own_lines_verbatim():
    docs = (Path(__file__).resolve().parents[2] / "docs/protocols.md").read_text()
    for name, protocol in _protocols().items():
        block = docs[docs.index(f"`{name}`:\n") :]
        listed = [line[2:] for line in block.split("\n\n", 2)[1].splitlines()]
        assert listed == protocol.describe(), name


def test_faithful_sees_the_references_random_head_corrected_the_pooled_features():
    from qmoe.features.backbones import random_projection
    from qmoe.training.protocols import (
        REFERENCE_PROJECTION_SEED,
        feature_table,
        reference_projection,
    )

    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        rng.standard_normal((6, 8)).astype(np.float32), columns=[f"emb_{i:04d}" for i in range(8)]
    ).assign(clip_id=list("abcdef"))
    assert feature_table("corrected", table).equals(table)
    faithful = feature_table("faithful", table)
    head = random_projection(8, REFERENCE_PROJECTION_SEED)
    weight, bias = reference_projection(8, REFERENCE_PROJECTION_SEED)
    assert torch.equal(weight, head.weight) and torch.equal(bias, head.bias)
    expected = head(torch.from_numpy(table.filter(like="emb_").to_numpy().copy())).detach().numpy()
    assert np.allclose(faithful.filter(like="emb_").to_numpy(), expected, rtol=1e-6, atol=1e-7)
    before = torch.get_num_threads()
    torch.set_num_threads(1 if before > 1 else 2)
    try:  # the same numbers whatever the thread count
        assert feature_table("faithful", table).equals(faithful)
    finally:
        torch.set_num_threads(before)
    assert faithful["clip_id"].tolist() == list("abcdef")
    assert not faithful.filter(like="emb_").equals(table.filter(like="emb_"))


def test_faithful_learns_the_scrambled_five_way_task_on_esc50_only():
    corrected, faithful = _protocols().values()
    assert faithful.label_set("esc50", "classes") == "scrambled"
    assert faithful.label_set("esc10", "classes") == "classes"
    assert corrected.label_set("esc50", "classes") == "classes"


def test_the_train_stage_refuses_a_projected_feature_table(tmp_path):
    import json

    from qmoe.contract.runs import TrainOutputs
    from qmoe.contract.study import runs_of
    from qmoe.executor import ExecutionConfig
    from qmoe.io import ConfigError, from_section, load_params
    from qmoe.models import ModelConfig
    from qmoe.training.fit import TrainConfig
    from qmoe.training.grid import train_protocol
    from qmoe.training.reuse import Inputs
    from qmoe.variants import FP32Config

    root = Path(__file__).resolve().parents[2]
    params = load_params(root / "params.yaml")
    pd.DataFrame({"emb_0000": [0.0]}).to_parquet(tmp_path / "features.parquet")
    (tmp_path / "features.json").write_text(json.dumps({"head": "random_projection"}))
    with pytest.raises(ConfigError, match="features.head: 'random_projection': keep 'pooled'"):
        train_protocol(
            runs_of("esc10", "faithful", ["fp32"]),
            {"fp32": FP32Config()},
            from_section(ModelConfig, params["model"], "model"),
            from_section(TrainConfig, params["train"], "train"),
            Inputs(tmp_path, root / "stages" / "train.py", root / "requirements.lock"),
            TrainOutputs(tmp_path / "out", tmp_path / "cost"),
            "IRL",
            from_section(ExecutionConfig, params["execution"], "execution"),
        )
    assert not (tmp_path / "out").exists()

"""params `train` is validated at load time, before any work (qmoe.training.fit.TrainConfig)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qmoe.io import ConfigError, from_section, load_params
from qmoe.training.fit import TrainConfig
from qmoe.training.protocols import Monitor, Selection

ROOT = Path(__file__).resolve().parents[2]
PARAMS = load_params(ROOT / "params.yaml")


@pytest.mark.parametrize(
    "seeds, message",
    [
        ([0, 0], r"^train\.seeds: \[0, 0\]: seed\(s\) \[0\] repeated$"),
        ([0, 1, 2, 1], r"^train\.seeds: \[0, 1, 2, 1\]: seed\(s\) \[1\] repeated$"),
        ([-1], r"^train\.seeds: \[-1\]: negative seed\(s\) \[-1\]$"),
        ([], r"^train\.seeds: needs at least one seed$"),
    ],
)
def test_seeds_must_be_unique_and_non_negative(seeds, message):
    with pytest.raises(ConfigError, match=message):
        from_section(TrainConfig, {**PARAMS["train"], "seeds": seeds}, "train")
    assert from_section(TrainConfig, {**PARAMS["train"], "seeds": [2, 0]}, "train").seeds == (2, 0)


def test_the_train_stage_refuses_repeated_seeds_before_any_work(tmp_path):
    params = {**PARAMS, "train": {**PARAMS["train"], "seeds": [0, 0]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "runs" / "corrected"
    cmd = [
        sys.executable,
        str(ROOT / "stages" / "train.py"),
        "--dataset",
        "toy",
        "--protocol",
        "corrected",
        "--features",
        str(tmp_path / "no-features"),
        "--lock",
        str(ROOT / "requirements.lock"),
        "--out",
        str(out),
        "--cost",
        str(tmp_path / "runs" / "cost"),
    ]
    r = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )  # in the folder of its params.yaml, as DVC runs it
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "error: train.seeds: [0, 0]: seed(s) [0] repeated"
    assert not (tmp_path / "runs").exists()


# --- which epoch is kept: validation loss under corrected, the reference's F1 under faithful ----


def _scripted_fit(monkeypatch, losses, f1s, selection, moe=False, **train):
    """fit() on a tiny model whose per-epoch validation (loss, weighted F1) is scripted; returns
    the FitResult and whether the kept weights are those of the selected epoch."""
    import copy

    import torch

    from qmoe.training import fit as fit_module
    from qmoe.training.metrics import Scores

    cfg = from_section(
        TrainConfig,
        {**PARAMS["train"], "epochs": len(losses), "patience": 3, **train},
        "train",
    )
    recipe = fit_module.recipe_for(cfg, cfg.moe if moe else None, selection)
    states = []

    def scripted(model, x, y, weights, num_classes):
        states.append(copy.deepcopy(model.state_dict()))  # the weights this epoch ends with
        i = len(states) - 1
        return losses[i], Scores(f1s[i], f1s[i], f1s[i])

    monkeypatch.setattr(fit_module, "_validate", scripted)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    x, y = torch.randn(16, 4), torch.arange(16) % 2
    result = fit_module.fit(model, x, y, x, y, 2, recipe, torch.Generator().manual_seed(0))
    kept = states[result.selected_epoch - 1]
    same = all(torch.equal(v, kept[k]) for k, v in model.state_dict().items())
    return result, same


LOSS = Selection(Monitor.VAL_LOSS, keep_best=True)
F1_BEST, F1_LAST = Selection(Monitor.WEIGHTED_F1, True), Selection(Monitor.WEIGHTED_F1, False)
FLAT_F1 = [0.5] * 12


def test_loss_selection_keeps_the_lowest_loss_beyond_min_delta(monkeypatch):
    # epoch 3 improves on epoch 2 by 0.004 < min_delta 0.01: not a new best; epoch 5 by 0.1 is
    losses = [1.0, 0.8, 0.796, 0.79, 0.7, 0.75, 0.72, 0.71, 0.9, 0.9]
    r, kept = _scripted_fit(monkeypatch, losses, FLAT_F1, LOSS, loss_min_delta=0.01)
    assert (r.best_epoch, r.selected_epoch, r.epochs_run) == (5, 5, 8)  # patience 3 after 5
    assert kept
    # without min_delta every drop counts: epoch 3 and 4 are bests on the way to 5
    r0, _ = _scripted_fit(monkeypatch, [1.0, 0.8, 0.796, 0.79, 0.7, 0.8, 0.8, 0.8], FLAT_F1, LOSS)
    assert (r0.best_epoch, r0.epochs_run) == (5, 8)
    r1, _ = _scripted_fit(monkeypatch, [1.0, 0.8, 0.796, 0.9, 0.9, 0.9], FLAT_F1, LOSS)
    assert r1.best_epoch == 3  # 0.796 < 0.8 counts when min_delta = 0


def test_loss_selection_keeps_the_earliest_of_tied_epochs(monkeypatch):
    r, kept = _scripted_fit(monkeypatch, [1.0, 0.6, 0.6, 0.6, 0.6, 0.6], FLAT_F1, LOSS)
    assert (r.best_epoch, r.selected_epoch, r.epochs_run) == (2, 2, 5) and kept


def test_loss_selection_ignores_f1_and_early_stops_on_loss(monkeypatch):
    # F1 peaks at epoch 1 and never improves; the loss keeps falling to epoch 6
    f1s = [0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    losses = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.6, 0.6, 0.6, 0.6]
    r, kept = _scripted_fit(monkeypatch, losses, f1s, LOSS)
    assert (r.best_epoch, r.selected_epoch, r.epochs_run) == (6, 6, 9) and kept


def test_faithful_selection_is_the_reference_f1_rule_whatever_the_loss(monkeypatch):
    losses = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]  # falls throughout: never consulted
    f1s = [0.5, 0.7, 0.7005, 0.7, 0.7, 0.69, 0.7, 0.7]
    single, _ = _scripted_fit(monkeypatch, losses, f1s, F1_LAST)
    # single models: strict F1 improvement (0.7005 > 0.7), last epoch kept
    assert (single.best_epoch, single.selected_epoch, single.epochs_run) == (3, 6, 6)
    moe, kept = _scripted_fit(monkeypatch, losses, f1s, F1_BEST, moe=True)
    # MoEs: train.moe.min_delta (0.001): 0.7005 is no improvement, epoch 2 is kept
    assert PARAMS["train"]["moe"]["min_delta"] == 1.0e-3
    assert (moe.best_epoch, moe.selected_epoch, moe.epochs_run) == (2, 2, 8) and kept  # patience 30


def test_loss_min_delta_must_not_be_negative():
    with pytest.raises(ConfigError, match=r"^train\.loss_min_delta: -0\.1 < 0$"):
        from_section(TrainConfig, {**PARAMS["train"], "loss_min_delta": -0.1}, "train")

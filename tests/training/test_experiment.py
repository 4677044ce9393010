from pathlib import Path

import numpy as np
import pytest
import torch

from qmoe.io import from_section, load_params
from qmoe.models import ModelConfig
from qmoe.training import experiment
from qmoe.training.fit import TrainConfig, class_weights, fit, recipe_for
from qmoe.training.protocols import Corrected, Faithful
from qmoe.variants import FP32Config

FP32 = FP32Config()
MLP = ModelConfig(hidden_sizes=(32, 16), dropout=0.1)
PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")


def _embeddings(n_per_class=80, classes=4, dim=12, seed=0):
    """Planted class structure: class means far apart relative to the noise."""
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(classes, dim, generator=g)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centers[y] + torch.randn(len(y), dim, generator=g)
    n = len(y)
    return experiment.Embeddings(
        x,
        y,
        np.tile(np.arange(1, 5), n // 4),
        np.arange(n).astype(str),
        [f"c{i}" for i in range(n)],
        [f"class{i}" for i in range(classes)],
    )


CFG = from_section(
    TrainConfig, {**PARAMS["train"], "epochs": 40, "patience": 8, "seeds": [0]}, "train"
)


def _run_one(data, split, seed, variant, cfg, moe_cfg, protocol):
    job = experiment.TrainJob("d", protocol.name, "v", data, variant, MLP, cfg, moe_cfg, protocol)
    return experiment.run_one(job, split, seed)


def _run(data, protocol, seed=0):
    split = protocol.splits(data.y.numpy(), data.folds, data.groups, seed=42)[0]
    return _run_one(data, split, seed, FP32, CFG, None, protocol), split


def test_fp32_learns_planted_classes_and_is_deterministic():
    data = _embeddings()
    a, _ = _run(data, Corrected(val_fraction=0.1))
    b, _ = _run(data, Corrected(val_fraction=0.1))
    assert a.metrics["macro_f1"] > 0.9
    assert a.fit.history == b.fit.history
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_corrected_protocol_no_test_sample_influences_any_choice():
    data = _embeddings()
    ref, split = _run(data, Corrected(val_fraction=0.1))
    # Scramble every test-fold sample (features and labels): training, early stopping, LR
    # schedule and checkpoint choice must not move at all.
    x, y = data.x.clone(), data.y.clone()
    x[split.test] = 100 * torch.randn(len(split.test), x.shape[1])
    y[split.test] = (y[split.test] + 1) % 4
    moved, _ = _run(data._replace(x=x, y=y), Corrected(val_fraction=0.1))
    assert moved.fit.history == ref.fit.history
    assert moved.fit.selected_epoch == ref.fit.selected_epoch
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, moved.model.state_dict()[k]), k


def test_faithful_protocol_lets_the_test_fold_steer_training():
    data = _embeddings()
    ref, split = _run(data, Faithful(n_folds=5, seed=42))
    y = data.y.clone()
    y[split.test] = (y[split.test] + 1) % 4
    moved, _ = _run(data._replace(y=y), Faithful(n_folds=5, seed=42))
    assert moved.fit.history != ref.fit.history  # validation = test fold (reference 6.3)


def test_faithful_single_model_keeps_last_epoch_corrected_keeps_best():
    data = _embeddings()
    faithful, _ = _run(data, Faithful(n_folds=5, seed=42))
    corrected, _ = _run(data, Corrected(val_fraction=0.1))
    assert faithful.fit.selected_epoch == faithful.fit.epochs_run
    assert corrected.fit.selected_epoch == corrected.fit.best_epoch


def test_early_stopping_after_patience_epochs_without_improvement():
    data = _embeddings()
    r, _ = _run(data, Corrected(val_fraction=0.1))
    assert r.fit.epochs_run <= CFG.epochs
    if r.fit.epochs_run < CFG.epochs:
        assert r.fit.epochs_run - r.fit.best_epoch == CFG.patience


def test_non_finite_loss_names_the_run_and_epoch():
    data = _embeddings()
    model = torch.nn.Linear(12, 4)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    recipe = recipe_for(CFG, None, Corrected(val_fraction=0.1).selection(moe=False))
    with pytest.raises(
        FloatingPointError, match=r"esc10/corrected/fp32 fold 1 seed 0: loss became nan at epoch 1"
    ):
        fit(
            model,
            data.x,
            data.y,
            data.x,
            data.y,
            4,
            recipe,
            torch.Generator().manual_seed(0),
            "esc10/corrected/fp32 fold 1 seed 0",
        )


def test_class_weights_are_inverse_counts():
    w = class_weights(torch.tensor([0, 0, 1, 1, 1, 1]), 3)
    assert w.tolist() == [0.5, 0.25, 0.0]


def test_unknown_label_set_lists_valid_names():
    import pandas as pd

    from qmoe.io import ConfigError

    table = pd.DataFrame(
        {
            "clip_id": ["a"],
            "label_id": [0],
            "label_name": ["x"],
            "fold": [1],
            "source_id": ["s"],
            "emb_0000": [0.0],
        }
    )
    with pytest.raises(ConfigError, match=r"unknown label set.*'major', 'scrambled'"):
        experiment.embeddings_from_table(table, "fine")
    with pytest.raises(ConfigError, match="needs column 'major_id'"):
        experiment.embeddings_from_table(table, "major")


# --- deployment-batch scoring (issue 12 item 3) ------------------------------------------------


def _ptq_model(data):
    """An untrained FP32 MLP on `data`, deployed as dynamic int8 (activation scale per call)."""
    from qmoe import models
    from qmoe.variants import PTQInt8Config

    mlp = models.mlp_config(MLP, in_dim=data.x.shape[1], num_classes=4)
    torch.manual_seed(0)
    return models.deploy(models.build(PTQInt8Config("auto"), mlp), PTQInt8Config("auto"))


def test_batch_1_predictions_do_not_depend_on_the_other_clips():
    """ptq_int8 quantises activations over the whole call's tensor: a whole-fold call changes
    some predictions with the company a clip keeps; batch 1 never does."""
    from qmoe.training.fit import predict

    data = _embeddings(n_per_class=40)
    x = data.x * torch.linspace(0.2, 5.0, len(data.x))[:, None]  # clips of very different scale
    model = _ptq_model(data)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    alone = predict(model, x, batch_size=1).pred
    assert torch.equal(predict(model, x[perm], batch_size=1).pred, alone[perm])
    assert torch.equal(predict(model, x[:17], batch_size=1).pred, alone[:17])
    assert (predict(model, x).pred != alone).any()  # whole-fold scoring is transductive
    assert torch.equal(predict(model, x, batch_size=64).pred[:64], predict(model, x[:64]).pred)


def test_corrected_scores_every_test_clip_alone_faithful_in_batches_of_64():
    import copy

    from qmoe import models
    from qmoe.training.fit import predict
    from qmoe.variants import PTQInt8Config

    assert (Corrected.eval_batch, Faithful.eval_batch) == (1, 64)
    data = _embeddings()
    data = data._replace(x=data.x * torch.linspace(0.2, 5.0, len(data.x))[:, None])
    protocol = Corrected(val_fraction=0.1)
    split = protocol.splits(data.y.numpy(), data.folds, data.groups, seed=42)[0]
    ptq = PTQInt8Config("auto")
    r = _run_one(data, split, 0, ptq, CFG, None, protocol)
    deployed = models.deploy(copy.deepcopy(r.model), ptq)
    one_by_one = torch.stack([predict(deployed, data.x[[i]]).pred[0] for i in split.test])
    assert torch.equal(r.prediction.pred, one_by_one)


# --- uncertainty routing that can be judged (issue 12 item 4) ---------------------------------


def _route_run(protocol, name="moe_curiosity_route"):
    from qmoe.training.fit import MoETrainConfig
    from qmoe.variants import resolve

    data = _embeddings(n_per_class=40)
    cfg = from_section(TrainConfig, {**PARAMS["train"], "epochs": 4, "seeds": [0]}, "train")
    moe_cfg = MoETrainConfig(
        lr=1e-3, patience=3, min_delta=1e-3, check_mc_samples=(10, 50), check_banks=2
    )
    variant = resolve(name, PARAMS["variants"], PARAMS["study"]["experts"])
    split = protocol.splits(data.y.numpy(), data.folds, data.groups, seed=42)[0]
    r = _run_one(data, split, 0, variant, cfg, moe_cfg, protocol)
    return data, split, r


def test_route_threshold_comes_from_validation_corrected_and_training_part_faithful():
    import copy

    from qmoe.training import routing

    for protocol, part in (
        (Corrected(val_fraction=0.1), "val"),
        (Faithful(n_folds=5, seed=42), "train"),
    ):
        data, split, r = _route_run(protocol)
        rows = getattr(split, part)
        rec = r.routing
        assert rec["calibration"] == protocol.calibration and rec["n_calibration"] == len(rows)
        model = copy.deepcopy(r.model).eval()
        u = model.net.uncertainty((data.x[rows] - model.norm_mean) / model.norm_std)
        assert rec["tau"] == pytest.approx(float(torch.quantile(u, 0.9)))
        assert r.metrics["n_calibration"] == len(rows)
        assert r.metrics["escalated_share"] == pytest.approx(np.mean(rec["escalated"]))
        assert len(rec["escalated"]) == len(split.test) and routing.escalates(r.model)
        sens = rec["sensitivity"]
        assert [(s["mc_samples"], s["bank"]) for s in sens] == [(10, 0), (10, 1), (50, 0), (50, 1)]
        assert model.net.mc_samples == 50  # params: route deploys T = 50
        own = sens[2]  # T = 50 (the model's), bank 0: the deployed routing
        assert own["jaccard_vs_deployed"] == 1.0 and own["tau"] == pytest.approx(rec["tau"])
        assert own["share"] == pytest.approx(np.mean(rec["escalated"]))
        assert own["macro_f1"] == pytest.approx(r.metrics["macro_f1"])
        counts = np.array(rec["bank_counts"]["10"])
        assert sorted(rec["bank_counts"]) == ["10", "50"] and counts.max() <= 2
        assert counts.sum() == round(len(split.test) * (sens[0]["share"] + sens[1]["share"]))


def test_route_records_both_predictions_of_the_same_weights_per_test_clip():
    """pred_none (nothing escalates) and pred_escalated (everything does): the deployed
    prediction is pred_escalated where u > tau and pred_none elsewhere; a clip whose router
    already picks the most precise expert predicts the same either way."""
    import copy

    data, split, r = _route_run(Corrected(val_fraction=0.1))
    rec = experiment.curiosity_record(data, split, r.prediction, r.routing)
    n = len(split.test)
    assert [len(rec[k]) for k in ("pred_none", "pred_escalated", "escalated", "u")] == [n] * 4
    up, none, pred = (np.array(rec[k]) for k in ("pred_escalated", "pred_none", "pred"))
    escalated = np.array(rec["escalated"])
    assert 0 < escalated.sum() < n
    assert np.array_equal(np.where(escalated, up, none), pred)  # batch 1: exactly the deployed
    model = copy.deepcopy(r.model).eval()
    with torch.no_grad():
        z = (data.x[split.test] - model.norm_mean) / model.norm_std
        top = model.net.router(z).argmax(dim=-1).numpy()
    target = model.net.strategy.target
    assert np.array_equal(up[top == target], none[top == target])
    assert (up != none).any()  # escalation changes some predictions
    assert r.model.net.strategy.tau.item() == pytest.approx(rec["tau"])  # the model is unchanged


def test_the_placebo_records_its_escalations_without_a_sensitivity_check():
    data, split, r = _route_run(Corrected(val_fraction=0.1), "moe_route_random")
    assert r.routing["sensitivity"] == [] and r.routing["bank_counts"] == {}
    assert r.routing["n_calibration"] == len(split.val)
    rec = experiment.curiosity_record(data, split, r.prediction, r.routing)
    assert rec["escalated"] == r.routing["escalated"] and len(rec["u"]) == len(split.test)

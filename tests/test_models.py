import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from qmoe import models
from qmoe.io import ConfigError, load_params
from qmoe.moe.layer import MoE, MoEOutput
from qmoe.quant import ptq
from qmoe.quant.layers import (
    BitLinear,
    BitNet158Linear,
    PreNormLinear,
    QuantLinear,
    TernaryReferenceLinear,
)
from qmoe.variants import MoEConfig, resolve

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
VARIANTS, EXPERTS = PARAMS["variants"], PARAMS["study"]["experts"]
SMALL = models.MLPConfig(in_dim=24, num_classes=5, hidden_sizes=(16, 8), dropout=0.1)
PAPER = dict(hidden_sizes=(640, 320), dropout=0.1953403862875243)
QUANT_KINDS = ["w1a8", "w2a8", "w4a8", "w8a8", "q16_reference", "ternary_reference", "bitnet158"]


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(name, mlp=SMALL, variants=VARIANTS, experts=EXPERTS):
    return models.build(resolve(name, variants, experts), mlp)


@pytest.mark.parametrize(
    "classes,fp32,quantised",
    [(50, 1_206_770, 1_211_122), (10, 1_193_930, 1_198_282), (5, 1_192_325, 1_196_677)],
)
def test_parameter_counts_of_reference_6_2(classes, fp32, quantised):
    mlp = models.MLPConfig(in_dim=1536, num_classes=classes, **PAPER)
    for name in ["fp32", "ptq_int8", "fp16"]:
        assert _n_params(_build(name, mlp)) == fp32
    for name in QUANT_KINDS:
        assert _n_params(_build(name, mlp)) == quantised
    moe = _build("moe", mlp)
    assert _n_params(moe) == 204_992 + 65 * 3 + 3 * quantised


def test_fp32_mlp_structure_and_quantised_hidden_layers():
    net = _build("fp32")
    types = [type(m) for m in net.body]
    assert types == [nn.Linear, nn.LayerNorm, nn.ReLU, nn.Dropout] * 2
    assert type(net.head) is nn.Linear and net.body[3].p == 0.1
    expected = {
        "w4a8": BitLinear,
        "q16_reference": PreNormLinear,
        "ternary_reference": TernaryReferenceLinear,
        "bitnet158": BitNet158Linear,
    }
    for name, cls in expected.items():
        q = _build(name)
        assert type(q.body[0]) is cls and type(q.body[4]) is cls
        assert type(q.head) is nn.Linear  # FP32 classifier head (7.1)
    assert _build("w4a8").body[0].bits == 4


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_params_variant_builds_runs_and_deploys(name):
    torch.manual_seed(0)
    cfg = resolve(name, VARIANTS, EXPERTS)
    net = models.build(cfg, SMALL)
    x = torch.randn(6, 24)
    out = net(x)
    if isinstance(cfg, MoEConfig):
        assert isinstance(net, MoE) and isinstance(out, MoEOutput)
        assert out.logits.shape == (6, 5)
    else:
        assert out.shape == (6, 5) and out.dtype == torch.float32
    deployed = models.deploy(net, cfg)
    assert not deployed.training
    out = deployed(x)
    logits = out.logits if isinstance(cfg, MoEConfig) else out
    assert logits.shape == (6, 5) and torch.isfinite(logits).all()


def test_deploy_is_identity_for_training_form_variants():
    net = _build("w4a8")
    assert models.deploy(net, resolve("w4a8", VARIANTS, EXPERTS)) is net


@pytest.mark.parametrize("name", ["w2a8", "ternary_reference", "bitnet158", "moe_curiosity_log"])
def test_deploy_with_frozen_quantised_layers_keeps_outputs(name):
    torch.manual_seed(0)
    net = _build(name).eval()
    x = torch.randn(8, 24)
    torch.manual_seed(1)
    ref = net(x)
    frozen = models.deploy(
        copy.deepcopy(net), resolve(name, VARIANTS, EXPERTS), freeze_quantized=True
    )
    assert all(m.frozen_codes is not None for m in frozen.modules() if isinstance(m, QuantLinear))
    torch.manual_seed(1)
    out = frozen(x)
    if isinstance(ref, MoEOutput):
        ref, out = ref.logits, out.logits
    assert torch.equal(out, ref)


def test_route_escalates_to_the_highest_precision_expert():
    moe = _build("moe_curiosity_route")
    assert moe.strategy.target == 2  # [ternary_reference, w4a8, w8a8]
    moe = _build("moe_curiosity_route", experts=["w8a8", "fp32", "ternary_reference"])
    assert moe.strategy.target == 1


def test_moe_in_deploy_converts_ptq_experts_only():
    cfg = resolve("moe", VARIANTS, ["ptq_int8", "w4a8"])
    moe = models.build(cfg, SMALL)
    deployed = models.deploy(moe, cfg)
    assert ptq.is_dynamic_int8(deployed.experts[0].head)
    assert type(deployed.experts[1].body[0]) is BitLinear
    assert type(deployed.router.fc1) is nn.Linear  # the router stays FP32


def test_mlp_config_range_checks():
    with pytest.raises(ConfigError, match=r"model.dropout: 1.0 not in \[0, 1\)"):
        models.MLPConfig(in_dim=4, num_classes=3, hidden_sizes=(4,), dropout=1.0)
    with pytest.raises(ConfigError, match="model.hidden_sizes"):
        models.MLPConfig(in_dim=4, num_classes=3, hidden_sizes=(), dropout=0.1)

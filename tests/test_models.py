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

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
VARIANTS = load_params(PARAMS)["variants"]
SMALL = models.MLPConfig(in_dim=24, num_classes=5, hidden_sizes=(16, 8), dropout=0.1)
QUANT_KINDS = ["w1a8", "w2a8", "w4a8", "w8a8", "q16_reference", "ternary_reference", "bitnet158"]


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(name, mlp=SMALL, variants=VARIANTS):
    return models.build(models.variant_from_params(name, variants), mlp, variants)


@pytest.mark.parametrize("classes,fp32,quantised", [(50, 1_206_770, 1_211_122),
                                                     (10, 1_193_930, 1_198_282),
                                                     (5, 1_192_325, 1_196_677)])
def test_parameter_counts_of_reference_6_2(classes, fp32, quantised):
    mlp = models.MLPConfig(in_dim=1536, num_classes=classes)
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
    expected = {"w4a8": BitLinear, "q16_reference": PreNormLinear,
                "ternary_reference": TernaryReferenceLinear, "bitnet158": BitNet158Linear}
    for name, cls in expected.items():
        q = _build(name)
        assert type(q.body[0]) is cls and type(q.body[4]) is cls
        assert type(q.head) is nn.Linear                  # FP32 classifier head (7.1)
    assert _build("w4a8").body[0].bits == 4


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_params_variant_builds_runs_and_deploys(name):
    torch.manual_seed(0)
    cfg = models.variant_from_params(name, VARIANTS)
    net = models.build(cfg, SMALL, VARIANTS)
    x = torch.randn(6, 24)
    out = net(x)
    if models.is_moe(cfg):
        assert isinstance(net, MoE) and isinstance(out, MoEOutput)
        assert out.logits.shape == (6, 5)
    else:
        assert out.shape == (6, 5) and out.dtype == torch.float32
    deployed = models.deploy(net, cfg)
    assert not deployed.training
    out = deployed(x)
    logits = out.logits if models.is_moe(cfg) else out
    assert logits.shape == (6, 5) and torch.isfinite(logits).all()


def test_deploy_is_identity_for_training_form_variants():
    net = _build("w4a8")
    assert models.deploy(net, models.variant_from_params("w4a8", VARIANTS)) is net


@pytest.mark.parametrize("name", ["w2a8", "ternary_reference", "bitnet158", "moe_curiosity_log"])
def test_deploy_with_frozen_quantised_layers_keeps_outputs(name):
    torch.manual_seed(0)
    net = _build(name).eval()
    x = torch.randn(8, 24)
    torch.manual_seed(1)
    ref = net(x)
    frozen = models.deploy(copy.deepcopy(net), models.variant_from_params(name, VARIANTS),
                           freeze_quantized=True)
    assert all(m.frozen_codes is not None for m in frozen.modules() if isinstance(m, QuantLinear))
    torch.manual_seed(1)
    out = frozen(x)
    if isinstance(ref, MoEOutput):
        ref, out = ref.logits, out.logits
    assert torch.equal(out, ref)


def test_unknown_variant_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown variant 'w3a8'; valid: \['bitnet158'"):
        models.variant_from_params("w3a8", VARIANTS)


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ConfigError, match=r"variants.x.kind: unknown kind 'int4'; valid kinds: \["):
        models.variant_from_params("x", {"x": {"kind": "int4"}})
    with pytest.raises(ConfigError, match="variants.x: expected a mapping with a `kind`"):
        models.variant_from_params("x", {"x": {"weight_bits": 4}})


def test_wrong_types_and_keys_name_the_field():
    with pytest.raises(ConfigError, match=r"variants.x.weight_bits: expected an integer, got str"):
        models.variant_from_params("x", {"x": {"kind": "bitlinear", "weight_bits": "4"}})
    with pytest.raises(ConfigError, match=r"variants.x: unknown key\(s\) \['bits'\]"):
        models.variant_from_params("x", {"x": {"kind": "bitlinear", "bits": 4}})
    with pytest.raises(ConfigError, match=r"variants.x.dtype: 'float8' is not one of"):
        models.variant_from_params("x", {"x": {"kind": "half", "dtype": "float8"}})


@pytest.mark.parametrize("bits", [0, 9, 16])
def test_unsupported_weight_bits_are_refused_naming_the_value(bits):
    with pytest.raises(ConfigError, match=f"variants.x: weight_bits={bits} not supported"):
        models.variant_from_params("x", {"x": {"kind": "bitlinear", "weight_bits": bits}})


def test_yaml_boolean_off_reads_as_off_and_other_booleans_are_refused_with_a_hint():
    # `dvc exp run -S` rewrites params.yaml with a bare `off`, which YAML 1.1 reads as False
    entry = {"kind": "moe", "experts": ["w4a8"], "router_outputs": 1, "curiosity": False}
    cfg = models.variant_from_params("m", {"m": entry, "w4a8": VARIANTS["w4a8"]})
    assert cfg.curiosity == "off"
    with pytest.raises(ConfigError, match=r'variants.m.curiosity: got the boolean True.*"off"'):
        models.variant_from_params("m", {"m": {**entry, "curiosity": True}, "w4a8": VARIANTS["w4a8"]})


def test_reference_readme_moe_with_7_experts_and_3_outputs_is_refused():
    experts = ["ternary_reference", "w1a8", "w2a8", "w4a8", "w8a8", "q16_reference", "ptq_int8"]
    entry = {"kind": "moe", "experts": experts, "router_outputs": 3, "top_k": 1}
    message = r"variants.readme: 7 experts listed .* but router_outputs is 3: they must be equal"
    with pytest.raises(ConfigError, match=message):
        models.variant_from_params("readme", {**VARIANTS, "readme": entry})
    with pytest.raises(ConfigError, match="can never be selected.*8.8"):
        models.variant_from_params("readme", {**VARIANTS, "readme": entry})


def test_moe_experts_must_be_known_single_models():
    entry = {"kind": "moe", "experts": ["w4a8", "nope"], "router_outputs": 2}
    with pytest.raises(ConfigError, match="unknown variant 'nope'"):
        models.variant_from_params("m", {**VARIANTS, "m": entry})
    nested = {"kind": "moe", "experts": ["w4a8", "moe"], "router_outputs": 2}
    with pytest.raises(ConfigError, match="variants.m.experts: 'moe' is itself an MoE"):
        models.variant_from_params("m", {**VARIANTS, "m": nested})


def test_config_dict_round_trips():
    for name in VARIANTS:
        cfg = models.variant_from_params(name, VARIANTS)
        again = models.variant_from_params(name, {**VARIANTS, name: models.config_dict(cfg)})
        assert again == cfg


def test_route_escalates_to_the_highest_precision_expert():
    moe = _build("moe_curiosity_route")
    assert moe.strategy.target == 2                     # [ternary_reference, w4a8, w8a8]
    entry = {**VARIANTS["moe_curiosity_route"], "experts": ["w8a8", "fp32", "ternary_reference"]}
    moe = _build("m", variants={**VARIANTS, "m": entry})
    assert moe.strategy.target == 1


def test_moe_in_deploy_converts_ptq_experts_only():
    entry = {"kind": "moe", "experts": ["ptq_int8", "w4a8"], "router_outputs": 2}
    variants = {**VARIANTS, "m": entry}
    cfg = models.variant_from_params("m", variants)
    moe = models.build(cfg, SMALL, variants)
    deployed = models.deploy(moe, cfg)
    assert ptq.is_dynamic_int8(deployed.experts[0].head)
    assert type(deployed.experts[1].body[0]) is BitLinear
    assert type(deployed.router.fc1) is nn.Linear       # the router stays FP32


def test_mlp_config_range_checks():
    with pytest.raises(ConfigError, match=r"model.dropout: 1.0 not in \[0, 1\)"):
        models.MLPConfig(in_dim=4, num_classes=3, dropout=1.0)
    with pytest.raises(ConfigError, match="model.hidden_sizes"):
        models.MLPConfig(in_dim=4, num_classes=3, hidden_sizes=())

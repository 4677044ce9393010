"""Variant configs resolved once from params: errors name the entry, MoEs hold their experts."""

import copy
import math
from pathlib import Path

import pytest

from qmoe import variants as V
from qmoe.io import ConfigError, load_params

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
VARIANTS, EXPERTS = PARAMS["variants"], PARAMS["study"]["experts"]


def test_unknown_variant_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown variant 'w3a8'; valid: \['bitnet158'"):
        V.resolve("w3a8", VARIANTS, EXPERTS)


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ConfigError, match=r"variants.x.kind: unknown kind 'int4'; valid: \["):
        V.resolve("x", {"x": {"kind": "int4"}}, ())
    with pytest.raises(ConfigError, match=r"variants.x.kind: unknown kind None"):
        V.resolve("x", {"x": {"weight_bits": 4}}, ())


def test_an_entry_that_is_not_a_mapping_is_named():
    with pytest.raises(ConfigError, match=r"variants.x: expected a mapping, got str 'bitlinear'"):
        V.resolve("x", {"x": "bitlinear"}, ())
    with pytest.raises(ConfigError, match=r"variants.moe.curiosity: expected a mapping, got str"):
        V.resolve("moe", {**VARIANTS, "moe": {**VARIANTS["moe"], "curiosity": "route"}}, EXPERTS)


def test_wrong_types_and_keys_name_the_field():
    with pytest.raises(ConfigError, match=r"variants.x.weight_bits: expected an integer, got str"):
        V.resolve("x", {"x": {"kind": "bitlinear", "weight_bits": "4"}}, ())
    with pytest.raises(ConfigError, match=r"variants.x: unknown key\(s\) \['bits'\]"):
        V.resolve("x", {"x": {"kind": "bitlinear", "bits": 4}}, ())
    with pytest.raises(ConfigError, match=r"variants.x.dtype: 'float8' is not one of"):
        V.resolve("x", {"x": {"kind": "half", "dtype": "float8"}}, ())


@pytest.mark.parametrize("bits", [0, 3, 5, 6, 7, 9, 16])
def test_weight_bits_the_deployment_cannot_export_are_refused_listing_the_exportable(bits):
    with pytest.raises(
        ConfigError,
        match=rf"^variants.x.weight_bits: {bits} cannot be exported \(no ONNX Runtime kernel\); "
        r"use one of \[1, 2, 4, 8\] \(the reference's 16 is kind q16_reference\)$",
    ):
        V.resolve("x", {"x": {"kind": "bitlinear", "weight_bits": bits}}, ())


@pytest.mark.parametrize(
    "name,key",
    [
        ("ternary_reference", "act_threshold"),
        ("ptq_int8", "engine"),
        ("fp16", "dtype"),
        ("moe", "balance_alpha"),
        ("moe_curiosity_route", "curiosity.quantile"),
    ],
)
def test_a_deleted_params_key_fails_instead_of_falling_back_to_a_default(name, key):
    variants = copy.deepcopy(VARIANTS)
    entry = variants[name]
    *path, leaf = key.split(".")
    for part in path:
        entry = entry[part]
    del entry[leaf]
    with pytest.raises(ConfigError, match=f"missing required key '{leaf}'"):
        V.resolve(name, variants, EXPERTS)


def test_curiosity_is_a_tagged_config_with_only_its_modes_knobs():
    cfg = V.resolve("moe_curiosity_route", VARIANTS, EXPERTS)
    assert cfg.curiosity == V.RouteCuriosity(mc_samples=50, quantile=0.9, score="variance")
    assert V.resolve("moe", VARIANTS, EXPERTS).curiosity == V.NoCuriosity()
    bad = {
        **VARIANTS,
        "moe": {**VARIANTS["moe"], "curiosity": {"mode": "log", "mc_samples": 10, "quantile": 0.9}},
    }
    with pytest.raises(
        ConfigError, match=r"variants.moe.curiosity: unknown key\(s\) \['quantile'\]"
    ):
        V.resolve("moe", bad, EXPERTS)
    # `dvc exp run -S ...mode=off` would write a bare off, which YAML 1.1 reads as False
    bad = {**VARIANTS, "moe": {**VARIANTS["moe"], "curiosity": {"mode": False}}}
    with pytest.raises(ConfigError, match="mode: got the boolean False; YAML reads unquoted off"):
        V.resolve("moe", bad, EXPERTS)


def test_moe_holds_its_experts_configs_and_derives_router_outputs():
    cfg = V.resolve("moe", VARIANTS, EXPERTS)
    assert [e.name for e in cfg.experts] == ["ternary_reference", "w4a8", "w8a8"]
    assert cfg.experts[1].config == V.BitLinearConfig(weight_bits=4)
    assert cfg.router_outputs == 3
    edited = {**VARIANTS, "w4a8": {"kind": "bitlinear", "weight_bits": 2}}
    assert V.resolve("moe", edited, EXPERTS).experts[1].config.weight_bits == 2


def test_moe_listed_as_an_expert_of_another_moe_is_refused_naming_it():
    with pytest.raises(
        ConfigError,
        match=r"study.experts: 'moe_curiosity_log' is itself an MoE "
        r"\(variants.moe_curiosity_log\); experts must be single",
    ):
        V.resolve("moe", VARIANTS, ["ternary_reference", "moe_curiosity_log"])
    with pytest.raises(ConfigError, match=r"study.experts: unknown variant 'nope'"):
        V.resolve("moe", VARIANTS, ["w4a8", "nope"])


def test_top_k_larger_than_the_pool_is_refused():
    bad = {**VARIANTS, "moe": {**VARIANTS["moe"], "top_k": 4}}
    with pytest.raises(ConfigError, match=r"variants.moe.top_k: 4 not in \[1, 3\]"):
        V.resolve("moe", bad, EXPERTS)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_to_dict_round_trips_every_variant(name):
    cfg = V.resolve(name, VARIANTS, EXPERTS)
    assert V.from_dict(V.to_dict(cfg)) == cfg


def test_facts_come_from_the_config():
    f = V.facts(V.BitLinearConfig(weight_bits=2))
    assert (f.kind, f.weight_bits, f.activation_bits, f.precision_bits) == ("bitlinear", 2, 8, 2)
    assert not f.is_moe and f.curiosity == ""
    assert V.facts(V.BitNet158Config()).weight_bits == pytest.approx(math.log2(3))
    moe = V.facts(V.resolve("moe_curiosity_kl", VARIANTS, EXPERTS))
    assert moe.is_moe and moe.curiosity == "kl" and math.isnan(moe.weight_bits)

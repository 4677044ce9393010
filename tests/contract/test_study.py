"""params `study` as one checked config (qmoe.contract.study), as every stage that reads it."""

import pytest
from repo_params import PARAMS

from qmoe.contract.study import Study
from qmoe.io import ConfigError, from_section

STUDY = {
    "datasets": ["toy"],
    "protocols": ["corrected", "faithful"],
    "variants": ["fp32", "w4a8"],
    "moe_variants": ["moe"],
    "experts": ["ternary_reference", "w4a8", "w8a8"],
}


def study(**change) -> Study:
    section = {k: v for k, v in {**STUDY, **change}.items() if v is not None}
    return from_section(Study, section, "study")


def test_study_combines_single_and_moe_variants_but_not_the_expert_pool():
    assert study().all_variants == ("fp32", "w4a8", "moe")
    assert study().combinations() == [
        ("toy", p, v) for p in ("corrected", "faithful") for v in ("fp32", "w4a8", "moe")
    ]
    # a study of single models only (the expert pool is then unused), or of MoEs only
    assert study(moe_variants=[]).combinations()[-1] == ("toy", "faithful", "w4a8")
    assert study(variants=[]).all_variants == ("moe",)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"moe_variants": None}, "study: missing required key 'moe_variants'"),
        ({"varients": ["w4a8"]}, r"study: unknown key\(s\) \['varients'\]; valid keys: \['data"),
        ({"expert": ["w4a8"]}, r"study: unknown key\(s\) \['expert'\]"),
        ({"variants": ["fp32", "moe"]}, r"study.moe_variants: \['moe'\] also listed in study.var"),
        ({"variants": ["w4a8", "fp32", "w4a8"]}, r"study.variants: \['w4a8'\] listed more than"),
        ({"moe_variants": ["moe", "moe"]}, r"study.moe_variants: \['moe'\] listed more than once"),
        ({"experts": ["w4a8", "w8a8", "w4a8"]}, r"study.experts: \['w4a8'\] listed more than once"),
        ({"datasets": ["toy", "toy"]}, r"study.datasets: \['toy'\] listed more than once"),
        ({"protocols": ["faithful"] * 2}, r"study.protocols: \['faithful'\] listed more than once"),
        (
            {"variants": [], "moe_variants": []},
            "study.variants: study.variants and study.moe_variants list no variant",
        ),
        ({"datasets": []}, "study.datasets: must list at least one name"),
        ({"protocols": []}, "study.protocols: must list at least one name"),
        ({"experts": []}, "study.experts: must list at least one name"),
        ({"datasets": "toy"}, "study.datasets: expected a list, got str 'toy'"),
    ],
)
def test_study_errors_name_the_field(change, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        study(**change)


def test_configs_resolve_the_study_variants_in_study_order():
    s = from_section(Study, PARAMS["study"], "study")
    configs = s.configs(PARAMS["variants"])
    assert list(configs) == list(s.all_variants)
    assert [e.name for e in configs["moe"].experts] == list(s.experts)


@pytest.mark.parametrize(
    "change, entries, message",
    [
        (
            {"variants": ["fp32", "moe"], "moe_variants": []},
            {},
            "variants.moe is an MoE: list it in study.moe_variants",
        ),
        (
            {"variants": ["fp32"], "moe_variants": ["moe", "w8a8"]},
            {},
            "variants.w8a8 is not an MoE: list it in study.variants",
        ),
        ({"variants": ["fp32", "w5a8"]}, {}, r"unknown variant 'w5a8'; valid: \['bitnet158'"),
        # an entry outside the study is checked too: a typo there fails now, not when it is used
        (
            {},
            {"w5a8": {"kind": "bitlinear", "weight_bits": 5}},
            "variants.w5a8.weight_bits: 5 cannot be exported",
        ),
        (
            {},
            {"w4": {"kind": "bitlinear", "weight_bit": 4}},
            r"variants.w4: unknown key\(s\) \['weight_bit'\]",
        ),
    ],
)
def test_configs_refuse_misplaced_unknown_or_bad_variants(change, entries, message):
    s = from_section(Study, {**PARAMS["study"], **change}, "study")
    with pytest.raises(ConfigError, match=f"^{message}"):
        s.configs({**PARAMS["variants"], **entries})

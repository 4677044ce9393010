"""Roles (qmoe.analysis.roles): which variant of a study plays "4-bit", "plain MoE", ... by its
facts."""

import pandas as pd

from qmoe.analysis import roles
from qmoe.analysis.results import variant_facts

NAMES = ["moe_curiosity_kl", "w8a8", "fp32", "w4a8", "moe", "w2a8", "fp16", "bitnet158"]


def _facts(with_facts, configs=None) -> pd.DataFrame:
    return variant_facts(with_facts(pd.DataFrame({"variant": NAMES}), configs))


def test_roles_resolve_by_config_in_study_order(with_facts, config_of):
    facts = _facts(with_facts)
    assert [
        roles.resolve(r, facts)
        for r in (roles.FP32, roles.Q4, roles.Q8, roles.HALF, roles.PLAIN_MOE, roles.CURIOSITY_V3)
    ] == ["fp32", "w4a8", "w8a8", "fp16", "moe", "moe_curiosity_kl"]
    assert roles.resolve(roles.CURIOSITY_V1, facts) == "MoE with curiosity log"
    # two 8-bit BitLinears: the first in study order; none at 4 bits: the role's label
    swapped = _facts(
        with_facts,
        {"w2a8": config_of("w2a8", weight_bits=8), "w4a8": config_of("w4a8", weight_bits=2)},
    )
    assert roles.resolve(roles.Q8, swapped) == "w2a8"
    assert roles.resolve(roles.Q4, swapped) == "4-bit BitLinear"


def test_members_filter_by_kind_moe_and_curiosity(with_facts):
    facts = _facts(with_facts)
    assert roles.members(facts, kind="bitlinear") == ["w2a8", "w4a8", "w8a8"]
    assert roles.members(facts, moe=True) == ["moe", "moe_curiosity_kl"]
    assert roles.members(facts, curious=True) == ["moe_curiosity_kl"]
    assert roles.members(facts, moe=False) == ["fp32", "w2a8", "w4a8", "w8a8", "fp16", "bitnet158"]

"""The variants a test family, a reference table or a claim is about, found by their facts.

A role ("the 4-bit BitLinear", "the plain MoE") is a condition on the runs table's fact columns
(`qmoe.contract.runs.FACTS`, from each run's recorded config), never on a name: with
`variants.w4a8.weight_bits=2`, w4a8 is a 2-bit BitLinear and no variant plays "4-bit". A role
that no variant of the study plays is named by its label, so the tests and claims that need it
say "no runs of 4-bit BitLinear" instead of silently using the wrong model.

    facts = results.variant_facts(runs)          # one row per variant, indexed by name
    resolve(Q4, facts)                           # "w4a8" (or "4-bit BitLinear" when none)
    members(facts, kind="bitlinear")             # ["w1a8", "w2a8", "w4a8", "w8a8"]
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from qmoe.catalog import order


class Role(NamedTuple):
    label: str  # how a reason names the role when no variant of the study plays it
    kind: str
    weight_bits: float | None = None  # None: any
    curiosity: str | None = None  # an MoE's curiosity mode; None: any


FP32 = Role("FP32 model", "fp32")
Q16 = Role("q16_reference-kind model", "q16_reference")
HALF = Role("half-precision model", "half")
Q1 = Role("1-bit BitLinear", "bitlinear", weight_bits=1)
Q4 = Role("4-bit BitLinear", "bitlinear", weight_bits=4)
Q8 = Role("8-bit BitLinear", "bitlinear", weight_bits=8)
PLAIN_MOE = Role("MoE without curiosity", "moe", curiosity="none")
CURIOSITY_V1 = Role("MoE with curiosity log", "moe", curiosity="log")  # v1 abstract, reference 9.3
CURIOSITY_V3 = Role("MoE with curiosity kl", "moe", curiosity="kl")  # v3 abstract, reference 9.6
ROUTE = Role("MoE with curiosity route", "moe", curiosity="route")  # ours: routing that uses u


def plays(role: Role, kind: str, weight_bits: float, curiosity: str) -> bool:
    return (
        kind == role.kind
        and (role.weight_bits is None or weight_bits == role.weight_bits)
        and (role.curiosity is None or curiosity == role.curiosity)
    )


def members(
    facts: pd.DataFrame,
    kind: str | None = None,
    moe: bool | None = None,
    curious: bool | None = None,
) -> list[str]:
    """Variants (study order) of that `kind`, MoE-ness, and with (or without) a curiosity mode
    other than "none"; None: any."""
    sel = pd.Series(True, index=facts.index)
    if kind is not None:
        sel &= facts["kind"] == kind
    if moe is not None:
        sel &= facts["is_moe"].astype(bool) == moe
    if curious is not None:
        sel &= (facts["is_moe"].astype(bool) & (facts["curiosity"] != "none")) == curious
    return order(list(facts.index[sel]))


def resolve(role: Role, facts: pd.DataFrame) -> str:
    """The variant of the study that plays `role` (the first in study order if several do), or
    the role's label when none does."""
    found = [
        v for v, f in facts.iterrows() if plays(role, f["kind"], f["weight_bits"], f["curiosity"])
    ]
    return order(found)[0] if found else role.label

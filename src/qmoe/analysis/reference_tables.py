"""The reference's significance tables (reference-method.md 11.2), regenerated on our runs, fixed.
Its mean +- std tables (11.3) are the paper's tables: `qmoe.analysis.paper_tables`.

Fixes, all visible in the column names: pairing by (dataset, fold, seed) not position; energy in
Wh (CodeCarbon's kWh x 1e3; the reference printed it as "mJ") and emissions in g (its "ug" were
mg); standard deviations with ddof 1 throughout; the reference's "variance reduction" (a ratio
of standard deviations) kept next to the real variance ratio; Holm-adjusted p next to the raw p.
Latency is the reference's whole-fold pass (ms, not divided by 5) and our per-inference median.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.analysis import roles
from qmoe.analysis.comparisons import Method, Pair, compare
from qmoe.analysis.families import fold_samples
from qmoe.analysis.paper_numbers import with_paper_name, with_units
from qmoe.analysis.results import variant_facts
from qmoe.analysis.stats import Alternative, StatsConfig
from qmoe.analysis.variances import levene


class Cast(NamedTuple):
    """The variants of the reference's tables, found by their facts (`qmoe.analysis.roles`)."""

    fp32: str
    q16: str
    q1: str
    q8: str
    moe: str
    singles: list[str]  # single models other than the FP32 and PTQ baselines (its table 1)
    bitlinear: list[str]
    q_base: list[str]  # BitLinear variants and the reference's '16-bit'
    mixtures: list[str]
    curious: list[str]


def cast(runs: pd.DataFrame) -> Cast:
    facts = variant_facts(runs)
    bitlinear = roles.members(facts, kind="bitlinear")
    return Cast(
        *(
            roles.resolve(r, facts)
            for r in (roles.FP32, roles.Q16, roles.Q1, roles.Q8, roles.PLAIN_MOE)
        ),
        singles=[
            v
            for v in roles.members(facts, moe=False)
            if facts.loc[v, "kind"] not in ("fp32", "ptq_int8")
        ],
        bitlinear=bitlinear,
        q_base=[*bitlinear, *roles.members(facts, kind="q16_reference")],
        mixtures=roles.members(facts, moe=True),
        curious=roles.members(facts, curious=True),
    )


def stars(p: float) -> str:
    """The reference's significance marks."""
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    frame = with_paper_name(frame.copy(), frame.columns.get_loc("variant") + 1)
    frame["significance"] = [stars(p) for p in frame["p"]]
    return frame


def _ttests(
    runs: pd.DataFrame,
    cfg: StatsConfig,
    value: str,
    pairs: list[Pair],
    greater: bool,
    pooled: bool = False,
) -> pd.DataFrame:
    """scipy paired t-tests (the reference's `ttest_rel`), keyed, one-sided where it was."""
    side = Alternative.GREATER if greater else Alternative.TWO_SIDED
    return compare(runs, pairs, value, cfg, Method.PAIRED_T, side, pooled)


def _f1_tables(runs: pd.DataFrame, cfg: StatsConfig, c: Cast) -> list[pd.DataFrame]:
    """Tables 1-3: each single model vs FP32 (one-sided), Q-Base vs '16-bit', each MoE vs FP32."""
    f1 = cfg.f1_metric
    t1 = _ttests(runs, cfg, f1, [Pair("ref1_f1_vs_fp32", v, c.fp32) for v in c.singles], True)
    t2 = _ttests(runs, cfg, f1, [Pair("ref2_f1_vs_q16", v, c.q16) for v in c.bitlinear], False)
    t2["percent_of_16bit"] = 100 * t2["mean_variant"] / t2["mean_baseline"]  # mean / mean16
    t3 = _ttests(runs, cfg, f1, [Pair("ref3_f1_moe_vs_fp32", v, c.fp32) for v in c.mixtures], True)
    return [t1, t2, t3]


def _latency_table(runs: pd.DataFrame, cfg: StatsConfig, c: Cast) -> pd.DataFrame:
    """Table 4, pooled over datasets: '1-bit fastest', FP32 vs Q-Base, MoE overhead vs Q8-Base."""
    lat = "reference_fold_pass_ms"
    parts = [
        [Pair("ref4a_1bit_fastest", c.fp32, c.q1)],
        [Pair("ref4b_fp32_vs_qbase", c.fp32, v) for v in c.q_base],
        [Pair("ref4c_moe_overhead", v, c.q8) for v in c.mixtures],
    ]
    t4 = pd.concat(
        [_ttests(runs, cfg, lat, pairs, True, pooled=True) for pairs in parts], ignore_index=True
    )
    return t4.assign(speedup_a_over_b=t4["mean_variant"] / t4["mean_baseline"])  # mean A / B


def _energy_table(runs: pd.DataFrame, cfg: StatsConfig, c: Cast) -> pd.DataFrame:
    """Training energy (Wh), pooled: FP32 vs each MoE (one-sided), each -C vs its plain MoE."""
    e_moe = _ttests(
        runs,
        cfg,
        "train_energy_wh",
        [Pair("ref5a_fp32_vs_moe", c.fp32, v) for v in c.mixtures],
        True,
        pooled=True,
    )
    e_moe["energy_reduction"] = 1 - e_moe["mean_baseline"] / e_moe["mean_variant"]  # 1 - MoE/FP32
    e_cur = _ttests(
        runs,
        cfg,
        "train_energy_wh",
        [Pair("ref5b_curiosity_vs_moe", v, c.moe) for v in c.curious],
        False,
        pooled=True,
    )
    e_cur["energy_overhead"] = e_cur["mean_variant"] / e_cur["mean_baseline"] - 1  # C / base - 1
    return pd.concat([e_moe, e_cur], ignore_index=True)


def significance_tables(runs: pd.DataFrame, cfg: StatsConfig) -> dict[str, pd.DataFrame]:
    """The six CSVs of the reference's `analyze-significance.py`, one row per planned test."""
    runs, c = with_units(runs), cast(runs)
    t1, t2, t3 = _f1_tables(runs, cfg, c)
    lat = "reference_fold_pass_ms"
    t6 = levene(
        fold_samples(runs, lat),
        [Pair("ref6_latency_variance", v, c.fp32) for v in (*c.q_base, *c.mixtures)],
        lat,
        cfg,
        pooled=True,
    )
    t6["std_ratio_reference"] = t6["sd_baseline"] / t6["sd_variant"]
    return {
        "ref_table1_f1_significance": _named(t1),
        "ref_table2_f1_significance": _named(t2),
        "ref_table3_f1_significance": _named(t3),
        "ref_table4_latency_significance": _named(_latency_table(runs, cfg, c)),
        "ref_table3_energy_significance": _named(_energy_table(runs, cfg, c)),
        "ref_latency_variance_reduction": _named(t6),
    }

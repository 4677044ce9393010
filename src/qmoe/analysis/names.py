"""The stats stage's table and test-family names, each spelled once: the stats stage writes
reports/stats/<table>.csv and the claims and the report read them back by these names, so a
rename cannot leave a reader looking up a table no one writes. Beside them what both read in a
row: its status, and the one p-value format."""

from __future__ import annotations

import numpy as np

from qmoe.contract.benchmarks import Regime

COMPUTED, NOT_COMPUTED = "computed", "not computed"  # a stats row's `status`


def pval(p: float) -> str:
    """A p-value in 3 significant digits; one that underflowed to 0 as '< 1e-300'."""
    if not (isinstance(p, (int, float)) and np.isfinite(p)):
        return "n/a"
    return "< 1e-300" if p == 0 else f"{p:.3g}"


class Table:
    """Stats tables (reports/stats/<name>.csv) read by more than the module that computes them."""

    F1_PAIRED = "f1_paired"
    TOST_F1 = "tost_f1"
    LATENCY_DISPERSION = "latency_dispersion"
    LATENCY_LEVENE = "latency_levene"
    LATENCY_PAIRED = "latency_paired"
    ENERGY_INFERENCE_PAIRED = "energy_inference_paired"
    ENERGY_TRAIN_PAIRED = "energy_train_paired"
    F1_VARIANCE_LEVENE = "f1_variance_levene"
    FOLD_LATENCY_LEVENE = "fold_latency_levene"
    LATENCY_MOE_FORMS = "latency_moe_forms"
    LATENCY_SCOPE = "latency_scope"
    LATENCY_SPREAD_ROUTING = "latency_spread_routing"
    PIPELINE_COST = "pipeline_cost"
    ROUTING_ESCALATION = "routing_escalation"
    ROUTING_SAME_WEIGHTS = "routing_same_weights"
    ROUTING_SHARE_CURVE = "routing_share_curve"
    # the paper's tables (qmoe.analysis.paper_tables computes them, qmoe.report.paper_tables shows)
    STD_TABLE1 = "std_table1_cross_dataset"
    STD_TABLE2 = "std_table2_quantization"
    STD_TABLE3 = "std_table3_moe"
    STD_TABLE4 = "std_table4_latency"
    STD_SUPPLEMENT = "std_supplement_carbon"


REGIME_COLUMNS = {r.value: f"latency_{r.value}_ms" for r in Regime}  # Table 4's latency columns


DEPLOYED = "_deployed"  # suffix of a table of the same families on the deployed artefacts' F1


def twin(table: str) -> str:
    """The name of `table`'s twin on the deployed artefacts' F1."""
    return table + DEPLOYED


class Family:
    """Test families (a stats row's `family`), by the table that holds them."""

    # f1_paired
    F1_VS_FP32 = "f1_vs_fp32"
    F1_VS_Q16 = "f1_vs_q16_reference"
    F1_CURIOSITY_VS_MOE = "f1_curiosity_vs_moe"
    F1_MOE_VS_W8A8 = "f1_moe_vs_w8a8"
    # tost_f1
    TOST_F1 = "tost_f1"
    # latency_levene and latency_dispersion
    LATENCY_LEVENE_CURIOSITY_VS_MOE = "latency_levene_curiosity_vs_moe"
    LATENCY_LEVENE_VS_FP32 = "latency_levene_vs_fp32"
    LATENCY_DISPERSION_CURIOSITY_VS_MOE = "latency_dispersion_curiosity_vs_moe"
    LATENCY_DISPERSION_VS_FP32 = "latency_dispersion_vs_fp32"
    # latency_paired
    LATENCY_VS_FP32 = "latency_vs_fp32"
    LATENCY_MOE_VS_W8A8 = "latency_moe_vs_w8a8"
    LATENCY_W4A8_VS_W8A8 = "latency_w4a8_vs_w8a8"
    LATENCY_CURIOSITY_VS_MOE = "latency_curiosity_vs_moe"
    # latency_moe_forms
    LATENCY_MOE_FORMS_VS_W8A8 = "latency_moe_forms_vs_w8a8"
    # energy_inference_paired and energy_train_paired
    ENERGY_VS_FP32 = "energy_vs_fp32"
    ENERGY_W4A8_VS_W8A8 = "energy_w4a8_vs_w8a8"
    # f1_variance_levene
    F1_VARIANCE_CURIOSITY_VS_MOE = "f1_variance_curiosity_vs_moe"
    # fold_latency_levene
    FOLD_LATENCY_LEVENE_VS_FP32 = "fold_latency_levene_vs_fp32"
    FOLD_LATENCY_LEVENE_CURIOSITY_VS_MOE = "fold_latency_levene_curiosity_vs_moe"
    # routing_same_weights
    ROUTING_SAME_WEIGHTS = "routing_same_weights"

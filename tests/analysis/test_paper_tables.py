"""The paper's tables (qmoe.analysis.paper_tables): one entry each, computed from the runs
table's numbers and fact columns, in labelled units."""

import numpy as np
import pandas as pd
import pytest
from repo_params import config

from qmoe.analysis import paper_tables
from qmoe.analysis.stats import StatsConfig
from qmoe.report.paper_tables import PAPER_TABLES

CFG = config(StatsConfig, "stats", n_resamples=300)


def _runs(with_facts, configs=None) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = [
        {
            "dataset": d,
            "protocol": "corrected",
            "variant": v,
            "fold": f,
            "seed": 0,
            "macro_f1": 0.8 + 0.02 * rng.random(),
            "n_params": 1.19e6,
            "latency_median_ms": 0.2 + 0.01 * rng.random(),
            "reference_fold_pass_s": 0.01 + 0.001 * rng.random(),
            "energy_per_inference_mj": 0.3 + 0.1 * rng.random(),
            "train_energy_kwh": 1e-5 * (1 + rng.random()),
            "train_emissions_kg": 3e-6,
            "train_seconds": 3.0,
            "size_packed_bytes": 1000,
        }
        for d in ("d1", "d2")
        for v in ("fp32", "w4a8", "q16_reference", "moe", "moe_curiosity_log")
        for f in (1, 2, 3)
    ]
    frame = pd.DataFrame(rows)
    frame["after_backbone_latency_median_ms"] = 1.5 * frame["latency_median_ms"]
    return with_facts(frame, configs)


def test_every_entry_has_its_own_csv_and_stem():
    csvs = [t.csv for t in PAPER_TABLES]
    stems = [t.stem for t in PAPER_TABLES]
    assert csvs == [
        "std_table1_cross_dataset",
        "std_table2_quantization",
        "std_table3_moe",
        "std_table4_latency",
        "std_supplement_carbon",
    ]
    assert len(set(stems)) == 5 and all(s in c for s, c in zip(stems[:2], csvs[:2]))


def test_std_tables_use_ddof_1_and_labelled_units(with_facts):
    runs = _runs(with_facts)
    std = paper_tables.std_tables(runs, CFG)
    assert list(std) == [t.csv for t in PAPER_TABLES]
    t1 = std["std_table1_cross_dataset"]
    row = t1[(t1["variant"] == "fp32") & (t1["dataset"] == "d1")]
    sel = runs[(runs["variant"] == "fp32") & (runs["dataset"] == "d1")]["macro_f1"]
    assert row["f1_sd"].item() == pytest.approx(sel.std(ddof=1))
    avg = t1[(t1["variant"] == "fp32") & (t1["dataset"] == "average")]
    per = runs[runs["variant"] == "fp32"].groupby("dataset")["macro_f1"]
    assert avg["f1_mean"].item() == pytest.approx(per.mean().mean())
    assert avg["f1_sd"].item() == pytest.approx(np.sqrt(np.mean(per.std(ddof=1) ** 2)))
    t3 = std["std_table3_moe"].set_index("variant")
    moe = runs[runs["variant"] == "moe"]
    assert t3.loc["moe", "train_energy_wh_mean"] == pytest.approx(
        moe["train_energy_kwh"].mean() * 1e3
    )
    assert t3.loc["moe", "train_co2_g_mean"] == pytest.approx(3e-3)
    assert t3["type"].to_dict() == {"moe": "MoE", "moe_curiosity_log": "MoE-Curiosity"}
    t4 = std["std_table4_latency"]
    for regime, col in (("warm", "latency_median_ms"), ("after_backbone", "after_backbone_")):
        mean = t4[f"latency_{regime}_ms_mean"]
        fp32 = mean[t4["variant"] == "fp32"].item()
        assert (t4[f"speedup_{regime}"] * mean).to_numpy() == pytest.approx(fp32)
    fp32 = runs[runs["variant"] == "fp32"]
    t4 = t4.set_index("variant")
    assert t4.loc["fp32", "latency_warm_ms_mean"] == pytest.approx(fp32["latency_median_ms"].mean())
    assert t4.loc["fp32", "latency_after_backbone_ms_mean"] == pytest.approx(
        fp32["after_backbone_latency_median_ms"].mean()
    )
    assert set(t4["runtime"]) == {"onnxruntime"}


def test_table4_times_the_faithful_protocol_in_torch_eager(with_facts):
    runs = _runs(with_facts).assign(
        protocol="faithful",
        torch_latency_median_ms=2.0,
        torch_after_backbone_latency_median_ms=3.0,
    )
    t4 = paper_tables.std_tables(runs, CFG)["std_table4_latency"]
    assert set(t4["runtime"]) == {"torch"}
    assert (t4["latency_warm_ms_mean"] == 2.0).all()
    assert (t4["latency_after_backbone_ms_mean"] == 3.0).all()


def test_table2_holds_q_base_by_kind_with_configured_bits(with_facts, config_of):
    runs = _runs(with_facts, {"w4a8": config_of("w4a8", weight_bits=2)})
    t2 = paper_tables.std_tables(runs, CFG)["std_table2_quantization"]
    assert t2.groupby("variant")["bits"].first().to_dict() == {"q16_reference": 32.0, "w4a8": 2.0}
    q16 = t2[t2["variant"] == "q16_reference"]
    assert (q16["percent_of_16bit"] == 100.0).all()

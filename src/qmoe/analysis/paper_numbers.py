"""The numbers behind the paper's tables 1-4 and its carbon supplement (reference-method.md
11.3), computed from the runs table: the reference's `analyze-std.py` fixed (ddof 1, labelled
units). `qmoe.analysis.paper_tables` says which CSV each is written to, `qmoe.report.paper_tables`
how it is shown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qmoe.analysis.names import REGIME_COLUMNS
from qmoe.catalog import paper_name
from qmoe.contract.benchmarks import Regime, claims_runtime, latency_prefix

KWH_TO_WH, KG_TO_G = 1e3, 1e3
Q_BASE_KINDS = ("bitlinear", "q16_reference")  # the reference's Q-Base family and its "16-bit"


def with_units(runs: pd.DataFrame) -> pd.DataFrame:
    """Derived columns in labelled units: Wh, g, ms, M params, estimated inference CO2."""
    out = runs.copy()
    out["train_energy_wh"] = out["train_energy_kwh"] * KWH_TO_WH
    out["train_co2_g"] = out["train_emissions_kg"] * KG_TO_G
    out["reference_fold_pass_ms"] = out["reference_fold_pass_s"] * 1e3
    out["params_m"] = out["n_params"] / 1e6
    intensity = out["train_emissions_kg"] / out["train_energy_kwh"].replace(0, np.nan)  # kg/kWh
    # mJ -> kWh is / 3.6e9; kg -> mg is x 1e6: mg = mJ x intensity / 3600 (an estimate)
    out["inference_co2_mg_estimate"] = out["energy_per_inference_mj"] * intensity / 3600
    return out


def with_paper_name(frame: pd.DataFrame, at: int = 2) -> pd.DataFrame:
    frame.insert(at, "paper_name", [paper_name(v) for v in frame["variant"]])
    return frame


def _per_dataset(runs: pd.DataFrame, value: str) -> pd.DataFrame:
    g = runs.groupby(["protocol", "variant", "dataset"], sort=False)[value]
    return g.agg(mean="mean", sd=lambda x: x.std(ddof=1), n="count").reset_index()


def across_datasets(runs: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per (protocol, variant): mean of the dataset means, root-mean-square of their stds."""
    per = _per_dataset(runs, value)
    g = per.groupby(["protocol", "variant"], sort=False)
    out = g.agg(mean=("mean", "mean"), n=("n", "sum"), n_datasets=("dataset", "nunique"))
    out["sd"] = g["sd"].apply(lambda s: float(np.sqrt(np.mean(np.square(s)))))
    return out.reset_index().rename(
        columns={"mean": f"{value}_mean", "sd": f"{value}_sd", "n": f"{value}_n"}
    )


def _merge_all(runs: pd.DataFrame, values: list[str]) -> pd.DataFrame:
    out = None
    for v in values:
        part = across_datasets(runs, v).drop(columns="n_datasets")
        out = part if out is None else out.merge(part, on=["protocol", "variant"], how="outer")
    return out


def _suffixed(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    return frame.rename(columns={"mean": f"{value}_mean", "sd": f"{value}_sd", "n": f"{value}_n"})


def table1(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
    """F1 per dataset plus the 'average' row (mean of means, RMS of stds)."""
    per = _suffixed(_per_dataset(runs, f1), "f1")
    avg = across_datasets(runs, f1).drop(columns="n_datasets")
    avg = avg.rename(columns={f"{f1}_mean": "f1_mean", f"{f1}_sd": "f1_sd", f"{f1}_n": "f1_n"})
    t1 = pd.concat([per, avg.assign(dataset="average")], ignore_index=True)
    params = across_datasets(runs, "params_m")[["protocol", "variant", "params_m_mean"]]
    return with_paper_name(t1.merge(params, on=["protocol", "variant"], how="left"))


def table2(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
    """Q-Base x dataset: F1, % of '16-bit', latencies, energies; `bits` = configured weight bits."""
    q = runs[runs["kind"].isin(Q_BASE_KINDS)]
    if q.empty:
        return pd.DataFrame()
    values = [
        "params_m",
        f1,
        "latency_median_ms",
        "reference_fold_pass_ms",
        "train_energy_wh",
        "energy_per_inference_mj",
    ]
    t2 = _suffixed(_per_dataset(q, values[0]), values[0])
    for value in values[1:]:
        t2 = t2.merge(
            _suffixed(_per_dataset(q, value), value), on=["protocol", "variant", "dataset"]
        )
    ref16 = t2[t2["variant"].isin(q.loc[q["kind"] == "q16_reference", "variant"])].set_index(
        ["protocol", "dataset"]
    )[f"{f1}_mean"]
    keys = zip(t2["protocol"], t2["dataset"])
    t2["percent_of_16bit"] = [
        100 * m / ref16.get(k, np.nan) for m, k in zip(t2[f"{f1}_mean"], keys)
    ]
    bits = q.groupby("variant")["weight_bits"].first()
    t2.insert(2, "bits", t2["variant"].map(bits).to_numpy(float))
    return t2


def table3(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
    """MoEs over datasets; 'F1 per training Wh' is the reference's 'F1/mJ' in its real unit."""
    moe = runs[runs["is_moe"].astype(bool)]
    if moe.empty:
        return pd.DataFrame()
    t3 = with_paper_name(
        _merge_all(
            moe,
            [
                "params_m",
                f1,
                "latency_median_ms",
                "train_energy_wh",
                "train_co2_g",
                "energy_per_inference_mj",
            ],
        )
    )
    curious = set(moe.loc[moe["curiosity"] != "none", "variant"])
    t3.insert(3, "type", ["MoE-Curiosity" if v in curious else "MoE" for v in t3["variant"]])
    t3["f1_per_train_wh"] = t3[f"{f1}_mean"] / t3["train_energy_wh_mean"]
    t3["f1_per_inference_mj"] = t3[f"{f1}_mean"] / t3["energy_per_inference_mj_mean"]
    return t3


def _claims_latency(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run, its batch-1 median in each regime under the protocol's runtime (faithful: torch
    eager, corrected: the ONNX artefact; qmoe.contract.benchmarks.claims_runtime), and that
    runtime."""
    out = runs.assign(timed_in=[claims_runtime(p) for p in runs["protocol"]])
    for regime in Regime:
        values = pd.Series(np.nan, index=out.index)
        for runtime, part in out.groupby("timed_in"):
            named = None if runtime == _deployment(part) else runtime
            col = f"{latency_prefix(named, regime)}latency_median_ms"
            values[part.index] = part[col] if col in part else np.nan
        out[REGIME_COLUMNS[regime.value]] = values
    return out


def _deployment(part: pd.DataFrame) -> str:
    found = part["latency_runtime"].dropna() if "latency_runtime" in part else pd.Series(dtype=str)
    return str(found.iloc[0]) if len(found) else "onnxruntime"


def table4(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
    runs = _claims_latency(runs)
    t4 = with_paper_name(
        _merge_all(
            runs,
            [
                "params_m",
                *REGIME_COLUMNS.values(),
                "reference_fold_pass_ms",
                f1,
                "size_packed_bytes",
            ],
        )
    )
    t4["runtime"] = [claims_runtime(p) for p in t4["protocol"]]
    fp32 = t4[t4["variant"].isin(runs.loc[runs["kind"] == "fp32", "variant"])].set_index("protocol")
    for regime, col in REGIME_COLUMNS.items():
        base = fp32[f"{col}_mean"]
        t4[f"speedup_{regime}"] = [
            base.get(p, np.nan) / m for p, m in zip(t4["protocol"], t4[f"{col}_mean"])
        ]
    return t4.sort_values(["protocol", f"{REGIME_COLUMNS[Regime.AFTER_BACKBONE.value]}_mean"])


def supplement(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
    sup = with_paper_name(
        _merge_all(
            runs,
            [
                "params_m",
                "train_co2_g",
                "train_energy_wh",
                "train_seconds",
                "inference_co2_mg_estimate",
                f1,
            ],
        )
    )
    sup["co2_rate_mg_per_s"] = 1e3 * sup["train_co2_g_mean"] / sup["train_seconds_mean"]
    return sup.sort_values(["protocol", "train_co2_g_mean"])

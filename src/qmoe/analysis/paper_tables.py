"""The paper's tables 1-4 and its carbon supplement (reference-method.md 11.3), each one entry.

A `PaperTable` says everything about one table: the stats CSV it is computed into (by the stats
stage, from the runs table, the reference's `analyze-std.py` fixed: ddof 1, labelled units), the
file stem and title it is rendered under (by the report stage), and which rows and columns it
shows. `qmoe.report.tables.paper_table` renders any entry; adding a table is adding an entry.
Which variants a table holds and their bit-widths come from the runs table's fact columns.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import NamedTuple

import numpy as np
import pandas as pd

from qmoe.analysis.latency import claims_runtime
from qmoe.analysis.stats import StatsConfig
from qmoe.catalog import order, paper_name
from qmoe.contract.regimes import Regime, latency_prefix

KWH_TO_WH, KG_TO_G = 1e3, 1e3
Q_BASE_KINDS = ("bitlinear", "q16_reference")  # the reference's Q-Base family and its "16-bit"


class Fmt(Enum):
    TEXT = "text"
    NUMBER = "number"  # `field`, `digits` decimals
    MEAN_SD = "mean_sd"  # `<field>_mean` +- `<field>_sd`


class Col(NamedTuple):
    header: str
    field: str
    fmt: Fmt = Fmt.TEXT
    digits: int = 3


class Shown(NamedTuple):
    frame: pd.DataFrame  # one row per table row
    columns: list[Col]


class PaperTable(NamedTuple):
    stem: str  # reports/tables/paper/<stem>.md|tex
    csv: str  # reports/stats/<csv>.csv
    title: str  # `{f1}` is replaced by the F1 metric's name
    compute: Callable[[pd.DataFrame, str], pd.DataFrame]  # runs (with_units), f1 -> the CSV
    show: Callable[[pd.DataFrame, str], Shown]  # the CSV, f1 -> what the table shows
    note: str = ""


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


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    rank = {v: i for i, v in enumerate(order(list(frame["variant"].unique())))}
    return (
        frame.assign(_r=frame["variant"].map(rank))
        .sort_values(["protocol", "_r"])
        .drop(columns="_r")
    )


# --- table 1: cross-dataset F1 ------------------------------------------------------------------


def _table1(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
    """F1 per dataset plus the 'average' row (mean of means, RMS of stds)."""
    per = _suffixed(_per_dataset(runs, f1), "f1")
    avg = across_datasets(runs, f1).drop(columns="n_datasets")
    avg = avg.rename(columns={f"{f1}_mean": "f1_mean", f"{f1}_sd": "f1_sd", f"{f1}_n": "f1_n"})
    t1 = pd.concat([per, avg.assign(dataset="average")], ignore_index=True)
    params = across_datasets(runs, "params_m")[["protocol", "variant", "params_m_mean"]]
    return with_paper_name(t1.merge(params, on=["protocol", "variant"], how="left"))


def _show1(t1: pd.DataFrame, f1: str) -> Shown:
    """One F1 column per dataset, then the average."""
    wide = t1.pivot_table(
        index=["protocol", "variant", "paper_name", "params_m_mean"],
        columns="dataset",
        values=["f1_mean", "f1_sd"],
        aggfunc="first",
    )
    datasets = [d for d in dict.fromkeys(t1["dataset"]) if d != "average"] + ["average"]
    frame = pd.DataFrame(
        {
            f"{d}_{k}": wide[(f"f1_{k}", d)]
            for d in datasets
            for k in ("mean", "sd")
            if (f"f1_{k}", d) in wide
        }
    )
    cols = [
        Col("Protocol", "protocol"),
        Col("Variant", "variant"),
        Col("Paper name", "paper_name"),
        Col("Params (M)", "params_m_mean", Fmt.NUMBER),
    ]
    cols += [Col(f"{d} {f1}" if d != "average" else f"Avg {f1}", d, Fmt.MEAN_SD) for d in datasets]
    return Shown(_sorted(frame.reset_index()), cols)


# --- table 2: the quantisation ablation ---------------------------------------------------------


def _table2(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
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


def _show2(t2: pd.DataFrame, f1: str) -> Shown:
    frame = t2.assign(paper_name=t2["variant"].map(paper_name)) if not t2.empty else t2
    frame = frame.sort_values(["protocol", "dataset", "bits"]) if not frame.empty else frame
    return Shown(
        frame,
        [
            Col("Protocol", "protocol"),
            Col("Dataset", "dataset"),
            Col("Bits", "bits", Fmt.NUMBER, 0),
            Col("Variant", "variant"),
            Col("Paper name", "paper_name"),
            Col(f1, f1, Fmt.MEAN_SD),
            Col("% of 16-bit", "percent_of_16bit", Fmt.NUMBER, 1),
            Col("Latency median (ms/inference)", "latency_median_ms", Fmt.MEAN_SD, 4),
            Col("Fold pass (ms, reference)", "reference_fold_pass_ms", Fmt.MEAN_SD, 1),
            Col("Train energy (Wh)", "train_energy_wh", Fmt.MEAN_SD, 4),
            Col("Inference energy (mJ)", "energy_per_inference_mj", Fmt.MEAN_SD, 4),
        ],
    )


# --- table 3: the MoEs --------------------------------------------------------------------------


def _table3(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
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


def _show3(t3: pd.DataFrame, f1: str) -> Shown:
    return Shown(
        _sorted(t3),
        [
            Col("Protocol", "protocol"),
            Col("Variant", "variant"),
            Col("Paper name", "paper_name"),
            Col("Type", "type"),
            Col("Params (M)", "params_m_mean", Fmt.NUMBER),
            Col(f"Avg {f1}", f1, Fmt.MEAN_SD),
            Col("Latency (ms/inference)", "latency_median_ms", Fmt.MEAN_SD, 4),
            Col("Train energy (Wh)", "train_energy_wh", Fmt.MEAN_SD, 4),
            Col("Train CO2 (g)", "train_co2_g", Fmt.MEAN_SD, 4),
            Col("F1 per train Wh (ref. 'F1/mJ')", "f1_per_train_wh", Fmt.NUMBER, 2),
            Col("F1 per inference mJ", "f1_per_inference_mj", Fmt.NUMBER, 2),
        ],
    )


# --- table 4: latency; the carbon supplement ----------------------------------------------------


REGIME_COLUMNS = {r.value: f"latency_{r.value}_ms" for r in Regime}  # Table 4's latency columns


def _claims_latency(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run, its batch-1 median in each regime under the protocol's runtime (faithful: torch
    eager, corrected: the ONNX artefact; qmoe.analysis.latency.claims_runtime), and that runtime."""
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


def _table4(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
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


def _show4(t4: pd.DataFrame, f1: str) -> Shown:
    frame = t4.assign(size_kb=t4["size_packed_bytes_mean"] / 1e3) if not t4.empty else t4
    regimes = [
        col
        for regime, latency in REGIME_COLUMNS.items()
        for col in (
            Col(f"Latency {regime} (ms)", latency, Fmt.MEAN_SD, 4),
            Col(f"Speed-up vs fp32, {regime}", f"speedup_{regime}", Fmt.NUMBER, 2),
        )
    ]
    return Shown(
        frame,
        [
            Col("Protocol", "protocol"),
            Col("Variant", "variant"),
            Col("Paper name", "paper_name"),
            Col("Runtime", "runtime"),
            Col("Params (M)", "params_m_mean", Fmt.NUMBER),
            *regimes,
            Col("Fold pass (ms, reference)", "reference_fold_pass_ms", Fmt.MEAN_SD, 1),
            Col(f1, f1, Fmt.MEAN_SD),
            Col("Packed size (kB)", "size_kb", Fmt.NUMBER, 1),
        ],
    )


def _supplement(runs: pd.DataFrame, f1: str) -> pd.DataFrame:
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


def _show_supplement(sup: pd.DataFrame, f1: str) -> Shown:
    return Shown(
        sup,
        [
            Col("Protocol", "protocol"),
            Col("Variant", "variant"),
            Col("Paper name", "paper_name"),
            Col("Params (M)", "params_m_mean", Fmt.NUMBER),
            Col("Train CO2 (g)", "train_co2_g", Fmt.MEAN_SD, 4),
            Col("Train energy (Wh)", "train_energy_wh", Fmt.MEAN_SD, 4),
            Col("Train CO2 rate (mg/s)", "co2_rate_mg_per_s", Fmt.NUMBER, 3),
            Col("CO2 per inference (mg, estimate)", "inference_co2_mg_estimate", Fmt.MEAN_SD, 6),
            Col(f1, f1, Fmt.MEAN_SD),
        ],
    )


PAPER_TABLES = [
    PaperTable(
        "table1_cross_dataset",
        "std_table1_cross_dataset",
        "Table 1: {f1}, mean ± std (ddof 1) over folds x seeds; Avg = mean of dataset "
        "means ± RMS of their stds",
        _table1,
        _show1,
    ),
    PaperTable(
        "table2_quantization",
        "std_table2_quantization",
        "Table 2: quantisation ablation (the reference's '16-bit' = q16_reference, FP32 "
        "with LayerNorm)",
        _table2,
        _show2,
        "RAM is not measured (the reference's whole-process peak RSS is not a model "
        "property). Energy is CodeCarbon's estimate, in Wh (the reference printed Wh as "
        "mJ).",
    ),
    PaperTable(
        "table3_moe_curiosity",
        "std_table3_moe",
        "Table 3: mixtures of experts with and without curiosity",
        _table3,
        _show3,
    ),
    PaperTable(
        "table4_inference_latency",
        "std_table4_latency",
        "Table 4: inference latency at batch 1, one pinned thread, in both cache regimes (warm: "
        "back-to-back calls; after_backbone: the core's L2 flushed before each call, as after "
        "the backbone), in each protocol's runtime (faithful: torch eager, the reference's form; "
        "corrected: the ONNX Runtime artefact), sorted by after_backbone latency",
        _table4,
        _show4,
    ),
    PaperTable(
        "supplement_carbon",
        "std_supplement_carbon",
        "Supplement: carbon (CodeCarbon estimates)",
        _supplement,
        _show_supplement,
        "CO2 per inference = inference energy x the carbon intensity CodeCarbon applied "
        "to training (an estimate; no inference emissions were tracked).",
    ),
]


def std_tables(runs: pd.DataFrame, cfg: StatsConfig) -> dict[str, pd.DataFrame]:
    """Every PAPER_TABLES entry's CSV, by name (reports/stats/<csv>.csv)."""
    runs = with_units(runs)
    return {t.csv: t.compute(runs, cfg.f1_metric) for t in PAPER_TABLES}

"""The paper's tables 1-4 and its carbon supplement (reference-method.md 11.3) as the report shows
them, each one entry.

A `PaperTable` says how one table is shown: the stats CSV it reads (computed by the stats stage:
`qmoe.analysis.paper_tables`), the file stem and title it is rendered under, and which rows and
columns it shows. `qmoe.report.tables.paper_table` renders any entry; adding a table is adding an
entry here and its CSV there. Which variants a table holds and their bit-widths come from the runs
table's fact columns.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import NamedTuple

import pandas as pd

from qmoe.analysis.names import REGIME_COLUMNS, Table
from qmoe.catalog import order, paper_name


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
    csv: str  # reports/stats/<csv>.csv (qmoe.analysis.paper_tables.std_tables computes it)
    title: str  # `{f1}` is replaced by the F1 metric's name
    show: Callable[[pd.DataFrame, str], Shown]  # the CSV, f1 -> what the table shows
    note: str = ""


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    rank = {v: i for i, v in enumerate(order(list(frame["variant"].unique())))}
    return (
        frame.assign(_r=frame["variant"].map(rank))
        .sort_values(["protocol", "_r"])
        .drop(columns="_r")
    )


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
        Table.STD_TABLE1,
        "Table 1: {f1}, mean ± std (ddof 1) over folds x seeds; Avg = mean of dataset "
        "means ± RMS of their stds",
        _show1,
    ),
    PaperTable(
        "table2_quantization",
        Table.STD_TABLE2,
        "Table 2: quantisation ablation (the reference's '16-bit' = q16_reference, FP32 "
        "with LayerNorm)",
        _show2,
        "RAM is not measured (the reference's whole-process peak RSS is not a model "
        "property). Energy is CodeCarbon's estimate, in Wh (the reference printed Wh as "
        "mJ).",
    ),
    PaperTable(
        "table3_moe_curiosity",
        Table.STD_TABLE3,
        "Table 3: mixtures of experts with and without curiosity",
        _show3,
    ),
    PaperTable(
        "table4_inference_latency",
        Table.STD_TABLE4,
        "Table 4: inference latency at batch 1, one pinned thread, in both cache regimes (warm: "
        "back-to-back calls; after_backbone: the core's L2 flushed before each call, as after "
        "the backbone), in each protocol's runtime (faithful: torch eager, the reference's form; "
        "corrected: the ONNX Runtime artefact), sorted by after_backbone latency",
        _show4,
    ),
    PaperTable(
        "supplement_carbon",
        Table.STD_SUPPLEMENT,
        "Supplement: carbon (CodeCarbon estimates)",
        _show_supplement,
        "CO2 per inference = inference energy x the carbon intensity CodeCarbon applied "
        "to training (an estimate; no inference emissions were tracked).",
    ),
]

"""The artefact folders as code (qmoe.contract): the only place that spells their file names, the
column lists docs/architecture.md describes, and readers that refuse a file of another run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qmoe.contract import benchmarks, deployed, raw, runs
from qmoe.contract.runs import ModelKey, read_metrics, write_metrics
from qmoe.contract.study import RunId, instance, runs_of
from qmoe.io import InputError, save_json

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "src" / "qmoe" / "contract"
NAMES = ("metrics.json", "features.parquet", "manifest.csv", "deployed.csv")


def test_no_file_outside_the_contract_spells_an_artefact_file_name():
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "stages").rglob("*.py")]
    spelled = sorted(
        f"{f.relative_to(ROOT)}: {name}"
        for f in files
        if CONTRACT not in f.parents
        for name in NAMES
        if name in f.read_text()
    )
    assert spelled == []
    # the check can fail: the contract itself spells every name
    assert all(any(n in f.read_text() for f in CONTRACT.glob("*.py")) for n in NAMES)


# (section heading prefix, constant): the section's paragraph naming the constant lists its columns
DOCUMENTED = [
    ("## 1.", "qmoe.contract.raw.MANIFEST_COLUMNS", raw.MANIFEST_COLUMNS),
    ("## 3.", "qmoe.contract.runs.METRICS_FIELDS", runs.METRICS_FIELDS),
    ("## 3.", "qmoe.contract.runs.COST_FIELDS", runs.COST_FIELDS),
    ("## 3.", "qmoe.contract.runs.PREDICTION_FIELDS", runs.PREDICTION_FIELDS),
    ("## 3b.", "qmoe.contract.deployed.DEPLOYED_COLUMNS", deployed.DEPLOYED_COLUMNS),
    ("## 3b.", "qmoe.contract.deployed.ZCLIP_COLUMNS", deployed.ZCLIP_COLUMNS),
    ("## 3b.", "qmoe.contract.deployed.DISPATCH_COLUMNS", deployed.DISPATCH_COLUMNS),
    ("## 3b.", "qmoe.contract.deployed.ROUTING_COLUMNS", deployed.ROUTING_COLUMNS),
    ("## 4.", "qmoe.contract.benchmarks.SUMMARY_FIELDS", sorted(benchmarks.SUMMARY_FIELDS)),
]


def _section(heading: str) -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index(f"\n{heading} ")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def _paragraph(section: str, constant: str) -> str:
    """The list item (or paragraph) of `section` that names `constant`."""
    items = re.split(r"\n(?=- |\n)", section)
    found = [item for item in items if f"`{constant}`" in item]
    assert len(found) == 1, f"docs/architecture.md names {constant} {len(found)} times"
    return found[0]


@pytest.mark.parametrize("heading, constant, columns", DOCUMENTED, ids=lambda x: str(x)[:40])
def test_the_architecture_doc_lists_each_contract_column_list(heading, constant, columns):
    """Each column in the doc's paragraph naming the constant, in the constant's order (the
    summary's analysis subset: in any order, so sorted)."""
    words = re.findall(r"[a-z0-9_]+", _paragraph(_section(heading), constant))
    if columns is DOCUMENTED[-1][2]:
        assert set(columns) <= set(words)
        return
    positions = [words.index(c) if c in words else -1 for c in columns]
    assert -1 not in positions, f"{[c for c, p in zip(columns, positions) if p < 0]} missing"
    assert positions == sorted(positions), f"{constant}: the doc lists them in another order"


def test_the_contract_imports_no_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "import qmoe.contract.benchmarks, qmoe.contract.deployed, qmoe.contract.features\n"
        "import qmoe.contract.raw, qmoe.contract.runs, qmoe.contract.study\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_stage_instance_is_one_dataset_and_protocol():
    ids = runs_of("toy", "corrected", ["fp32", "moe"])
    assert ids == (RunId("toy", "corrected", "fp32"), RunId("toy", "corrected", "moe"))
    assert instance(ids) == ("toy", "corrected")
    assert ids[1].under("data/runs") == Path("data/runs/toy/corrected/moe")
    with pytest.raises(ValueError, match=r"one \(dataset, protocol\), got \[\('toy', 'c'\), \("):
        instance((RunId("toy", "c", "fp32"), RunId("toy", "f", "fp32")))


RUN = RunId("toy", "corrected", "fp32")
ROW = {"fold": 1, "seed": 0, "macro_f1": 0.5, "n_params": 10}


def test_metrics_round_trip_through_the_one_writer_and_reader(tmp_path):
    write_metrics(tmp_path, RUN, {"kind": "fp32"}, ["a", "b"], [ROW, ROW | {"fold": 2}])
    metrics = read_metrics(tmp_path, RUN)
    assert metrics.keys == [ModelKey(1, 0), ModelKey(2, 0)]
    assert metrics.class_names == ["a", "b"]
    assert metrics.path == tmp_path / "metrics.json"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"variant": "w4a8"}, r"metrics.json: variant is 'w4a8', expected 'fp32'"),
        ({"runs": []}, r"metrics.json: 'runs' is empty"),
        ({"runs": [ROW | {"n_params": None}]}, r"rows \[0\] lack one of fold, seed, macro_f1"),
        ({"runs": [ROW, ROW]}, r"metrics.json: duplicate \(fold, seed\) rows \[\(1, 0\)\]"),
    ],
)
def test_the_metrics_reader_refuses_a_file_of_another_run(tmp_path, change, message):
    save_json(tmp_path / "metrics.json", RUN._asdict() | {"runs": [ROW]} | change)
    with pytest.raises(InputError, match=message):
        read_metrics(tmp_path, RUN)


def test_a_missing_run_folder_names_the_variant_to_train(tmp_path):
    with pytest.raises(InputError, match=r"metrics.json: not found \(train fp32 first\)"):
        read_metrics(tmp_path, RUN)


def test_deployed_tables_are_written_per_variant_and_read_back(tmp_path):
    rows = [{"variant": v, "fold": 1, "seed": 0} for v in ("fp32", "moe")]
    routing = [{"variant": "moe", **dict(zip(deployed.ROUTING_COLUMNS, (1, 0, 0, "e", 1.0)))}]
    for v in ("fp32", "moe"):
        (tmp_path / v).mkdir()
    deployed.write_tables(tmp_path, rows, routing)
    fp32, moe = deployed.read_variant(tmp_path, "fp32"), deployed.read_variant(tmp_path, "moe")
    assert fp32.routing is None and list(fp32.table.columns) == ["fold", "seed"]
    assert list(moe.routing.columns) == deployed.ROUTING_COLUMNS
    with pytest.raises(InputError, match=r"w4a8/deployed.csv: not found \(run the export stage\)"):
        deployed.read_variant(tmp_path, "w4a8")


def test_the_manifest_reader_names_the_file_and_the_missing_column(tmp_path):
    with pytest.raises(InputError, match=r"manifest.csv: not found \(run the download stage\)"):
        raw.read_manifest(tmp_path)
    pd.DataFrame({"clip_id": ["a"], "path": ["a.wav"]}).to_csv(tmp_path / "manifest.csv")
    with pytest.raises(InputError, match=r"manifest.csv: missing column\(s\) \['sample_rate'\]"):
        raw.read_manifest(tmp_path)


def test_the_runs_table_section_names_the_lists_it_joins():
    item = _paragraph(_section("## 5."), "qmoe.contract.runs.METRICS_FIELDS")
    for constant in ("runs.COST_FIELDS", "benchmarks.SUMMARY_FIELDS"):
        assert f"`qmoe.contract.{constant}`" in item

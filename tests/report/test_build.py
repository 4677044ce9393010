"""The report's protocol text comes from the train stage's records (qmoe.report.build)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from qmoe.io import InputError
from qmoe.report.build import protocol_lines


def _record(root, dataset, protocol, lines):
    folder = root / dataset / protocol
    folder.mkdir(parents=True, exist_ok=True)
    record = {"dataset": dataset, "protocol": protocol, "describe": lines}
    (folder / "protocol.json").write_text(json.dumps(record))


RUNS = pd.DataFrame(
    {
        "dataset": ["b", "a", "a", "b"],
        "protocol": ["faithful", "faithful", "corrected", "corrected"],
    }
)


def test_each_protocol_reads_as_its_train_record_in_protocol_order(tmp_path):
    for d in ("a", "b"):
        _record(tmp_path, d, "corrected", ["Seeds: every seed."])
        _record(tmp_path, d, "faithful", ["Seeds: one.", "Labels: scrambled."])
    got = protocol_lines(tmp_path, RUNS)
    assert list(got) == ["corrected", "faithful"]
    assert got["faithful"] == ["Seeds: one.", "Labels: scrambled."]


def test_a_missing_record_names_the_file_and_the_stage(tmp_path):
    _record(tmp_path, "a", "corrected", ["x"])
    with pytest.raises(InputError, match=r"a/faithful/protocol.json: not found \(run the train"):
        protocol_lines(tmp_path, RUNS[RUNS["dataset"] == "a"])


def test_two_datasets_that_describe_one_protocol_otherwise_are_refused(tmp_path):
    for d, words in (("a", "x"), ("b", "y")):
        _record(tmp_path, d, "corrected", [words])
        _record(tmp_path, d, "faithful", ["z"])
    with pytest.raises(InputError, match=r"b/corrected/protocol.json: describes corrected other"):
        protocol_lines(tmp_path, RUNS)


def test_a_record_without_lines_is_refused(tmp_path):
    _record(tmp_path, "a", "corrected", "one string")
    with pytest.raises(InputError, match="'describe' is not a list of lines"):
        protocol_lines(tmp_path, RUNS.iloc[2:3])

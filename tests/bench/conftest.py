"""Bench fixtures: the deploy tests' tiny run tree, exported, for the benchmark to time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "deploy_tree_fixtures", Path(__file__).resolve().parents[1] / "deploy" / "conftest.py"
)
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)

VARIANTS = ("fp32", "ptq_int8", "w4a8", "w8a8", "ternary_reference", "moe")


@pytest.fixture
def exported_tree(tmp_path, monkeypatch):
    """features/, runs/<variant>/ and deployed/ for VARIANTS; the benchmark lock in tmp_path."""
    from qmoe.contract.study import runs_of
    from qmoe.deploy import folder
    from qmoe.deploy.export import ExportConfig
    from qmoe.deploy.verify import CheckConfig
    from qmoe.executor import ExecutionConfig

    monkeypatch.setenv("QMOE_BENCH_LOCK", str(tmp_path / "bench.lock"))
    tree = trees.write_run_tree(tmp_path, list(VARIANTS))
    params = folder.ExportParams(ExportConfig(16, 4), CheckConfig(1e-5, 1e-4, 5e-3, 1e-2, 0.9, 0.9))
    tree["deployed"] = tmp_path / "deployed"
    folder.deploy_tree(
        runs_of("tiny", "corrected", VARIANTS),
        params,
        tree["features"],
        tree["runs"],
        tree["deployed"],
        ExecutionConfig("local", 1),
    )
    return tree


@pytest.fixture
def write_tree(tmp_path):
    """write_run_tree(names) under tmp_path/tree (the deploy tests' helper)."""
    return lambda names: trees.write_run_tree(tmp_path / "tree", names)

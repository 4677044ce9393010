"""Cache regimes: where the L2 size comes from, and what the after_backbone flush does to a head."""

import os
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from qmoe.bench import blocks, regimes
from qmoe.bench.runners import Target
from qmoe.contract.benchmarks import Regime
from qmoe.contract.runs import ModelKey


def _cache(root, cpu, index, level, size, line="64"):
    d = root / f"cpu{cpu}" / "cache" / f"index{index}"
    d.mkdir(parents=True)
    (d / "level").write_text(f"{level}\n")
    (d / "size").write_text(f"{size}\n")
    (d / "coherency_line_size").write_text(f"{line}\n")


def test_l2_comes_from_the_pinned_cpus_sysfs_entry(tmp_path):
    _cache(tmp_path, 1, 0, 1, "32K")
    _cache(tmp_path, 1, 2, 2, "512K")
    _cache(tmp_path, 1, 3, 3, "32768K")
    _cache(tmp_path, 0, 2, 2, "2048K", "128")
    assert regimes.l2_cache(1, tmp_path) == regimes.Cache(
        512 * 1024, 64, str(tmp_path / "cpu1" / "cache" / "index2" / "size")
    )
    assert regimes.l2_cache(0, tmp_path).l2_bytes == 2 * 1024 * 1024
    assert regimes.l2_cache(0, tmp_path).line_bytes == 128


def test_without_sysfs_lscpu_gives_one_instance_not_the_total(tmp_path, monkeypatch):
    """`lscpu` prints 'L2: 1 MiB (2 instances)'; one core has the ONE-SIZE column's 512 KiB."""
    text = "LEVEL ONE-SIZE COHERENCY-SIZE\n1 32768 64\n1 32768 64\n2 524288 64\n3 33554432 64\n"

    def fake(cmd, **kw):
        assert cmd[:3] == ["lscpu", "-B", "-C=LEVEL,ONE-SIZE,COHERENCY-SIZE"]
        return subprocess.CompletedProcess(cmd, 0, text, "")

    monkeypatch.setattr(regimes.subprocess, "run", fake)
    assert regimes.l2_cache(0, tmp_path) == regimes.Cache(524288, 64, "lscpu -C ONE-SIZE")


def test_no_l2_anywhere_is_an_error_naming_the_cpu(tmp_path, monkeypatch):
    def fake(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 0, "LEVEL ONE-SIZE COHERENCY-SIZE\n", "")

    monkeypatch.setattr(regimes.subprocess, "run", fake)
    with pytest.raises(RuntimeError, match=r"cpu5: no level-2 cache in .* or in lscpu -C"):
        regimes.l2_cache(5, tmp_path)


def _fp32_head(l2_bytes: int) -> ort.InferenceSession:
    """A two-layer fp32 head whose weights fill about half the L2 (warm: served from L2), as an
    ONNX Runtime session on one thread. x (1, d) -> MatMul (d, d) -> Relu -> MatMul (d, 10)."""
    d = max(64, int((l2_bytes / 2 / 4) ** 0.5))  # d*d fp32 weights = L2 / 2
    rng = np.random.default_rng(0)
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, (d, d), rng.standard_normal(d * d).tolist())
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, (d, 10), rng.standard_normal(d * 10).tolist())
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, d))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 10))],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def test_after_backbone_is_slower_than_warm_for_an_fp32_head():
    """The regime the claims use must be able to differ from warm: an fp32 head whose weights sit
    in L2 when called back to back has to fetch them again after the flush the benchmark runs."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    try:
        cache = regimes.l2_cache(cpu)
    except RuntimeError:  # no sysfs entry and no lscpu: assume a common 1 MiB L2
        cache = regimes.Cache(2**20, 64, "assumed")
    session = _fp32_head(cache.l2_bytes)
    x = np.ones((1, session.get_inputs()[0].shape[1]), dtype=np.float32)
    target = Target("fp32", ModelKey(1, 0), "onnxruntime")
    prepared = [blocks.Prepared(target, {1: [lambda: session.run(None, {"x": x})]})]
    flush = regimes.Flush(4 * cache.l2_bytes, cache.line_bytes)
    blocks.warm(prepared[0].calls[1], 20)
    regimes_ = (Regime.WARM, Regime.AFTER_BACKBONE)
    raw, _ = blocks.round_robin(prepared, 1, {target: 50}, 8, regimes_, flush)
    warm = np.median(raw[(target, Regime.WARM)])
    after = np.median(raw[(target, Regime.AFTER_BACKBONE)])
    assert after > warm, f"after_backbone median {after} ns not above warm {warm} ns"

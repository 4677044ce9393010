"""Cache regimes: where the L2 size comes from, and the names regimes and forms give to files."""

import subprocess

import pytest

from qmoe.bench import regimes
from qmoe.bench.regimes import Form, Regime


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


@pytest.mark.parametrize(
    "runtime, regime, prefix",
    [
        (None, Regime.WARM, ""),
        (None, Regime.AFTER_BACKBONE, "after_backbone_"),
        ("torch", Regime.WARM, "torch_"),
        ("torch", Regime.AFTER_BACKBONE, "torch_after_backbone_"),
    ],
)
def test_summary_prefixes(runtime, regime, prefix):
    assert regimes.latency_prefix(runtime, regime) == prefix


def test_sample_folders():
    assert regimes.latency_folder(None, Form.WHOLE, Regime.WARM) == "latency/warm"
    assert (
        regimes.latency_folder(None, Form.HOST_DISPATCH, Regime.AFTER_BACKBONE)
        == "latency_host_dispatch/after_backbone"
    )
    assert regimes.latency_folder("torch", Form.WHOLE, Regime.WARM) == "latency_torch/warm"

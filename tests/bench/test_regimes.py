"""Cache regimes: where the L2 size comes from."""

import subprocess

import pytest

from qmoe.bench import regimes


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

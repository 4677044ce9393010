"""Machine-wide benchmark lock, core pinning and the load/clock/steal record."""

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qmoe.bench import machine


def _hold(path, ready, seconds):
    with machine.MachineLock(path):
        ready.set()
        time.sleep(seconds)


def test_a_second_benchmark_waits_for_the_first(tmp_path):
    path = tmp_path / "bench.lock"
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(path, ready, 1.0))
    holder.start()
    assert ready.wait(10)
    t0 = time.monotonic()
    with machine.MachineLock(path, poll_s=0.05) as waited:
        assert waited >= 0.5 and time.monotonic() - t0 >= 0.5
        assert path.read_text() == f"{os.getpid()}\n"
    holder.join()


def test_lock_is_free_again_after_the_block_and_after_an_error(tmp_path):
    path = tmp_path / "bench.lock"
    with pytest.raises(RuntimeError), machine.MachineLock(path):
        raise RuntimeError("boom")
    with machine.MachineLock(path, poll_s=0.01) as waited:
        assert waited < 0.5


def test_pin_to_core_restricts_affinity_and_names_allowed_cpus():
    before = os.sched_getaffinity(0)
    try:
        cpu = machine.pin_to_core(-1)
        assert os.sched_getaffinity(0) == {cpu} and cpu == max(before)
        with pytest.raises(ValueError, match=r"benchmark.cpu 5: this process may run on CPUs \["):
            machine.pin_to_core(5)
    finally:
        os.sched_setaffinity(0, before)


def test_clock_from_cpufreq_else_cpuinfo(tmp_path):
    freq = tmp_path / "cpu" / "cpu1" / "cpufreq"
    freq.mkdir(parents=True)
    (freq / "scaling_cur_freq").write_text("3400000\n")
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\ncpu MHz\t\t: 2600.000\n\nprocessor\t: 1\ncpu MHz\t\t: 2700.5\n"
    )
    assert machine.cpu_mhz(1, tmp_path / "cpu", info) == 3400.0
    assert machine.cpu_mhz(0, tmp_path / "cpu", info) == 2600.0
    assert machine.cpu_mhz(2, tmp_path / "cpu", info) is None


def test_steal_ticks_read_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 5 100 1 0 2 37 0 0\ncpu0 1 2 3\n")
    assert machine.steal_ticks(stat) == 37
    assert machine.steal_ticks(tmp_path / "absent") is None
    snap = machine.snapshot(0)
    assert set(snap) == {"time", "load_average", "cpu_mhz", "steal_ticks"}


def test_priority_sets_the_niceness_for_the_block_only():
    # in a child process: a raised niceness may not be lowered again without CAP_SYS_NICE
    code = (
        "import os; from qmoe.bench import machine\n"
        "b = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "with machine.priority(b + 3) as now:\n"
        "    assert now == b + 3 == os.getpriority(os.PRIO_PROCESS, 0), now\n"
        "print(os.getpriority(os.PRIO_PROCESS, 0) - b if os.geteuid() == 0 else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"  # restored (checked where the process may lower it)


def test_the_lock_file_is_created_usable_by_every_user_whatever_the_umask(tmp_path):
    path = tmp_path / "bench.lock"
    before = os.umask(0o022)
    try:
        with machine.MachineLock(path):
            pass
    finally:
        os.umask(before)
    assert path.stat().st_mode & 0o777 == 0o666


def _as_nobody(fn) -> int:
    """Exit status of fn() run in a forked child as user nobody (65534): 0 when it returns True."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (child)
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = 0 if fn() else 2
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _locked_out(path) -> bool:
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
@pytest.mark.parametrize("mode", [None, 0o644])  # made by MachineLock; an older 0644 file
def test_a_second_user_shares_the_lock_of_the_first(mode):
    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's tmp_path is private to its user
    try:
        os.chmod(shared, 0o1777)  # like /tmp
        path = shared / "bench.lock"
        if mode is not None:
            path.write_text("")
            os.chmod(path, mode)
        with machine.MachineLock(path):
            assert _as_nobody(lambda: _locked_out(path)) == 0  # excluded while root times
        assert _as_nobody(lambda: machine.MachineLock(path).__enter__() is not None) == 0
    finally:
        shutil.rmtree(shared)

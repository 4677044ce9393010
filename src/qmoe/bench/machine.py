"""The machine while it is timed: one benchmark at a time, one pinned core, load and clock recorded.

    with MachineLock() as waited_s:          # blocks while another benchmark holds the lock
        core = pin_to_core(-1)               # the last CPU this process may use
        before = snapshot()                  # load average, CPU MHz, steal ticks
        ...
        after = snapshot()

The lock is an `fcntl.flock` on a file every benchmark of this machine opens (QMOE_BENCH_LOCK, else
/tmp/qmoe-benchmark.lock): `dvc queue start -j 2` runs two stages at once, and two benchmarks
timing side by side would each measure the other. The kernel drops the lock when the process
ends, even when it is killed. Every user of the machine shares the one file: its creator makes it
mode 0666 whatever the umask, and others open it without O_CREAT (Linux's fs.protected_regular
refuses O_CREAT on another user's file in sticky /tmp, even a writable one).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_ENV = "QMOE_BENCH_LOCK"
DEFAULT_LOCK = Path("/tmp/qmoe-benchmark.lock")


def lock_path() -> Path:
    return Path(os.environ.get(LOCK_ENV, DEFAULT_LOCK))


@contextlib.contextmanager
def MachineLock(path: Path | None = None, poll_s: float = 0.5) -> Iterator[float]:  # noqa: N802
    """Hold the machine-wide benchmark lock for the block; yields the seconds spent waiting."""
    path = path or lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_shared(path)
    t0, told = time.monotonic(), False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    log.info("another benchmark holds %s; waiting for it", path)
                    told = True
                time.sleep(poll_s)
        with contextlib.suppress(OSError):  # who holds it, for a curious reader; opened read-only
            os.ftruncate(fd, 0)  # where another user made it 0644 (flock needs no write access)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield time.monotonic() - t0
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open_shared(path: Path) -> int:
    """Open the lock file (read-only where another user's is not writable: flock needs no write
    access), creating it mode 0666 whatever the umask if it does not exist."""
    while True:
        try:
            return os.open(path, os.O_RDWR)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # another benchmark created it meanwhile: open that one
            continue
        os.fchmod(fd, 0o666)  # open() applies the umask (0644 under the usual 022)
        return fd


def pin_to_core(index: int) -> int:
    """Restrict this process to one CPU: `index` into its allowed CPUs (sorted; -1 = the last).
    Returns the CPU id. Raises ValueError naming the allowed CPUs when `index` is out of range."""
    allowed = sorted(os.sched_getaffinity(0))
    if not -len(allowed) <= index < len(allowed):
        raise ValueError(f"benchmark.cpu {index}: this process may run on CPUs {allowed}")
    cpu = allowed[index]
    os.sched_setaffinity(0, {cpu})
    return cpu


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_mhz(
    cpu: int, root: Path = Path("/sys/devices/system/cpu"), cpuinfo: Path = Path("/proc/cpuinfo")
) -> float | None:
    """Current clock of `cpu` in MHz: cpufreq's scaling_cur_freq where readable, else the
    `cpu MHz` line of /proc/cpuinfo (on VMs often the nominal clock); None when neither is."""
    freq = root / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq"
    with contextlib.suppress(OSError, ValueError):
        return int(freq.read_text()) / 1000
    with contextlib.suppress(OSError):
        current = None
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "processor":
                current = int(value)
            elif key.strip() == "cpu MHz" and current == cpu:
                return float(value)
    return None


def steal_ticks(stat: Path = Path("/proc/stat")) -> int | None:
    """Cumulative steal time of the whole machine (USER_HZ ticks): time a hypervisor gave this
    VM's CPUs to someone else. None where /proc/stat is absent."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = stat.read_text().splitlines()[0].split()
        return int(fields[8]) if fields[0] == "cpu" else None
    return None


def clock_ticks() -> int | None:
    """USER_HZ: the unit of steal_ticks (ticks per second)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return int(os.sysconf("SC_CLK_TCK"))
    return None


def snapshot(cpu: int | None = None) -> dict:
    """Load average, clock and steal ticks now (JSON-able; None for what is not readable)."""
    return {
        "time": time.time(),
        "load_average": load_average(),
        "cpu_mhz": None if cpu is None else cpu_mhz(cpu),
        "steal_ticks": steal_ticks(),
    }


@contextlib.contextmanager
def priority(nice: int) -> Iterator[int | None]:
    """This process at niceness `nice` for the block (negative: favoured by the scheduler over
    other work on its core, so a timed block is preempted less often; needs CAP_SYS_NICE).
    Yields the niceness in force, or None where it could not be set (then unchanged)."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        now: int | None = os.getpriority(os.PRIO_PROCESS, 0)
    except OSError as e:
        log.warning("benchmark.nice %d not set (%s): timing at niceness %d", nice, e, before)
        now = None
    try:
        yield now
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, before)

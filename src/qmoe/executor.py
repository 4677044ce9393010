"""Run a stage's independent work units on a local process pool or on Ray; results in unit order.

A unit is one picklable value (for `train`: one model's fold and seed). `fn(shared, unit)` must be a
top-level function of an importable module; `shared` (the features, the configs) travels once to
each worker (local: pickled into each pool process at start; Ray: one `ray.put`), never per unit.
Every worker runs torch on one thread, so a unit computes the same bits wherever it runs and the
results do not depend on the backend or the worker count. A failed unit stops the others and
raises `UnitFailed` naming the unit; Ctrl-C stops the workers, and a pool's workers end with the
stage however it ends (kill -9 included). Ray (`qmoe.ray_backend`) is imported only when chosen.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

from qmoe.io import UserError, require

log = logging.getLogger(__name__)

S = TypeVar("S")
U = TypeVar("U")
R = TypeVar("R")


@dataclass(frozen=True)
class ExecutionConfig:
    """params.yaml `execution`: where a stage's units run. `workers` null: one per core here
    (local), or every CPU the Ray cluster offers (ray)."""

    backend: Literal["local", "ray"]
    workers: int | None

    def __post_init__(self) -> None:
        if self.workers is not None:
            require(
                self.workers >= 1,
                "execution.workers",
                f"must be >= 1 or null (one per core), got {self.workers}",
            )


class UnitFailed(RuntimeError):
    """One unit raised or its worker died; the message names the unit (a bug in the unit keeps
    its traceback as the cause)."""


class UnitUserError(UnitFailed, UserError):
    """One unit failed on bad input (its error was a UserError or OSError): one `error:` line."""


def unit_failed(unit_name: str, error: BaseException) -> UnitFailed:
    cause = getattr(error, "cause", None) or error  # Ray's RayTaskError wraps the unit's error
    cls = UnitUserError if isinstance(cause, (UserError, OSError)) else UnitFailed
    return cls(f"unit {unit_name} failed: {type(cause).__name__}: {cause}")


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0))


def local_workers(requested: int | None) -> int:
    """Workers on this machine: `requested` (null: one per core), at most one per core (more
    single-threaded workers would only time-share the cores, each with its own memory)."""
    cores = available_cores()
    if requested is not None and requested > cores:
        log.warning(
            "execution.workers: %d > the %d cores available; using %d", requested, cores, cores
        )
    return min(requested or cores, cores)


def measures_all_work(cfg: ExecutionConfig) -> bool:
    """False when units may run on other machines (a Ray cluster named by RAY_ADDRESS), where a
    meter on this machine cannot see their energy."""
    return cfg.backend == "local" or not os.environ.get("RAY_ADDRESS")


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread for the block (restored after): the results' bits must not depend on
    the thread count, and single-threaded workers have no OpenMP barriers to stall when another
    process holds a core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Timed(NamedTuple):
    result: Any
    start: float  # time.time() in the worker: comparable across the processes of one machine
    end: float


def call_timed(fn: Callable[[S, U], R], shared: S, unit: U) -> Timed:
    with one_thread():
        start = time.time()
        result = fn(shared, unit)
        return Timed(result, start, time.time())


def run_units(
    fn: Callable[[S, U], R],
    shared: S,
    units: Sequence[U],
    cfg: ExecutionConfig,
    name: Callable[[U], str] = str,
) -> list[R]:
    """`[fn(shared, u) for u in units]`, run by `cfg`; `name(unit)` labels progress and errors."""
    if not units:
        return []
    t0 = time.time()
    if cfg.backend == "ray":
        from qmoe.ray_backend import run_ray

        timed = run_ray(fn, shared, units, cfg.workers, name)
    elif (workers := min(local_workers(cfg.workers), len(units))) == 1:
        # in this process: no pool to start, same bits
        timed = [_in_process(fn, shared, unit, name, i, len(units)) for i, unit in enumerate(units)]
    else:
        timed = _run_pool(fn, shared, units, workers, name)
    first, last = min(t.start for t in timed), max(t.end for t in timed)
    log.info(
        "%d units: %.2f s from the first unit's start to the last one's end; %.2f s before "
        "(workers starting), %.2f s after; %s backend",
        len(units),
        last - first,
        first - t0,
        time.time() - last,
        cfg.backend,
    )
    return [t.result for t in timed]


def _in_process(
    fn: Callable[[S, U], R], shared: S, unit: U, name: Callable[[U], str], i: int, n: int
) -> Timed:
    try:
        result = call_timed(fn, shared, unit)
    except Exception as e:
        raise unit_failed(name(unit), e) from e
    progress(i + 1, n, name(unit))
    return result


def progress(done: int, total: int, unit_name: str) -> None:
    """Every unit at DEBUG; about every tenth at INFO (a features stage has thousands)."""
    every = max(1, total // 10)
    level = logging.INFO if done == total or done % every == 0 else logging.DEBUG
    log.log(level, "unit %d/%d done: %s", done, total, unit_name)


# --- local process pool ------------------------------------------------------------------------


def warm_pool(cfg: ExecutionConfig, modules: Sequence[str]) -> None:
    """Start the local pool's server now, importing `modules` (the units' code: torch and all)
    while this process reads its inputs; call it before the stage's own heavy imports. The two
    imports then overlap on two cores instead of running one after the other (about 4 s a stage
    here), and every worker forks with them imported. A no-op where no local pool will run (Ray,
    one worker)."""
    if cfg.backend != "local" or min(cfg.workers or available_cores(), available_cores()) < 2:
        return
    import multiprocessing.forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(modules))
    multiprocessing.forkserver.ensure_running()  # returns at once; the server imports meanwhile


_WORKER: tuple[Callable[[Any, Any], Any], Any] | None = None  # (fn, shared) of this pool process


def _init_worker(payload: bytes, stage: int) -> None:
    """Pool process start: keep (fn, shared); Ctrl-C is the parent's to handle (it kills us);
    end with process `stage`, however it ends."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = "1"
    _die_with(stage)
    _WORKER = pickle.loads(payload)


def _die_with(pid: int) -> None:
    """Exit this process as soon as process `pid` ends. A pool worker's parent is the forkserver,
    not the stage, and a killed stage's forkserver waits for its workers (they hold its pipe),
    so neither a parent-death signal nor os.getppid() would ever see the stage go."""

    try:
        fd = os.pidfd_open(pid)  # readable once the process has ended (Linux >= 5.3)
    except ProcessLookupError:  # already gone
        os._exit(1)

    def watch() -> None:
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="die-with-stage", daemon=True).start()


def _run_in_worker(unit: Any) -> Any:
    assert _WORKER is not None, "pool process was not initialised"
    fn, shared = _WORKER
    return call_timed(fn, shared, unit)


def _run_pool(
    fn: Callable[[S, U], R], shared: S, units: Sequence[U], workers: int, name: Callable[[U], str]
) -> list[Timed]:
    # forkserver: workers fork from a clean server that imported fn's module once (torch included),
    # not from this process, whose threads (CodeCarbon's sampler) must not be forked. A server
    # already started by `warm_pool` keeps its own preload.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([fn.__module__])
    # Plain pickle, as bytes: multiprocessing's own pickler would send each tensor as a
    # shared-memory file descriptor, and a backbone's hundreds of tensors exceed what the
    # forkserver may pass ("too many fds").
    payload = pickle.dumps((fn, shared), protocol=pickle.HIGHEST_PROTOCOL)
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(payload, os.getpid())
    )
    log.info("%d units on a local pool of %d single-threaded workers", len(units), workers)
    results: dict[int, Timed] = {}
    try:
        futures = {pool.submit(_run_in_worker, unit): i for i, unit in enumerate(units)}
        pending: set[Future] = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=futures.__getitem__):
                i = futures[future]
                error = future.exception()
                if error is not None:
                    raise unit_failed(name(units[i]), error) from error
                results[i] = future.result()
                progress(len(results), len(units), name(units[i]))
    except BaseException:
        _kill(pool)
        raise
    pool.shutdown(wait=True)
    return [results[i] for i in range(len(units))]


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop now: running units are killed, queued ones never start (shutdown alone would wait for
    the running ones). Python 3.14 has `terminate_workers`; before it, the pool's process table."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)

"""Run a stage's independent work units on a local process pool or on Ray; results in unit order.

A unit is one picklable value (for `train`: one model's fold and seed). `fn(shared, unit)` must be a
top-level function of an importable module; `shared` (the features, the configs) travels once to
each worker (local: pickled into each pool process at start; Ray: one `ray.put`), never per unit.
Every worker runs torch on one thread, so a unit computes the same bits wherever it runs and the
results do not depend on the backend or the worker count. A failed unit stops the others and
raises `UnitFailed` naming the unit; Ctrl-C stops the workers. Ray is imported only when chosen.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
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


def _failed(unit_name: str, error: BaseException) -> UnitFailed:
    cause = getattr(error, "cause", None) or error  # Ray's RayTaskError wraps the unit's error
    cls = UnitUserError if isinstance(cause, (UserError, OSError)) else UnitFailed
    return cls(f"unit {unit_name} failed: {type(cause).__name__}: {cause}")


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0))


def measures_all_work(cfg: ExecutionConfig) -> bool:
    """False when units may run on other machines (a Ray cluster named by RAY_ADDRESS), where a
    meter on this machine cannot see their energy."""
    return cfg.backend == "local" or not os.environ.get("RAY_ADDRESS")


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread for the block (restored after): the results' bits must not depend on
    the thread count, and one single-threaded worker per core has no OpenMP barriers (measured
    on the features stage: with 2-thread teams, while another process held one core, the mel
    phase and the CNN ran ~10x slower; single-threaded workers are as fast on an idle machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Timed(NamedTuple):
    result: Any
    start: float  # time.time() in the worker: comparable across the processes of one machine
    end: float


def _call(fn: Callable[[S, U], R], shared: S, unit: U) -> _Timed:
    with one_thread():
        start = time.time()
        result = fn(shared, unit)
        return _Timed(result, start, time.time())


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
        timed = _run_ray(fn, shared, units, cfg.workers, name)
    elif (workers := min(cfg.workers or available_cores(), len(units))) == 1:
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
) -> _Timed:
    try:
        result = _call(fn, shared, unit)
    except Exception as e:
        raise _failed(name(unit), e) from e
    _progress(i + 1, n, name(unit))
    return result


def _progress(done: int, total: int, unit_name: str) -> None:
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
    if cfg.backend != "local" or (cfg.workers or available_cores()) < 2:
        return
    import multiprocessing.forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(modules))
    multiprocessing.forkserver.ensure_running()  # returns at once; the server imports meanwhile


_WORKER: tuple[Callable[[Any, Any], Any], Any] | None = None  # (fn, shared) of this pool process


def _init_worker(payload: bytes) -> None:
    """Pool process start: keep (fn, shared); Ctrl-C is the parent's to handle (it kills us)."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = "1"
    _WORKER = pickle.loads(payload)


def _run_in_worker(unit: Any) -> Any:
    assert _WORKER is not None, "pool process was not initialised"
    fn, shared = _WORKER
    return _call(fn, shared, unit)


def _run_pool(
    fn: Callable[[S, U], R], shared: S, units: Sequence[U], workers: int, name: Callable[[U], str]
) -> list[_Timed]:
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
        workers, mp_context=ctx, initializer=_init_worker, initargs=(payload,)
    )
    log.info("%d units on a local pool of %d single-threaded workers", len(units), workers)
    results: dict[int, _Timed] = {}
    try:
        futures = {pool.submit(_run_in_worker, unit): i for i, unit in enumerate(units)}
        pending: set[Future] = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=futures.__getitem__):
                i = futures[future]
                error = future.exception()
                if error is not None:
                    raise _failed(name(units[i]), error) from error
                results[i] = future.result()
                _progress(len(results), len(units), name(units[i]))
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


# --- Ray -----------------------------------------------------------------------------------------


def _ray_connect(workers: int | None) -> bool:
    """Join the cluster named by RAY_ADDRESS, else start a local Ray of `workers` CPUs (default:
    every core) for this run. False when this process was already connected (leave it so)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("execution.backend: 'ray' needs Ray (pip install -e '.[ray]')") from None
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init()  # reads RAY_ADDRESS; the cluster's size is its own
    else:
        ray.init(num_cpus=workers or available_cores(), include_dashboard=False)
    return True


def _run_ray(
    fn: Callable[[S, U], R],
    shared: S,
    units: Sequence[U],
    workers: int | None,
    name: Callable[[U], str],
) -> list[_Timed]:
    """One Ray task (1 CPU) per unit; `shared` goes to the object store once; at most `workers`
    tasks in flight (all of them when null: Ray's scheduler fills the cluster's CPUs)."""
    import ray

    started = _ray_connect(workers)
    try:
        remote = ray.remote(num_cpus=1)(_call)
        shared_ref = ray.put(shared)
        log.info(
            "%d units as Ray tasks (%s CPUs in the cluster)",
            len(units),
            ray.cluster_resources().get("CPU"),
        )
        limit = workers or len(units)
        in_flight: dict[Any, int] = {}
        results: dict[int, _Timed] = {}
        submitted = 0
        try:
            while len(results) < len(units):
                while submitted < len(units) and len(in_flight) < limit:
                    ref = remote.remote(fn, shared_ref, units[submitted])
                    in_flight[ref] = submitted
                    submitted += 1
                done, _ = ray.wait(list(in_flight), num_returns=1)
                i = in_flight.pop(done[0])
                try:
                    results[i] = ray.get(done[0])
                except ray.exceptions.RayError as e:
                    raise _failed(name(units[i]), e) from e
                _progress(len(results), len(units), name(units[i]))
        except BaseException:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()
    return [results[i] for i in range(len(units))]

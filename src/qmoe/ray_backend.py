"""The executor's Ray backend (`execution.backend: ray`): one Ray task per unit, on the cluster
named by RAY_ADDRESS or on a local Ray started for the stage.

Joining a cluster fails fast, in one line naming the address: a malformed RAY_ADDRESS at once, one
where no gRPC server answers after at most `CONNECT_TIMEOUT_S` (Ray's own connect retries for
minutes), a missing Ray with the command that installs it.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from qmoe.executor import Timed, call_timed, local_workers, progress, unit_failed
from qmoe.io import SetupError

log = logging.getLogger(__name__)

S = TypeVar("S")
U = TypeVar("U")
R = TypeVar("R")

CONNECT_TIMEOUT_S = 10.0  # a cluster head on a reachable network answers within milliseconds
# HTTP/2 client preface and an empty SETTINGS frame; a gRPC server's first frame is SETTINGS (0x4)
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4
INSTALL = ".venv/bin/pip install -c requirements.lock -e '.[ray]'"
# host:port, [ipv6]:port or ray://host:port (Ray Client); `auto`: a cluster started on this machine
_ADDRESS = re.compile(
    r"(?:ray://)?(?:\[(?P<ip6>[0-9a-fA-F:.]+)\]|(?P<host>[^\s:/\[\]]+)):(?P<port>\d{1,5})"
)


def cluster_address(address: str) -> tuple[str, int] | None:
    """(host, port) of RAY_ADDRESS; None for `auto`; SetupError for anything Ray cannot read."""
    if address == "auto":
        return None
    m = _ADDRESS.fullmatch(address.strip())
    if m is None or not 0 < int(m["port"]) < 65536:
        raise SetupError(
            f"RAY_ADDRESS={address!r} is not a Ray cluster address: expected host:port (the "
            "head's GCS port, e.g. 10.0.0.5:6379), ray://host:port or auto; unset it to run a "
            "local Ray"
        )
    return m["ip6"] or m["host"], int(m["port"])


def probe(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """SetupError unless the head named by RAY_ADDRESS answers as a gRPC server (Ray's GCS and its
    client server are) within `timeout_s`: an HTTP/2 client preface gets a SETTINGS frame back."""
    where = cluster_address(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout_s) as s:
            s.sendall(_H2_PREFACE)
            head = s.recv(9, socket.MSG_WAITALL)
        if len(head) == 9 and head[3] == _H2_SETTINGS:
            return
        reason = "something answers there, but not Ray (no gRPC)"
    except TimeoutError:
        reason = f"no answer within {timeout_s:g} s"
    except OSError as e:
        reason = e.strerror or str(e)
    raise SetupError(
        f"RAY_ADDRESS={address}: no Ray cluster at {where[0]}:{where[1]}: {reason}; start its "
        f"head (ray start --head --port {where[1]}) or unset RAY_ADDRESS to run a local Ray"
    )


def connect(workers: int | None) -> bool:
    """Join the cluster named by RAY_ADDRESS, else start a local Ray of `workers` CPUs (default:
    every core) for this run. False when this process was already connected (leave it so)."""
    try:
        import ray
    except ImportError:
        raise SetupError(f"execution.backend: ray needs Ray: {INSTALL}") from None
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        ray.init(num_cpus=local_workers(workers), include_dashboard=False)
        return True
    probe(address)
    # a gRPC server that is not Ray's GCS passes the probe; Ray then retries for ~1 s per
    # attempt, 20 by default: this many attempts instead (an operator's own setting wins)
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(int(CONNECT_TIMEOUT_S)))
    try:
        ray.init()  # reads RAY_ADDRESS; the cluster's size is its own
    except (ConnectionError, ValueError) as e:
        raise SetupError(f"RAY_ADDRESS={address}: {e}") from None
    return True


def run_ray(
    fn: Callable[[S, U], R],
    shared: S,
    units: Sequence[U],
    workers: int | None,
    name: Callable[[U], str],
) -> list[Timed]:
    """One Ray task (1 CPU) per unit; `shared` goes to the object store once; at most `workers`
    tasks in flight (all of them when null: Ray's scheduler fills the cluster's CPUs)."""
    started = connect(workers)
    import ray

    try:
        remote = ray.remote(num_cpus=1)(call_timed)
        shared_ref = ray.put(shared)
        log.info(
            "%d units as Ray tasks (%s CPUs in the cluster)",
            len(units),
            ray.cluster_resources().get("CPU"),
        )
        results = _submit_all(remote, fn, shared_ref, units, workers or len(units), name)
    finally:
        if started:
            ray.shutdown()
    return [results[i] for i in range(len(units))]


def _submit_all(remote, fn, shared_ref, units: Sequence[U], limit: int, name) -> dict[int, Timed]:
    """Every unit's result by index, at most `limit` tasks in flight; on any failure (or an
    interrupt) the tasks still in flight are cancelled."""
    import ray

    in_flight: dict[Any, int] = {}
    results: dict[int, Timed] = {}
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
                raise unit_failed(name(units[i]), e) from e
            progress(len(results), len(units), name(units[i]))
    except BaseException:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        raise
    return results

"""Entry-point wrapper for `stages/*.py`: logging, params, and user errors as one clean line."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from qmoe.io import ConfigError, UserError, load_params

log = logging.getLogger(__name__)

# Errors a user can cause and fix (bad params, bad or missing data and input files, a full disk):
# reported as one `error:` line, exit 1. Everything else (KeyError, TypeError, a torch
# RuntimeError, ...) is a bug and keeps its traceback.
USER_ERRORS = (UserError, OSError)
# Exit codes of a stage stopped by a signal, as a shell reports them (128 + signal number).
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: unwinds the stack so every `atomic_dir` removes its temporary copy."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


# params.yaml's sections, each read by the stages that declare it in dvc.yaml: any other
# top-level key (a typo such as `trian:`) is refused, since no stage would ever read it
SECTIONS = (
    "study",
    "download",
    "features",
    "model",
    "train",
    "variants",
    "energy",
    "execution",
    "export",
    "benchmark",
    "stats",
    "report",
)


def read_params() -> dict[str, Any]:
    """params.yaml of the working directory, the file DVC records (never another one)."""
    params = load_params("params.yaml")
    unknown = [k for k in params if k not in SECTIONS]
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown section(s) {unknown}, read by no stage; valid: {list(SECTIONS)}"
        )
    return params


def forced_by_dvc() -> bool:
    """True when DVC runs this stage although it sees no change to its command, dependencies or
    outputs, which only `dvc repro -f` / `dvc exp run -f` does; False outside DVC (no DVC_STAGE).
    DVC passes no force flag to the command, so the stage asks DVC what it sees."""
    name, root = os.environ.get("DVC_STAGE"), os.environ.get("DVC_ROOT")
    if not name or not root:
        return False
    from dvc.repo import Repo

    # DVC releases its repository lock while the command runs but keeps the stage's read and
    # write locks, which Stage.changed() would take again: ask each dependency and output directly
    with Repo(root) as repo, repo.lock:
        stage = repo.stage.collect(name)[0]
        return not (
            stage.changed_stage()
            or any(d.status() for d in stage.deps)
            or any(o.status() for o in stage.outs)
        )


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main` with logging configured; a user error exits 1 with `error: ...`, and
    SIGTERM is handled like SIGINT (outputs are cleaned up, exit 143 / 130)."""
    logging.basicConfig(
        level=os.environ.get("QMOE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
    main_thread = threading.current_thread() is threading.main_thread()  # signals need it
    previous = {s: signal.signal(s, _raise_interrupted) for s in SIGNAL_EXIT} if main_thread else {}
    try:
        main()
    except USER_ERRORS as e:
        log.debug("stage failed", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        print(
            f"error: interrupted by {signal.Signals(signum).name}; partial output removed",
            file=sys.stderr,
        )
        sys.exit(SIGNAL_EXIT[signum])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

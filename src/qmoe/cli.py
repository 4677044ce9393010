"""Shared entry-point wrapper for `stages/*.py`: logging, params, and errors as one clean line."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qmoe.io import load_params

log = logging.getLogger(__name__)

# Errors a user can cause (bad params, bad data, missing files): reported as one line, exit 1.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, OSError, RuntimeError)


def params_path() -> Path:
    """params.yaml of the current DVC working directory (QMOE_PARAMS overrides, for tests)."""
    return Path(os.environ.get("QMOE_PARAMS", "params.yaml"))


def read_params() -> dict[str, Any]:
    return load_params(params_path())


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main` with logging configured; any user error exits 1 with `error: ...`."""
    logging.basicConfig(
        level=os.environ.get("QMOE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
    try:
        main()
    except USER_ERRORS as e:
        log.debug("stage failed", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)

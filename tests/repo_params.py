"""The repository's params.yaml, and a section's config built from it as its stage builds it.

Configs have no defaults (a deleted params key fails), so tests build them from params.yaml with
only the changes they are about; tests/conftest.py puts this folder on sys.path, so test modules
use it at import time too:

    from repo_params import PARAMS, config
    CFG = config(StatsConfig, "stats", n_resamples=300)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from qmoe.io import from_section, load_params

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
PARAMS = load_params(ROOT / "params.yaml")


def section(path: str) -> Any:
    """params.yaml's entry at a dotted path: "stats", "features.mel"."""
    entry: Any = PARAMS
    for part in path.split("."):
        entry = entry[part]
    return entry


def config(cls: type[T], path: str, **changes: Any) -> T:
    """`cls` from params.yaml's `path` (qmoe.io.from_section), then `changes` (dataclasses.replace:
    range checks run again; a nested config is replaced by a config object)."""
    return dataclasses.replace(from_section(cls, section(path), path), **changes)

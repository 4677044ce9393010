"""Params, config dataclasses, seeding and atomic file writes (artefact files: qmoe.contract).

Stages read params.yaml once (`load_params`) and turn their own section into a frozen dataclass
(`from_section`), which rejects unknown keys, missing keys and wrong types (PyYAML reads `5e-4` as
a string, so a type check is not pedantry).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import shutil
import tempfile
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

if typing.TYPE_CHECKING:  # torch costs ~2 s to import; stages that never touch it skip that
    import torch

T = TypeVar("T")


class UserError(Exception):
    """A problem the user can fix (params, data, input files); the message names the culprit.

    `qmoe.cli.run_stage` prints these as one `error:` line; anything else is a bug and keeps its
    traceback.
    """


class ConfigError(UserError, ValueError):
    """A params value of the wrong name, type or range; the message names the field."""


class InputError(UserError, ValueError):
    """A bad or inconsistent input file (manifest, audio, feature table, checkpoint); names it."""


class SetupError(UserError, RuntimeError):
    """The machine lacks what a stage needs (model weights, an energy counter, a kernel engine);
    the message says how to fix it."""


def load_params(path: Path | str = "params.yaml") -> dict[str, Any]:
    """Read params.yaml (or another YAML file) into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    with path.open() as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


# scalar params types: what passes (a bool is an int to Python, never to params) and its name
_SCALARS = {
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    bool: (lambda v: isinstance(v, bool), "true/false"),
    str: (lambda v: isinstance(v, str), "a string"),
}


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Return `value` converted to `tp` where lossless (int -> float, list -> tuple), else raise."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for alt in args:
            with contextlib.suppress(ConfigError):
                return _check_type(value, alt, where)
        raise ConfigError(f"{where}: {value!r} matches none of {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
    if origin in (tuple, list, dict):
        return _check_container(value, origin, args, where)
    if dataclasses.is_dataclass(tp):
        return from_section(tp, value, where)
    if tp in _SCALARS:
        accepts, what = _SCALARS[tp]
        if not accepts(value):
            raise ConfigError(f"{where}: expected {what}, got {type(value).__name__} {value!r}")
        return float(value) if tp is float else value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _check_container(value: Any, origin: Any, args: tuple, where: str) -> Any:
    """A list or tuple item by item (a list becomes a tuple where `tp` says so), a dict by key."""
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        return {
            _check_type(k, kt, f"{where}.key"): _check_type(v, vt, f"{where}.{k}")
            for k, v in value.items()
        }
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
    items = [_check_type(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def from_section(cls: type[T], section: Mapping[str, Any] | None, where: str = "") -> T:
    """Build the frozen dataclass `cls` from a params mapping, checking names and types.

    Missing keys take the dataclass default; unknown keys and wrong types raise ConfigError naming
    the field (`train.lr: expected a number, got str '5e-4'`). Range checks live in each dataclass's
    `__post_init__`, which should raise ConfigError too.
    """
    where = where or cls.__name__
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(section).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in section:
            kwargs[name] = _check_type(section[name], hints[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def require(cond: bool, where: str, message: str) -> None:
    """Range-check helper for dataclass `__post_init__`: raise ConfigError(`where: message`)."""
    if not cond:
        raise ConfigError(f"{where}: {message}")


def choose(name: str, registry: Mapping[str, T], what: str) -> T:
    """Look `name` up in `registry`; an unknown name lists the valid ones."""
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"unknown {what} {name!r}; valid: {sorted(registry)}") from None


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch.Generator seeded the same way."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# --- atomic writes: a reader never sees a half-written file or folder ----------------------


# Temporary names are `.<name>.<pid>.<random>.part`: a process killed with SIGKILL cannot clean
# up, so the next writer of `<name>` removes the ones whose process is gone (and untagged ones
# from older versions). A live writer's (a concurrent run's) part is left alone.
_PART = re.compile(r"(?:(\d+)\.)?[a-z0-9_]{8}\.part")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_parts(path: Path | str) -> list[Path]:
    """Remove `path`'s stale temporary siblings (files or folders) left by killed writers."""
    path = Path(path)
    prefix, removed = f".{path.name}.", []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.iterdir():
        m = _PART.fullmatch(p.name[len(prefix) :]) if p.name.startswith(prefix) else None
        if m is None or (m.group(1) is not None and _pid_alive(int(m.group(1)))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    if removed:
        logging.getLogger(__name__).warning(
            "removed %d stale temporary copies of %s left by killed runs", len(removed), path
        )
    return removed


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_parts(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield an empty temporary sibling folder; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_parts(path)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
    )
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():  # swapped by two renames; a kill leaves the old copy as a stale part
            old = tempfile.mkdtemp(
                prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent
            )
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_default(obj: Any) -> Any:
    """numpy scalars and arrays, paths, dataclasses and tensors as JSON values."""
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):  # np.ndarray, torch.Tensor
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_json(path: Path | str, data: Any) -> None:
    """Write JSON atomically, with sorted keys and a trailing newline (diff-friendly)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=json_default) + "\n")


def load_json(path: Path | str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    with path.open() as f:
        return json.load(f)


def write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)

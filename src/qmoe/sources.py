"""The qmoe source files a script can import, and one digest of them.

`closure(script)` follows every `import qmoe...` in the script and, transitively, in the modules it
reaches (imports inside functions included): the same set dvc.yaml lists as a stage's `src/` deps
(tests/test_dvc_deps.py checks the two are equal). `digest(files)` hashes their bytes; the train
stage keeps a variant's models only while this digest, among its other inputs, is unchanged
(qmoe.training.reuse), so a code edit that DVC reruns the stage for retrains every variant.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent  # the folder holding the qmoe package


def module_file(name: str) -> Path | None:
    """src/qmoe/a/b.py or src/qmoe/a/b/__init__.py for the dotted name qmoe.a.b."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported(path: Path) -> set[str]:
    """qmoe modules imported anywhere in `path` (lazy imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "qmoe"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "qmoe":
                continue
            found.add(node.module)
            found |= {
                f"{node.module}.{a.name}"
                for a in node.names
                if module_file(f"{node.module}.{a.name}") is not None
            }
    return found


def closure(script: Path) -> set[Path]:
    """Every src/qmoe file that running `script` can import, with the packages' __init__ files
    (importing qmoe.a.b runs qmoe/__init__.py and qmoe/a/__init__.py)."""
    todo, files = list(imported(script)), set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            f = module_file(".".join(parts[:i]))
            if f is not None and f not in files:
                files.add(f)
                todo += imported(f)
    return files


def digest(files: Iterable[Path]) -> str:
    """sha256 over the files' names (package-relative for qmoe modules, else the base name: the
    same on every checkout) and bytes, in name order."""
    named = sorted((_label(f), f) for f in files)
    h = hashlib.sha256()
    for label, f in named:
        data = f.read_bytes()
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _label(f: Path) -> str:
    f = f.resolve()
    return f.relative_to(SRC).as_posix() if f.is_relative_to(SRC) else f.name

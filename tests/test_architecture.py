"""The package tree matches docs/architecture.md, and imports only go downwards."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "qmoe"
# Layer of each top-level module or subpackage: a module may import from its own layer or below.
LAYERS = {
    "io": 0,
    "cli": 0,
    "energy": 0,
    "executor": 0,
    "ray_backend": 0,
    "sources": 0,
    "quant": 1,
    "moe": 2,
    "catalog": 3,
    "variants": 3,
    "models": 3,
    "contract": 4,
    "datasets": 5,
    "features": 5,
    "training": 6,
    "deploy": 7,
    "bench": 8,
    "analysis": 9,
    "report": 10,
}


def documented_modules() -> set[str]:
    """Module paths (relative to src/qmoe) named in the Layout block of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Layout", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    found, folder = set(), ""
    for line in block.splitlines():
        m = re.match(r"^  (\s*)([\w/.]+)", line)
        if not m:
            continue
        name = m.group(2)
        if name.endswith("/"):
            folder = name if not m.group(1) else folder
        elif name.endswith(".py"):
            found.add((folder if m.group(1) else "") + name)
    return found


def package_modules() -> set[str]:
    return {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py") if p.name != "__init__.py"}


def test_every_module_is_documented_and_every_documented_module_exists():
    documented, actual = documented_modules(), package_modules()
    assert actual - documented == set(), "modules missing from docs/architecture.md"
    assert documented - actual == set(), "docs/architecture.md lists modules that do not exist"


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def test_no_upward_imports():
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("").as_posix().replace("/", ".")
        if rel.count(".") < 1 or rel.endswith("__init__") and rel.count(".") < 2:
            continue
        mine = _layer(rel)
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qmoe."):
                targets = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.module == "qmoe":
                targets = [f"qmoe.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("qmoe.")]
            bad += [f"{rel} -> {t}" for t in targets if _layer(t) > mine]
    assert bad == []

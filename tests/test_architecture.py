"""The package tree matches docs/architecture.md, and imports only go downwards."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
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
    "bits": 0,
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


def _imports(path: Path) -> list[str]:
    """The qmoe modules `path` imports (lazy imports inside functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qmoe."):
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "qmoe":
            found += [f"qmoe.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("qmoe.")]
    return found


def _own_modules():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("").as_posix().replace("/", ".")
        if rel.count(".") < 1 or rel.endswith("__init__") and rel.count(".") < 2:
            continue
        yield path, rel


def test_no_upward_imports():
    bad = []
    for path, rel in _own_modules():
        mine = _layer(rel)
        bad += [f"{rel} -> {t}" for t in _imports(path) if _layer(t) > mine]
    assert bad == []


# The analysis half reads artefacts through the contract and never the model stack: the stats and
# report stages run without torch (and DVC reruns them for no edit of the training code).
TORCH_FREE = {"io", "cli", "catalog", "variants", "contract"}
ANALYSIS_HALF = {"analysis": {"analysis"}, "report": {"analysis", "report"}}


def test_analysis_and_report_import_only_the_torch_free_floor():
    bad = []
    for path, rel in _own_modules():
        own = ANALYSIS_HALF.get(rel.split(".")[1])
        if own is None:
            continue
        allowed = TORCH_FREE | own
        bad += [f"{rel} -> {t}" for t in _imports(path) if t.split(".")[1] not in allowed]
    assert bad == []


NO_TORCH = """
import importlib.abc, importlib.util, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "torch":
            raise ImportError(f"torch is unimportable here ({name})")

sys.meta_path.insert(0, NoTorch())
for i, path in enumerate(sys.argv[1:]):
    spec = importlib.util.spec_from_file_location(f"stage_{i}", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
"""


def _import_without_torch(*files: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", NO_TORCH, *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_stats_and_report_stages_import_with_torch_unimportable():
    done = _import_without_torch(ROOT / "stages" / "stats.py", ROOT / "stages" / "report.py")
    assert done.returncode == 0, done.stderr[-2000:]
    blocked = _import_without_torch(PKG / "models.py")  # the blocker does block
    assert blocked.returncode != 0 and "torch is unimportable here (torch)" in blocked.stderr

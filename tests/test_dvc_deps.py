"""Each dvc.yaml stage depends on exactly the qmoe modules its script imports (transitively), on
requirements.lock where it computes, and nothing more: an edit reruns only what it can change."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qmoe.sources import closure

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = SRC / "qmoe"


def _package_data(folder: Path) -> set[Path]:
    return {
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _script(stage: dict) -> Path:
    cmd = stage.get("cmd") or stage["do"]["cmd"]
    return ROOT / cmd.split()[1]


def _src_deps(stage: dict) -> list[str]:
    deps = stage.get("deps") or stage["do"].get("deps") or []
    return [d for d in deps if d.startswith("src/")]


STAGES = stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_every_imported_module_and_nothing_else(name):
    stage = STAGES[name]
    needed = closure(_script(stage))
    declared = [ROOT / d for d in _src_deps(stage)]
    covered = set()
    for dep in declared:
        assert dep.exists(), f"{name}: dep {dep.relative_to(ROOT)} does not exist"
        if dep.is_dir():
            modules = {p for p in dep.rglob("*.py")}
            unused = sorted(str(p.relative_to(ROOT)) for p in modules - needed)
            assert not unused, (
                f"{name}: folder dep {dep.relative_to(ROOT)} holds modules the "
                f"stage never imports: {unused}; list the files instead"
            )
            covered |= modules | _package_data(dep)
        else:
            assert dep in needed, (
                f"{name}: declares {dep.relative_to(ROOT)}, which it never imports"
            )
            covered.add(dep)
    missing = sorted(str(p.relative_to(ROOT)) for p in needed - covered)
    assert not missing, f"{name}: imports modules missing from its deps: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_depends_on_its_script_and_on_the_pinned_libraries(name):
    stage = STAGES[name]
    deps = stage.get("deps") or stage["do"].get("deps") or []
    assert str(_script(stage).relative_to(ROOT)) in deps
    assert "requirements.lock" in deps, f"{name}: a library upgrade can change its outputs"


def test_closure_follows_lazy_imports(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("def main():\n    from qmoe.analysis import stats\n")
    files = closure(script)
    assert PKG / "analysis" / "stats.py" in files and PKG / "io.py" in files
    assert PKG / "__init__.py" in files and PKG / "report" / "plotting.py" not in files

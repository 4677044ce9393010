"""The README's "What the study found" is the report's generated summary, copied by
scripts/readme_summary.py; never typed by hand."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "reports" / "summary.md"


def _script():
    spec = importlib.util.spec_from_file_location(
        "readme_summary", ROOT / "scripts" / "readme_summary.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rs = _script()


@pytest.mark.skipif(not SUMMARY.is_file(), reason="no committed reports/summary.md")
def test_the_readme_block_is_the_committed_summary():
    readme = (ROOT / "README.md").read_text()
    assert rs.block(readme) == SUMMARY.read_text(), (
        "README.md's study summary differs from reports/summary.md: run "
        "`python scripts/readme_summary.py`"
    )


def test_the_readme_has_the_markers_once_right_after_the_introduction():
    readme = (ROOT / "README.md").read_text()
    rs.block(readme)  # raises unless each marker is there once, in order
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert headings[0] == "## What the study found"
    assert readme.index("## What the study found") < readme.index(rs.BEGIN)
    assert "[`reports/report.md`](reports/report.md)" in readme


def test_splice_replaces_only_the_block_and_is_idempotent():
    readme = f"# t\n\nintro\n\n{rs.BEGIN}\nold\nlines\n{rs.END}\n\nrest\n"
    once = rs.splice(readme, "new | row\n")
    assert once == f"# t\n\nintro\n\n{rs.BEGIN}\nnew | row\n{rs.END}\n\nrest\n"
    assert rs.splice(once, "new | row\n") == once
    assert rs.block(once) == "new | row\n"


@pytest.mark.parametrize(
    "readme, message",
    [
        ("# t\n", "expected the marker '<!-- study-summary:begin"),
        (f"{rs.BEGIN}\n{rs.BEGIN}\n{rs.END}\n", "found it 2 times"),
        (f"{rs.END}\nx\n{rs.BEGIN}\n", "comes before"),
    ],
)
def test_bad_markers_are_refused_by_name(readme, message):
    with pytest.raises(rs.SummaryError, match=message.replace("(", r"\(")) as e:
        rs.splice(readme, "s\n", "README.md")
    assert str(e.value).startswith("README.md: ")


def test_the_script_writes_checks_and_refuses_a_missing_summary(tmp_path, capsys):
    readme, summary = tmp_path / "README.md", tmp_path / "summary.md"
    readme.write_text(f"# t\n{rs.BEGIN}\n{rs.END}\n")
    summary.write_text("| a | b |\n")
    args = ["--readme", str(readme), "--summary", str(summary)]
    assert rs.main([*args, "--check"]) == 1  # stale: the block is empty
    assert rs.main(args) == 0
    assert readme.read_text() == f"# t\n{rs.BEGIN}\n| a | b |\n{rs.END}\n"
    assert rs.main([*args, "--check"]) == 0
    assert rs.main(args) == 0 and "already current" in capsys.readouterr().out
    summary.unlink()
    assert rs.main(args) == 1
    assert "summary.md: not found (run `dvc repro report` first)" in capsys.readouterr().err
    assert readme.read_text() == f"# t\n{rs.BEGIN}\n| a | b |\n{rs.END}\n"  # untouched

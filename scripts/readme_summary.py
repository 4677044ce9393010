"""Copy the study's summary (reports/summary.md, written by the report stage) into README.md,
between its two markers, so the README's "What the study found" is generated, never typed.

    python scripts/readme_summary.py            # rewrite the README block (idempotent)
    python scripts/readme_summary.py --check    # exit 1 when the README block is stale

Run it after `dvc repro`; tests/report/test_readme_summary.py fails while the block differs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = (
    "<!-- study-summary:begin (generated from reports/summary.md by scripts/readme_summary.py) -->"
)
END = "<!-- study-summary:end -->"


class SummaryError(Exception):
    pass


def _bounds(readme: str, where: str) -> tuple[int, int]:
    """Start and end offsets of the text between the markers."""
    for marker in (BEGIN, END):
        if readme.count(marker) != 1:
            raise SummaryError(
                f"{where}: expected the marker {marker!r} once, found it "
                f"{readme.count(marker)} times"
            )
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    if end < start:
        raise SummaryError(f"{where}: {END!r} comes before {BEGIN!r}")
    return start, end


def block(readme: str, where: str = "README.md") -> str:
    """The summary as the README holds it (without the newlines next to the markers)."""
    start, end = _bounds(readme, where)
    return readme[start:end].strip("\n") + "\n"


def splice(readme: str, summary: str, where: str = "README.md") -> str:
    """`readme` with `summary` between the markers; splice(splice(r, s), s) == splice(r, s)."""
    start, end = _bounds(readme, where)
    return readme[:start] + "\n" + summary.strip("\n") + "\n" + readme[end:]


def _write(path: Path, text: str) -> None:
    """Replace `path` in one step: a reader never sees half a README."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--summary", type=Path, default=ROOT / "reports" / "summary.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README block is stale")
    args = ap.parse_args(argv)
    try:
        if not args.summary.is_file():
            raise SummaryError(f"{args.summary}: not found (run `dvc repro report` first)")
        summary, readme = args.summary.read_text(), args.readme.read_text()
        new = splice(readme, summary, str(args.readme))
    except (SummaryError, OSError) as e:
        print(f"readme_summary: {e}", file=sys.stderr)
        return 1
    if args.check:
        stale = new != readme
        if stale:
            print(
                f"readme_summary: {args.readme} differs from {args.summary}; run "
                "`python scripts/readme_summary.py`",
                file=sys.stderr,
            )
        return int(stale)
    if new != readme:
        _write(args.readme, new)
    print(f"{args.readme}: summary {'updated' if new != readme else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

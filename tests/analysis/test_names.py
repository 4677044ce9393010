"""Stats table and family names are spelled once (qmoe.analysis.names): a reader that looks a
table up by a literal could drift from the writer unnoticed."""

from pathlib import Path

from qmoe.analysis import names
from qmoe.report.figures import FIGURES

ROOT = Path(__file__).resolve().parents[2]


def _spelled() -> set[str]:
    return {
        value
        for space in (names.Table, names.Family)
        for key, value in vars(space).items()
        if key.isupper()
    }


def test_no_module_but_names_spells_a_table_or_family_name():
    home = ROOT / "src" / "qmoe" / "analysis" / "names.py"
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "stages").glob("*.py")]
    found = {}
    for path in files:
        if path == home:
            continue
        text = path.read_text()
        # a figure is a file stem of its own that may share a table's name
        hits = {n for n in _spelled() - set(FIGURES) if f'"{n}"' in text or f"'{n}'" in text}
        if hits:
            found[str(path.relative_to(ROOT))] = sorted(hits)
    assert found == {}


def test_each_name_has_one_constant_and_the_twin_suffix_is_the_csv_stem():
    tables = [v for k, v in vars(names.Table).items() if k.isupper()]
    families = [v for k, v in vars(names.Family).items() if k.isupper()]
    assert len(set(tables)) == len(tables) and len(set(families)) == len(families)
    assert names.twin(names.Table.F1_PAIRED) == "f1_paired_deployed"

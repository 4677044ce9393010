"""No figure draws one label over another (issue 15 item 5): every drawn text's box is checked
against every other one, on a crowded synthetic study and on the committed study's runs table."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from qmoe.analysis import results  # noqa: E402
from qmoe.contract.runs import read_runs_table  # noqa: E402
from qmoe.contract.study import Study  # noqa: E402
from qmoe.report import figures  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Several variants share a bit-width (8: ptq_int8, w8a8; 32: fp32, q16_reference; log2 3:
# ternary_reference, bitnet158) and the MoEs share a size: where names used to collide.
SINGLES = ["fp32", "ptq_int8", "w2a8", "w4a8", "w8a8", "q16_reference", "ternary_reference"]
SINGLES += ["bitnet158"]
MOES = ["moe", "moe_curiosity_log", "moe_curiosity_kl", "moe_curiosity_route"]
EXPERTS = ("ternary_reference", "w4a8", "w8a8")


def _drawn_texts(fig: Figure) -> list[Text]:
    """Every non-empty visible text the figure draws: tick labels only inside the view."""
    tick_labels, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels |= {id(tick.label1), id(tick.label2)}
            for tick in axis._update_ticks():  # the ticks inside the view limits
                drawn += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    others = [t for t in fig.findobj(Text) if id(t) not in tick_labels and t.get_visible()]
    return [t for t in drawn + others if t.get_text().strip()]


def overlapping_texts(fig: Figure, pad: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes overlap by more than `pad` pixels both ways."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    pairs = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if width > pad and height > pad:
                pairs.append((a, b))
    return pairs


def test_the_check_finds_two_labels_drawn_on_top_of_each_other():
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.annotate("w8a8", (0.5, 0.5))
    ax.annotate("ptq_int8", (0.51, 0.5))
    ax.annotate("fp32", (0.1, 0.9))
    assert overlapping_texts(fig) == [("w8a8", "ptq_int8")]


@pytest.fixture(scope="module")
def crowded(tmp_path_factory, results_tree):
    data = tmp_path_factory.mktemp("crowded")
    results_tree(data, SINGLES + MOES)
    study = Study(("toy",), ("corrected", "faithful"), tuple(SINGLES), tuple(MOES), EXPERTS)
    runs = results.runs_table(
        results.Roots(data / "runs", data / "train_cost", data / "benchmarks"), study
    )
    return figures.build(
        figures.load(data / "runs", data / "benchmarks", runs, "toy", "macro_f1", "after_backbone"),
        "macro_f1",
    )


@pytest.mark.parametrize("name", list(figures.FIGURES))
def test_no_figure_draws_a_label_over_another(crowded, name):
    assert overlapping_texts(crowded[name]) == []


COMMITTED = ROOT / "reports" / "tables" / "runs.csv"


@pytest.mark.skipif(not COMMITTED.is_file(), reason="no committed runs table")
def test_the_committed_studys_summary_figures_have_no_overlapping_labels():
    """The runs-table figures of the committed study (16 variants, two protocols)."""
    runs = read_runs_table(COMMITTED)
    for dataset in sorted(runs["dataset"].unique()):
        part = runs[runs["dataset"] == dataset]
        data = figures.FigureData(part, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), None, None)
        built = figures.build(data, "macro_f1")
        for name in ("f1_vs_bits", "size_vs_f1", "energy_vs_f1"):
            assert overlapping_texts(built[name]) == [], f"{dataset} {name}"

"""Which data goes into which figure (qmoe.report.figures), and the facts it reads: a variant's
bit-width, MoE-ness and curiosity come from its recorded config, never from its name."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from repo_params import config  # noqa: E402

from qmoe.analysis import paper_tables, results  # noqa: E402
from qmoe.analysis.stats import StatsConfig  # noqa: E402
from qmoe.contract.study import Study  # noqa: E402
from qmoe.report import figures, tables  # noqa: E402
from qmoe.report.paper_tables import PAPER_TABLES  # noqa: E402

SINGLES = ["fp32", "w4a8", "w8a8", "q16_reference"]
MOES = ["moe", "moe_curiosity_log"]
EXPERTS = ("ternary_reference", "w4a8", "w8a8")


@pytest.fixture(scope="module")
def two_bit(tmp_path_factory, results_tree, config_of):
    """A study whose w4a8 was trained as `dvc exp run -S 'variants.w4a8.weight_bits=2'` does."""
    data = tmp_path_factory.mktemp("two_bit")
    results_tree(data, SINGLES + MOES, configs={"w4a8": config_of("w4a8", weight_bits=2)})
    study = Study(("toy",), ("corrected", "faithful"), tuple(SINGLES), tuple(MOES), EXPERTS)
    runs = results.runs_table(
        results.Roots(data / "runs", data / "train_cost", data / "benchmarks"), study
    )
    return data, runs


def test_a_2_bit_w4a8_is_plotted_and_tabulated_at_2_bits(two_bit):
    data, runs = two_bit
    figs = figures.build(
        figures.load(data / "runs", data / "benchmarks", runs, "toy", "macro_f1", "warm"),
        "macro_f1",
    )
    gap = 2**0.1  # fp32 and q16_reference share 32 bits: drawn side by side around it
    for ax in figs["f1_vs_bits"].axes:  # one panel per protocol
        x = {c.get_label(): round(float(c.lines[0].get_xdata()[0]), 6) for c in ax.containers}
        assert x == {
            "w4a8": 2.0,
            "w8a8": 8.0,
            "fp32": round(32 / gap**0.5, 6),
            "q16_reference": round(32 * gap**0.5, 6),
        }
    std = paper_tables.std_tables(runs, config(StatsConfig, "stats", n_resamples=100))
    spec = next(t for t in PAPER_TABLES if t.stem == "table2_quantization")
    lines = tables.markdown(tables.paper_table(spec, std[spec.csv], "macro_f1")).splitlines()
    assert [line.split(" | ")[1:4] for line in lines[2:6]] == [
        ["toy", "2", "w4a8"],
        ["toy", "8", "w8a8"],
        ["toy", "32", "q16_reference"],
        ["toy", "2", "w4a8"],
    ]


def test_moe_and_curiosity_figures_take_their_variants_from_the_facts(two_bit):
    data, runs = two_bit
    loaded = figures.load(data / "runs", data / "benchmarks", runs, "toy", "macro_f1", "warm")
    assert set(loaded.routing["variant"]) == set(MOES)
    figs = figures.build(loaded, "macro_f1")
    assert list(figs) == list(figures.FIGURES)
    ecdf = figs["latency_ecdf"].axes[0]
    assert {line.get_label(): line.get_linestyle() for line in ecdf.lines} == {
        "fp32": "-",
        "w4a8": "-",
        "w8a8": "-",
        "q16_reference": "-",
        "moe": "--",
        "moe_curiosity_log": "--",
    }
    violin = figs["moe_latency"].axes[0]
    assert [t.get_text() for t in violin.get_yticklabels()] == MOES  # horizontal violins
    legend = figs["curiosity_histogram"].legends[0]  # beside the axes, not over the bars
    assert [t.get_text() for t in legend.get_texts()] == ["moe_curiosity_log"]


def test_best_model_prefers_the_corrected_protocol(two_bit):
    _, runs = two_bit
    means = runs[runs["protocol"] == "corrected"].groupby("variant")["macro_f1"].mean()
    assert figures.best_model(runs, "macro_f1") == ("corrected", means.idxmax())
    faithful = runs[runs["protocol"] == "faithful"]
    assert figures.best_model(faithful, "macro_f1")[0] == "faithful"
    assert figures.best_model(runs.iloc[:0], "macro_f1") is None

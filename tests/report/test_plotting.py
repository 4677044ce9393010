"""Figures take tidy frames and return matplotlib Figures (qmoe.report.plotting); nothing is
saved here."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from qmoe.catalog import VARIANTS  # noqa: E402
from qmoe.report import plotting, style  # noqa: E402


def _summary() -> pd.DataFrame:
    rows = []
    for protocol in ("corrected", "faithful"):
        for variant, f1, size, bits in (
            ("w4a8", 0.78, 7e3, 3.0),
            ("w8a8", 0.80, 1.3e4, 8.0),
            ("fp32", 0.81, 4.8e4, 32.0),
            ("moe", 0.79, 6e4, np.nan),
        ):
            rows.append(
                {
                    "protocol": protocol,
                    "variant": variant,
                    "mean": f1,
                    "ci_low": f1 - 0.01,
                    "ci_high": f1 + 0.01,
                    "size": size,
                    "weight_bits": bits,
                }
            )
    return pd.DataFrame(rows)


def _points(ax) -> dict[str, tuple[float, float]]:
    """variant -> (x, y) of its marker (one errorbar container per variant)."""
    return {
        c.get_label(): (round(float(c.lines[0].get_xdata()[0]), 6), c.lines[0].get_ydata()[0])
        for c in ax.containers
    }


def test_f1_vs_bits_places_each_model_at_its_configured_weight_bits():
    fig = plotting.f1_vs_bits(_summary(), "macro_f1")
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["corrected", "faithful"]
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        # w4a8 here is configured at 3 bits; no MoE point; no text beside the points
        assert _points(ax) == {"w4a8": (3.0, 0.78), "w8a8": (8.0, 0.80), "fp32": (32.0, 0.81)}
        assert len(ax.texts) == 0
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["fp32", "w4a8", "w8a8"]


def test_variants_at_one_bit_width_are_drawn_side_by_side_in_registry_order():
    s = _summary()
    s = pd.concat([s, s[s["variant"] == "w8a8"].assign(variant="ptq_int8", mean=0.79)])
    points = _points(plotting.f1_vs_bits(s, "macro_f1").axes[0])
    gap = 2**0.1  # ptq_int8 comes before w8a8 in the registry: left of 8 bits, w8a8 right
    assert points["ptq_int8"][0] == round(8 / gap**0.5, 6)
    assert points["w8a8"][0] == round(8 * gap**0.5, 6)
    assert points["fp32"][0] == 32.0


def test_every_variant_keeps_one_colour_and_marker():
    styles = [style.variant_style(v) for v in ("fp32", "moe", "w4a8", "not_a_variant")]
    assert styles[0] == style.Style("C0", "o")
    assert styles[1].colour == "C0" and styles[1].marker != "o"  # colours repeat, markers not
    assert style.variant_style("not_a_variant") == styles[3]  # stable for unknown names
    assert len({style.variant_style(v) for v in VARIANTS}) == len(VARIANTS)


def test_pareto_front_keeps_points_no_other_beats():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.4, 0.7, 0.6])
    assert plotting._pareto(x, y).tolist() == [0, 2]


def test_scatter_has_one_panel_per_protocol_and_a_front():
    fig = plotting.scatter_vs_f1(_summary(), "size", "bytes", "macro_f1", pareto=True)
    assert [ax.get_title() for ax in fig.axes] == ["corrected", "faithful"]
    for ax in fig.axes:
        front = [line for line in ax.lines if line.get_label() == "Pareto front"]
        # sorted by size, F1 only rises on the front: w4a8 (7e3), w8a8 (1.3e4), fp32 (4.8e4)
        assert len(front) == 1 and front[0].get_xdata().tolist() == [7e3, 1.3e4, 4.8e4]
        assert len(ax.texts) == 0 and ax.get_legend() is None
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["fp32", "w4a8", "w8a8", "moe", "Pareto front"]


def _latency() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "protocol": p,
                    "variant": v,
                    "is_moe": v != "fp32",
                    "latency_ms": rng.lognormal(-1.5, 0.3, 100),
                }
            )
            for p in ("corrected", "faithful")
            for v in ("fp32", "moe", "moe_curiosity_log")
        ]
    )


def test_latency_ecdf_draws_one_curve_per_variant_ending_at_one_dashed_for_moes():
    fig = plotting.latency_ecdf(_latency())
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.lines) == 3
    assert all(line.get_ydata()[-1] == 1.0 for line in ax.lines)
    assert {line.get_label(): line.get_linestyle() for line in ax.lines} == {
        "fp32": "-",
        "moe": "--",
        "moe_curiosity_log": "--",
    }


def test_latency_violin_per_protocol():
    fig = plotting.latency_violin(_latency())
    assert [ax.get_title() for ax in fig.axes] == ["corrected", "faithful"]
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]  # horizontal violins
    assert ticks == ["fp32", "moe", "moe_curiosity_log"]


def _predictions() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "variant": np.repeat(["moe_curiosity_log", "moe_curiosity_kl"], 60),
            "label": np.tile(np.arange(3), 40),
            "uncertainty": rng.gamma(2, 0.01, 120),
            "expert_name": np.tile(["ternary_reference", "w4a8", "w8a8"], 40),
            "gate_prob": rng.uniform(0.4, 0.9, 120),
        }
    )


def test_curiosity_figures():
    pred = _predictions()
    hist = plotting.curiosity_histogram(pred, "title")
    assert hist.axes[0].get_yscale() == "log" and hist._suptitle.get_text() == "title"
    per_class = plotting.curiosity_per_class(pred, ["dog", "rain", "siren"])
    ax = per_class.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["dog", "rain", "siren"]
    means = pred.groupby(["variant", "label"])["uncertainty"].mean()
    heights = sorted(round(p.get_height(), 12) for p in ax.patches)
    assert heights == sorted(round(v, 12) for v in means)


def test_routing_figures():
    routing = pd.DataFrame(
        {
            "variant": "moe",
            "fold": np.repeat([1, 2], 3),
            "expert_name": ["a", "b", "c"] * 2,
            "frequency": [0.2, 0.3, 0.5] * 2,
        }
    )
    dist = plotting.routing_distribution(routing)
    assert sorted(round(p.get_height(), 6) for p in dist.axes[0].patches) == [0.2, 0.3, 0.5]
    conf = plotting.routing_confidence(_predictions())
    assert [ax.get_title() for ax in conf.axes] == ["moe_curiosity_log", "moe_curiosity_kl"]
    assert [t.get_text() for t in conf.axes[0].get_xticklabels()] == [
        "ternary_reference",
        "w4a8",
        "w8a8",
    ]


def test_confusion_matrix_is_row_normalised():
    fig = plotting.confusion(np.array([[8, 2], [0, 0]]), ["a", "b"], "t")
    image = fig.axes[0].images[0].get_array()
    assert np.allclose(image, [[0.8, 0.2], [0.0, 0.0]])


def test_placeholder_states_the_reason():
    fig = plotting.placeholder("routing", "no routing.csv")
    assert "not computed: no routing.csv" in fig.axes[0].texts[0].get_text()


def test_class_names_with_dollar_signs_are_drawn_literally():
    import io

    names = ["$x^$", "cost in $", "plain"]  # "$x^$" is broken mathtext: drawing it used to raise
    fig = plotting.confusion(np.eye(3, dtype=int) * 4, names, "confusion")
    fig.savefig(io.BytesIO(), format="png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [r"\$x^\$", r"cost in \$", "plain"]
    pred = pd.DataFrame(
        {"label": [0, 1, 2], "variant": ["moe_curiosity_log"] * 3, "uncertainty": [0.1, 0.2, 0.3]}
    )
    plotting.curiosity_per_class(pred, names, "u").savefig(io.BytesIO(), format="png")

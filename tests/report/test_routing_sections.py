"""The report's selected-epoch table, its same-weights routing table and the F1-by-share figure
(qmoe.report.routing, qmoe.report.plotting.routing_share_curve)."""

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from repo_params import config  # noqa: E402

from qmoe.analysis import escalation as esc  # noqa: E402
from qmoe.analysis.stats import StatsConfig  # noqa: E402
from qmoe.contract.study import RunId  # noqa: E402
from qmoe.report import figures, plotting, routing  # noqa: E402

CFG = config(StatsConfig, "stats", permutation_draws=1000)
_SPEC = importlib.util.spec_from_file_location(
    "figure_text", Path(__file__).with_name("test_figure_text.py")
)
figure_text = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(figure_text)  # its overlap check, on this figure too


def test_selected_epochs_shows_the_median_and_the_share_kept_early():
    runs = pd.DataFrame(
        {
            "dataset": "esc10",
            "protocol": ["corrected"] * 4 + ["faithful"] * 2,
            "variant": ["w4a8", "w4a8", "fp32", "fp32", "fp32", "fp32"],
            "selected_epoch": [2, 9, 3, 4, 20, 30],
            "epochs_run": [20, 25, 18, 19, 20, 30],
        }
    )
    lines = routing.selected_epochs(runs).splitlines()
    rows = [line for line in lines if line.startswith("| esc10")]
    assert rows == [
        "| esc10 | corrected | fp32 | 2 | 3.5 | 50 % | 18.5 |",
        "| esc10 | corrected | w4a8 | 2 | 5.5 | 50 % | 22.5 |",
        "| esc10 | faithful | fp32 | 2 | 25.0 | 0 % | 25.0 |",
    ]


def _models(seed: int) -> list[esc.Arms]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(4):
        label = rng.integers(0, 5, 40)
        none = np.where(rng.random(40) < 0.7, label, (label + 1) % 5)
        u = rng.random(40)
        out.append(esc.Arms(label, none, label.copy(), u > 0.85, u, 0))
    return out


def _groups() -> dict:
    return {
        RunId("esc10", p, "moe_curiosity_route"): _models(i)
        for i, p in enumerate(("corrected", "faithful"))
    }


def test_same_weights_table_lists_every_arm_per_protocol():
    frame = esc.same_weights(_groups(), CFG)
    text = routing.same_weights(frame)
    rows = [line for line in text.splitlines() if line.startswith("| esc10")]
    assert [r.split(" | ")[1] for r in rows] == ["corrected", "faithful"]
    first = frame.iloc[0]
    cells = rows[0].split(" | ")
    assert cells[5:9] == [f"{first[c]:.4f}" for c in ("f1_u", "f1_random", "f1_none", "f1_all")]
    assert cells[-1] == "1000 draws |" and "one-sided" in text
    assert "for every clip the u arm equals the deployed prediction" in text
    assert routing.same_weights(frame.iloc[:0]).endswith("No route model in this study.\n")


def test_the_share_curve_figure_draws_both_protocols_without_overlapping_labels():
    groups = _groups()
    curve, same = esc.share_curve(groups, CFG), esc.same_weights(groups, CFG)
    fig = plotting.routing_share_curve(curve, same)
    assert [ax.get_title() for ax in fig.axes] == ["corrected", "faithful"]
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].lines}
    assert styles == {
        "moe_curiosity_route: by u": "-",
        "random, same count": "--",
        "deployed share": ":",
    }
    assert figure_text.overlapping_texts(fig) == []
    runs = pd.DataFrame(columns=["dataset", "protocol", "variant", "is_moe", "curiosity"])
    data = figures.FigureData(runs, *[pd.DataFrame()] * 3, None, None, curve, same)
    assert figures.build(data, "macro_f1")["routing_share_curve"].axes[0].lines  # not a placeholder

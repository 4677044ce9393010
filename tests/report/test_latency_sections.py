"""The report's whole-path and MoE-spread sections (qmoe.report.latency) from stats tables."""

import pandas as pd

from qmoe.report import latency


def test_whole_path_shows_the_heads_share_and_the_path_against_fp32():
    cost = pd.DataFrame(
        {
            "dataset": "esc10",
            "protocol": "corrected",
            "variant": ["fp32", "w4a8"],
            "n_clips": 5,
            **{c: 10.0 for c in ("load_ms", "mel_ms", "render_ms", "backbone_ms")},
            "head_ms": [0.2, 0.05],
            "total_ms": [40.2, 40.05],
            "head_share": [0.2 / 40.2, 0.05 / 40.05],
            "total_vs_fp32": [1.0, 40.05 / 40.2],
        }
    )
    text = latency.whole_path(cost)
    assert "median over 5 clips" in text and latency.HEAD_ONLY in text
    w4 = next(line for line in text.splitlines() if "| w4a8 |" in line)
    assert "0.0500" in w4 and "0.12 %" in w4 and "0.9963" in w4
    assert "not shown" in latency.whole_path(pd.DataFrame())


def test_moe_spread_puts_each_experts_share_beside_the_spread():
    spread = pd.DataFrame(
        {
            "dataset": ["esc10"] * 2,
            "protocol": "corrected",
            "variant": "moe",
            "fold": [1, 3],
            "median_ms": [0.14, 0.12],
            "iqr_ms": [0.03, 0.014],
            "mad_ms": [0.01, 0.006],
            "sd_ms": [0.05, 0.02],
            "share_w4a8": [0.25, 0.0],
            "share_w8a8": [0.75, 1.0],
        }
    )
    text = latency.moe_spread(spread)
    header = next(line for line in text.splitlines() if line.startswith("| dataset"))
    assert "w4a8" in header and "w8a8" in header
    fold3 = [line for line in text.splitlines() if "| 3 |" in line][0]
    assert "0.0140" in fold3 and "0 %" in fold3 and "100 %" in fold3

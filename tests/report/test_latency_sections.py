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
    assert "median over 5 clips" in text and "in the after_backbone regime" in text
    w4 = next(line for line in text.splitlines() if "| w4a8 |" in line)
    assert "0.0500" in w4 and "0.12 %" in w4 and "0.9963" in w4
    assert "not shown" in latency.whole_path(pd.DataFrame())


def test_moe_spread_puts_each_experts_share_beside_the_spread():
    spread = pd.DataFrame(
        {
            "dataset": ["esc10"] * 2,
            "protocol": "corrected",
            "variant": "moe",
            "runtime": "onnxruntime",
            "regime": "after_backbone",
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


def _forms() -> pd.DataFrame:
    base = dict(dataset="esc10", protocol="corrected", variant="moe", runtime="onnxruntime")
    rows = [
        base | dict(regime="after_backbone", form="whole", fastest=False, mean_variant=0.107,
                    mean_baseline=0.031, router_ms=0.020, expert_ms=0.030, dispatch_ms=0.057,
                    router_share=0.020 / 0.076, expert_share=-0.001 / 0.076,
                    dispatch_share=0.057 / 0.076, ratio=3.45, ratio_ci_low=3.3, ratio_ci_high=3.6),
        base | dict(regime="after_backbone", form="host_dispatch", fastest=True,
                    mean_variant=0.062, mean_baseline=0.031, router_ms=0.020, expert_ms=0.030,
                    dispatch_ms=0.012, router_share=0.020 / 0.031, expert_share=-0.001 / 0.031,
                    dispatch_share=0.012 / 0.031, ratio=2.0, ratio_ci_low=1.9, ratio_ci_high=2.1),
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_moe_decomposition_shows_router_dispatch_expert_and_the_ratio_per_form():
    text = latency.moe_decomposition(_forms())
    whole = next(line for line in text.splitlines() if "| one graph |" in line)
    host = next(line for line in text.splitlines() if "| host dispatch (fastest) |" in line)
    assert "| 0.0200 | 0.0300 | 0.0570 | 0.1070 | 0.0310 |" in whole
    assert "26 % / -1 % / 75 %" in whole and "x3.45 [3.30, 3.60]" in whole
    assert "65 % / -3 % / 39 %" in host and "x2.00 [1.90, 2.10]" in host
    assert "no decomposition" in latency.moe_decomposition(pd.DataFrame())


def test_machine_state_states_load_steal_and_the_flush():
    scope = pd.DataFrame(
        [
            dict(dataset="esc10", protocol="corrected", runtime_label="ORT 1.31.1",
                 duration_s=61.2, load_start=0.52, load_end=1.75, steal_s=2.5,
                 steal_share=0.02, flush_bytes=2097152, l2_bytes=524288)
        ]
    )  # fmt: skip
    line = latency.machine_state(scope).splitlines()[-1]
    assert line == (
        "| esc10 | corrected | ORT 1.31.1 | 61 | 0.52 -> 1.75 | 2.50 | 2.0 % | "
        "2.0 MiB written per call (L2 512 KiB) |"
    )
    assert "unknown" in latency.machine_state(pd.DataFrame())

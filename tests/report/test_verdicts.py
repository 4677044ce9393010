"""The claims verdict as the report words it (qmoe.report.verdicts): direction and size apart,
proxies named, extensions outside the paper's counts, scopes and power in verdicts.json."""

import math

import numpy as np
import pandas as pd
from repo_params import config

from qmoe.analysis import paper_claims
from qmoe.analysis.paper_claims import CLAIMS, EXTENSIONS
from qmoe.analysis.verdict import Verdict, VerdictConfig
from qmoe.report import claim_verdicts, summary, verdicts

NAN = math.nan


MEASURED = ("ORT 1.31.1", "after_backbone", "1")  # a latency claim's measurement (claims.csv)


def _found(claim: str, dataset: str = "esc10", protocol: str = "corrected", **kw) -> dict:
    latency = paper_claims.BY_ID[claim].timing is not None
    runtime, regime, batch = MEASURED if latency else ("", "", "")
    row = {
        "claim": claim,
        "dataset": dataset,
        "protocol": protocol,
        "ours": f"ours {claim}",
        "runtime": runtime,
        "regime": regime,
        "batch": batch,
        "measured_scope": f"{runtime}, {regime}, batch {batch}, this CPU" if latency else "",
        "computed": True,
        "reason": "",
        "estimate": NAN,
        "ci_low": NAN,
        "ci_high": NAN,
        "p": NAN,
        "margin": NAN,
    }
    return {**row, **kw}


def _judge(found: list[dict], protocols=("corrected",)) -> pd.DataFrame:
    frame = pd.DataFrame(found)
    return claim_verdicts.judge(frame, config(VerdictConfig, "report.verdict"), 0.05, protocols)


def _row(rows: pd.DataFrame, claim: str, protocol: str = "corrected") -> pd.Series:
    return rows.set_index(["claim", "protocol"]).loc[(claim, protocol)].rename(None)


def _cell(rows: pd.DataFrame, claim: str, protocol: str = "corrected") -> str:
    row = _row(rows, claim, protocol).copy()
    row["protocol"], row["claim"] = protocol, claim
    return verdicts.verdict_cell(row)


def test_a_faster_but_smaller_effect_reads_direction_reproduced_size_not_reproduced():
    """4-bit 15.4 % faster than 8-bit (x0.85 [0.81, 0.91]) against the paper's 41 %."""
    rows = _judge([_found("latency_q4_vs_q8", estimate=0.154, ci_low=0.09, ci_high=0.19, p=0.003)])
    row = _row(rows, "latency_q4_vs_q8")
    assert (row["verdict"], row["direction"], row["size"]) == (
        "not reproduced",
        "reproduced",
        "not reproduced",
    )
    assert _cell(rows, "latency_q4_vs_q8") == (
        "proxy (latency for energy): **direction reproduced** (x0.85 [x0.81, x0.91]), "
        "**size not reproduced** (15.4 % vs 41 %) (ORT 1.31.1, after_backbone, batch 1, this CPU)"
    )


def test_an_effect_the_other_way_or_unsure_says_so_and_a_matching_one_is_reproduced():
    rows = _judge(
        [
            # MoE faster than 8-bit: the paper's +11 % overhead neither in direction nor size
            _found("moe_overhead_11", estimate=-0.2, ci_low=-0.3, ci_high=-0.1, p=0.001),
            # latency variance x1.12 [0.87, 1.44]: no direction either way
            _found("latency_variance_82", estimate=-0.12, ci_low=-0.44, ci_high=0.13, p=0.8),
            _found("routing_q8_confidence", estimate=0.2, ci_low=0.15, ci_high=0.25, p=0.001),
        ]
    )
    assert _cell(rows, "moe_overhead_11") == (
        "**direction not reproduced** (x0.80 [x0.70, x0.90]), "
        "**size not reproduced** (-20.0 % vs +11 %) (ORT 1.31.1, after_backbone, batch 1, this "
        "CPU)"
    )
    assert _cell(rows, "latency_variance_82") == (
        "**direction inconclusive** (x1.12 [x0.87, x1.44]), "
        "**size not reproduced** (-12.0 % vs 82 %) (ORT 1.31.1, after_backbone, batch 1, this "
        "CPU)"
    )
    assert _cell(rows, "routing_q8_confidence").startswith(
        "**direction reproduced** (x0.80 [x0.75, x0.85]), **size reproduced** (20.0 % vs 20 %)"
    )
    assert _row(rows, "routing_q8_confidence")["verdict"] == "reproduced"


def test_not_computed_names_its_protocol_and_not_testable_is_for_what_cannot_be_measured():
    rows = _judge(
        [
            _found("latency_variance_82_reference", computed=False, reason="faithful only"),
            _found("energy_inference_v1", computed=False, reason="x", not_testable="no RAPL"),
        ],
        ("corrected", "faithful"),
    )
    assert _cell(rows, "latency_variance_82_reference") == "**not computed under corrected**"
    assert _row(rows, "latency_variance_82_reference")["regime"] == "after_backbone"  # the data
    assert _cell(rows, "f1_q4_vs_q16", "faithful") == "**not computed under faithful**"
    assert _cell(rows, "energy_inference_v1") == "**not testable here**"
    assert _row(rows, "energy_inference_v1")["reason"] == "no RAPL"


def _every_claim(verdict: Verdict) -> pd.DataFrame:
    """Every claim judged `verdict` on both protocols (a hand-made verdict frame)."""
    rows = [
        {
            "claim": c.id,
            "dataset": "esc10",
            "protocol": p,
            "ours": "x",
            "verdict": verdict.value,
            "scope": "on ESC-10",
            "reason": "r",
            "extension": c.id in EXTENSIONS,
        }
        for c in CLAIMS
        for p in ("corrected", "faithful")
    ]
    return pd.DataFrame(rows)


def test_extensions_are_a_table_apart_and_outside_every_count():
    rows = _every_claim(Verdict.NOT_REPRODUCED)
    paper = len(CLAIMS) - len(EXTENSIONS)
    md = verdicts.verdict_markdown(rows)
    main, ours = md.split("### Our extensions")
    assert f"Verdicts over claims x protocols: 0 reproduced, {2 * paper} not reproduced," in main
    assert "Verdicts: 0 reproduced, 4 not reproduced," in ours
    for c in CLAIMS:
        assert (f"| {c.claim} [{c.source}] |" in ours) is (c.id in EXTENSIONS), c.id
        assert (f"| {c.claim} [{c.source}] |" in main) is (c.id not in EXTENSIONS), c.id
    metrics = verdicts.verdict_metrics(rows)["esc10"]["corrected"]
    assert metrics["counts"]["not_reproduced"] == paper
    assert set(metrics["extensions"]) == EXTENSIONS and not EXTENSIONS & set(metrics["claims"])
    runs = pd.DataFrame({"dataset": ["esc10"], "protocol": ["corrected"], "variant": ["fp32"]})
    line = summary.study_line(runs, rows)
    assert line.startswith(f"{paper} claims of the paper x 2 protocols")
    assert f"Verdicts: 0 reproduced, {2 * paper} not reproduced," in line
    assert line.endswith(
        "Our 2 extension rows (claims the paper did not make) are judged apart and not counted."
    )


def test_verdicts_json_carries_each_verdicts_scope_and_power():
    rows = _judge(
        [
            _found("latency_q4_vs_q8", estimate=0.154, ci_low=0.09, ci_high=0.19, p=0.003),
            _found(
                "equiv_w4a8_fp32",
                estimate=-0.005,
                ci_low=-0.03,
                ci_high=0.02,
                p=0.4,
                margin=0.01,
                n=400,
                unit="clips",
            ),
        ]
    )
    # the latency scope h2's measurement fills in (empty elsewhere)
    lat = rows["claim"] == "latency_q4_vs_q8"
    rows = rows.assign(runtime="", regime="", batch="")
    rows.loc[lat, ["runtime", "regime", "batch", "scope"]] = [
        "ORT 1.31.1",
        "after_backbone",
        "1",
        "ORT 1.31.1, after_backbone, batch 1, this CPU",
    ]
    entry = verdicts.verdict_metrics(rows)["esc10"]["corrected"]["claims"]
    assert entry["latency_q4_vs_q8"] == {
        "verdict": "not reproduced",
        "direction": "reproduced",
        "size": "not reproduced",
        "proxy": "latency for energy",
        "scope": {
            "dataset": "esc10",
            "runtime": "ORT 1.31.1",
            "regime": "after_backbone",
            "batch": "1",
            "note": "ORT 1.31.1, after_backbone, batch 1, this CPU",
        },
    }
    # TOST of [-0.03, 0.02] at +-0.01 on 400 clips: W = 0.025; at the centre -0.005 the
    # interval decides at W* = 0.005 (x25); centred on 0 at 0.01 (x6.25)
    assert entry["equiv_w4a8_fp32"]["power"] == {
        "showable": 0.03,
        "stated": 0.01,
        "n": 400.0,
        "n_needed": 10000.0,
        "n_design": 2500.0,
        "unit": "clips",
        "by_design": True,
    }
    assert entry["equiv_w4a8_fp32"]["scope"]["note"] == "on ESC-10"
    assert _cell(rows, "equiv_w4a8_fp32") == (
        "**inconclusive** (on ESC-10); power: a margin of ±0.03 would decide (stated ±0.01); "
        "inconclusive by design: 2,500 clips (had 400) would decide at no difference"
    )
    assert verdicts.verdict_metrics(rows)["esc10"]["corrected"]["inconclusive_by_design"] == 1


def test_power_without_a_unit_count_says_how_many_times_the_data():
    rows = _judge(
        [_found("moe_no_gain", estimate=0.02, ci_low=0.0, ci_high=0.04, p=0.3, margin=0.01)]
    )
    # no gain: shown below 0.01, refuted above 0. W = 0.02; centred on no gain an interval
    # decides at 0.01, so this design could not: (0.02 / 0.01)^2 = 4 times the data
    cell = _cell(rows, "moe_no_gain")
    assert cell == (
        "**inconclusive** (on ESC-10); power: a margin of 0.04 would decide (stated 0.01); "
        "inconclusive by design: 4.0x the data would decide at no difference"
    )


def test_the_summary_says_how_to_read_the_counts():
    rows = _every_claim(Verdict.INCONCLUSIVE).assign(power_by_design=True, direction="")
    rows.loc[rows["claim"] == "latency_q4_vs_q8", ["verdict", "direction"]] = [
        "not reproduced",
        "reproduced",
    ]
    line = verdicts.reading_line(verdicts.split(rows)[0])
    unsure = 2 * (len(CLAIMS) - len(EXTENSIONS) - 1)
    assert line == (
        "Of the 2 not reproduced, 2 reproduce the paper's direction but not its size; "
        f"{unsure} of the {unsure} inconclusive verdicts are inconclusive by design (the "
        "interval this design gives is wider than the stated band or margin even at the "
        "paper's value or no difference)."
    )


def test_every_claim_and_both_protocols_are_shown_even_one_not_run():
    found = [_found(c.id, computed=False, reason="no data", dataset="d") for c in CLAIMS]
    rows = _judge(found, verdicts.PROTOCOLS)
    faithful = rows[rows["protocol"] == "faithful"]
    untestable = [c.id for c in CLAIMS if c.judge.rule.value == "not_testable"]
    assert set(faithful.loc[~faithful["claim"].isin(untestable), "verdict"]) == {"not computed"}
    md = verdicts.verdict_markdown(rows).splitlines()
    assert md[0] == (
        "| Claim [abstract] | Paper | Ours (corrected) | Verdict (corrected) | "
        "Ours (faithful) | Verdict (faithful) | Reason |"
    )
    assert md[2] == (
        "| 4-bit keeps the F1 of '16-bit' [v1+v3] | 0.858 vs 0.859 (99.9 %) | "
        "ours f1_q4_vs_q16 | **not computed under corrected** | not run | "
        "**not computed under faithful** | corrected: no data; faithful: protocol faithful "
        "not in the study |"
    )
    std = next(line for line in md if line.startswith("| MoE latency std 230 ms"))
    assert std.endswith("(absolute ms depend on the machine; the ratio is compared) |")
    assert np.sum([line.startswith("| ") for line in md]) == 2 + len(CLAIMS)

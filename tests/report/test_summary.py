"""The report's opening summary and its Deployment section (qmoe.report.summary,
qmoe.report.deployment): every number and verdict comes from the rows they are given."""

import pandas as pd
import pytest

from qmoe.analysis.paper_claims import CLAIMS, EXTENSIONS
from qmoe.analysis.verdict import Verdict
from qmoe.io import ConfigError
from qmoe.report import deployment, summary

DEVICE = {
    "cpu_model": "Test CPU 9000",
    "platform": "Linux-6.1-x86_64-with-glibc2.36",
    "isa": {"avx2": True, "avx512f": True, "avx512_vnni": False},
    "onnxruntime": "1.31.1",
    "torch": "2.9.1",
    "threads": 1,
}
ESTIMATED = "estimated: power model x time (codecarbon CPU estimated)"


def _verdicts() -> pd.DataFrame:
    """Every claim x protocol; claim i gets verdict i mod 3 of (reproduced, not reproduced,
    inconclusive) and an 'ours' text naming the claim and protocol."""
    kinds = [Verdict.REPRODUCED, Verdict.NOT_REPRODUCED, Verdict.INCONCLUSIVE]
    rows = [
        {
            "claim": c.id,
            "dataset": "esc10",
            "protocol": p,
            "ours": f"ours {c.id} {p}",
            "verdict": kinds[i % 3].value,
            "scope": "",
            "reason": "r",
            "extension": c.id in EXTENSIONS,
        }
        for i, c in enumerate(CLAIMS)
        for p in ("corrected", "faithful")
    ]
    return pd.DataFrame(rows)


def _runs() -> pd.DataFrame:
    rows = []
    for protocol in ("corrected", "faithful"):
        for variant, artefact, is_moe in (
            ("w4a8", "MatMulNBits 4-bit", False),
            ("bitnet158", "MatMulNBits 2-bit holding ternary codes (BitNet b1.58)", False),
            ("moe", "MatMulNBits 2-bit holding ternary codes; MatMulNBits 8-bit", True),
        ):
            for fold, train, deployed in ((1, 0.90, 0.90), (2, 0.80, 0.78)):
                shift = 0.01 if variant == "w4a8" and protocol == "faithful" else 0.0
                rows.append(
                    {
                        "dataset": "esc10",
                        "protocol": protocol,
                        "variant": variant,
                        "fold": fold,
                        "seed": 0,
                        "is_moe": is_moe,
                        "artefact": artefact,
                        "macro_f1": train,
                        "deployed_macro_f1": deployed - shift,
                        "latency_runtime": "onnxruntime",
                        "energy_method": ESTIMATED,
                        "bench_energy_method": ESTIMATED,
                    }
                )
    return pd.DataFrame(rows)


def test_summary_counts_every_verdict_and_shows_the_key_claims_in_order():
    text = summary.markdown(_verdicts(), _runs(), [DEVICE])
    paper = [i for i, c in enumerate(CLAIMS) if c.id not in EXTENSIONS]  # extensions: uncounted
    counts = [2 * sum(i % 3 == k for i in paper) for k in range(3)]  # two protocols per claim
    assert text.splitlines()[0] == (
        f"{len(paper)} claims of the paper x 2 protocols (corrected, faithful) on `esc10`, 12 "
        f"trained models of 3 variants. Verdicts: {counts[0]} reproduced, {counts[1]} not "
        f"reproduced, {counts[2]} inconclusive, 0 not testable here, 0 not computed, 0 holds "
        f"by arithmetic, 0 indicative only. Of the {counts[1]} not reproduced, 0 reproduce the "
        f"paper's direction but not its size; 0 of the {counts[2]} inconclusive verdicts are "
        "inconclusive by design (the interval this design gives is wider than the stated band "
        "or margin even at the paper's value or no difference). Our 2 extension rows (claims "
        "the paper did not make) are judged apart and not counted."
    )
    rows = [line for line in text.splitlines() if line.startswith("| ") and "ours " in line]
    index = {c.id: i for i, c in enumerate(CLAIMS)}
    kinds = ["reproduced", "not reproduced", "inconclusive"]
    assert len(rows) == len(summary.KEY_CLAIMS)
    for row, claim in zip(rows, summary.KEY_CLAIMS):
        verdict = kinds[index[claim] % 3]
        assert f"| ours {claim} corrected | **{verdict}** | ours {claim} faithful |" in row
        assert row.endswith(f"| **{verdict}** |")  # no reason column in the summary


def test_summary_states_the_largest_deployment_gap_the_scope_and_the_energy_method():
    lines = summary.markdown(_verdicts(), _runs(), [DEVICE]).splitlines()
    # every variant loses 0.01 on average (0.02 on fold 2); w4a8 faithful loses 0.02
    assert lines[-3] == (
        "- Deployed artefacts score within 0.0200 macro-F1 of their training form on average "
        "per variant (largest: `w4a8`, faithful, 0.8500 -> 0.8300); every variant's gap is in "
        "the report's Deployment section."
    )
    assert lines[-2] == (
        "- The latency columns and latency claims measure ONNX Runtime 1.31.1 (CPU execution "
        "provider) for `corrected`; torch 2.9.1 eager (the fake-quantised training modules) for "
        "`faithful`, on Test CPU 9000 (x86-64, 1 thread), at batch 1 (each claim names its "
        "cache regime): they hold for x86-64 CPUs of this kind only; no GPU, phone, "
        "microcontroller or other instruction set was measured."
    )
    assert lines[-1].startswith("- Energy per inference (the energy columns and figure) is a ")
    assert "**estimate**" in lines[-1] and ESTIMATED not in lines[-1]  # details in Deployment


def test_deployment_section_gives_each_variants_gap_and_what_the_kernels_change():
    form = deployment.DeployedForm(block_size=64, accuracy_level=4)
    text = deployment.markdown(_runs(), [DEVICE], form, ("corrected", "faithful"))
    assert (
        "| `w4a8` | MatMulNBits 4-bit | 0.8500 | 0.8400 | -0.0100, -0.0200 | 0.8500 | 0.8300 | "
        "-0.0200, -0.0300 |"
    ) in text
    assert "ISA flags found: avx2, avx512f)" in text  # the false flag is not listed
    assert "per block of `export.block_size` = 64 values" in text
    assert "training quantises per sample" in text
    assert (
        "ONNX Runtime 1.31.1 has no 1-bit or ternary kernel for x86-64 CPUs, so `bitnet158` "
        "(and the ternary expert inside each MoE) run as 2-bit MatMulNBits"
    ) in text
    assert f"(`{ESTIMATED}`)" in text


def test_measured_energy_is_not_called_an_estimate():
    runs = _runs().assign(energy_method="rapl", bench_energy_method="rapl (idle subtracted)")
    assert not deployment.energy_estimated(runs)
    assert deployment.energy_line(runs) == (
        "Energy per inference was read from hardware power counters (`rapl (idle subtracted)`)."
    )
    assert deployment.energy_estimated(_runs().assign(energy_method="rapl"))  # bench estimated


def test_a_study_without_deployed_f1_or_devices_says_so():
    runs = _runs().drop(columns=["deployed_macro_f1", "artefact"])
    text = deployment.markdown(runs, [], None, ("corrected", "faithful"))
    assert "No model has a `deployed_macro_f1`: nothing was deployed and scored." in text
    assert "No device.json was found" in text
    assert "MatMulNBits" not in text
    assert "No deployed F1 was recorded." in summary.markdown(_verdicts(), runs, [])


def test_deployed_form_reads_the_two_graph_keys_of_params_export():
    section = {"block_size": 32, "accuracy_level": 4, "check": {"atol": 1e-5}}
    assert deployment.deployed_form(section) == deployment.DeployedForm(32, 4)
    with pytest.raises(ConfigError, match="export.block_size"):
        deployment.deployed_form({"block_size": "128", "accuracy_level": 4})
    with pytest.raises(ConfigError, match="missing required key 'accuracy_level'"):
        deployment.deployed_form({"block_size": 128})


def test_a_matmulnbits_study_without_its_export_form_says_so():
    lines = deployment.kernel_lines(_runs(), None, deployment.machines([DEVICE]))
    assert lines[0] == "MatMulNBits artefacts were built, but their `export` form was not given."


def test_the_summary_names_the_code_commit_last():
    lines = summary.markdown(_verdicts(), _runs(), [DEVICE], commit="abc123").splitlines()
    assert lines[-1] == "- Code: git commit `abc123` (the report's Provenance has the rest)."
    assert "git commit" not in summary.markdown(_verdicts(), _runs(), [DEVICE])

"""The report's Deployment section: what runs where, what deploying costs in F1, and what the
numbers do not cover (hardware scope, kernel substitutions, how energy was obtained).

Inputs are generated only: the runs table (`artefact`, `macro_f1`, `deployed_macro_f1`,
`bench_energy_method`), the benchmarks' device.json records and params `export`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from qmoe.catalog import order
from qmoe.contract.benchmarks import claims_runtime
from qmoe.io import from_section
from qmoe.report.provenance import MEASURED_ENERGY, energy_methods

TRAINING, DEPLOYED = "macro_f1", "deployed_macro_f1"  # both macro-F1 of the same test clips
_ARCH = {"x86_64": "x86-64", "amd64": "x86-64", "aarch64": "ARM64", "arm64": "ARM64"}


@dataclass(frozen=True)
class DeployedForm:
    """The graph form of params.yaml `export` that the report states (qmoe.deploy checks it)."""

    block_size: int  # MatMulNBits block along K: activations are quantised per block
    accuracy_level: int  # 4 = int8 activations with int32 accumulation


def deployed_form(section: Any) -> DeployedForm:
    """`export.block_size` and `export.accuracy_level` (the other `export` keys are the export
    stage's own)."""
    keys = ("block_size", "accuracy_level")
    picked = {k: v for k, v in section.items() if k in keys} if isinstance(section, dict) else {}
    return from_section(DeployedForm, picked, "export")


class Machine(NamedTuple):
    cpu: str
    arch: str  # x86-64, ARM64 or the platform string's own word
    isa: tuple[str, ...]  # ISA flags device.json found true
    onnxruntime: str
    threads: str
    torch: str = "unknown"


def machines(records: list[dict]) -> list[Machine]:
    """One entry per distinct device.json record (qmoe.report.provenance.devices)."""
    out = []
    for r in records:
        found = re.search(r"(x86_64|amd64|aarch64|arm64)", str(r.get("platform", "")).lower())
        arch = _ARCH[found.group(1)] if found else str(r.get("platform", "unknown"))
        isa = tuple(sorted(k for k, v in (r.get("isa") or {}).items() if v))
        out.append(
            Machine(
                str(r.get("cpu_model", "unknown CPU")),
                arch,
                isa,
                str(r.get("onnxruntime", "unknown")),
                str(r.get("threads", "?")),
                str(r.get("torch", "unknown")),
            )
        )
    return list(dict.fromkeys(out))


def scope_line(found: list[Machine], runtimes: dict[str, str], isa: bool = False) -> str:
    """The hardware and runtimes the latencies hold for (`runtimes`: protocol -> the runtime its
    latency is timed in, `runtimes(runs)`; `isa`: with the ISA flags), in one sentence."""
    if not found:
        return "No device.json was found: the hardware of the latency numbers is not recorded."
    cpus = "; ".join(
        f"{m.cpu} ({m.arch}, {m.threads} thread{'' if m.threads == '1' else 's'}"
        + (f"; ISA flags found: {', '.join(m.isa) or 'none'}" if isa else "")
        + ")"
        for m in found
    )
    archs = " and ".join(sorted({m.arch for m in found}))
    ort = ", ".join(sorted({m.onnxruntime for m in found}))
    torch = ", ".join(sorted({m.torch for m in found}))
    words = {
        "onnxruntime": f"ONNX Runtime {ort} (CPU execution provider)",
        "torch": f"torch {torch} eager (the fake-quantised training modules)",
    }
    used = "; ".join(f"{words.get(r, r)} for `{p}`" for p, r in runtimes.items())
    return (
        f"The latency columns and latency claims measure {used or 'an unrecorded runtime'}, on "
        f"{cpus}, at batch 1 (each claim names its cache regime): they hold for "
        f"{archs} CPUs of this kind only; no GPU, phone, microcontroller or other instruction "
        "set was measured."
    )


def runtimes(runs: pd.DataFrame) -> dict[str, str]:
    """protocol -> the runtime its latency claims are timed in (qmoe.contract.benchmarks)."""
    return {str(p): claims_runtime(str(p)) for p in sorted(runs["protocol"].unique())}


def _measured(method: str) -> bool:
    return any(k in method.lower() for k in MEASURED_ENERGY)


def energy_estimated(runs: pd.DataFrame) -> bool:
    """True unless every recorded energy method (training and inference) read a hardware power
    counter."""
    methods = energy_methods(runs)
    return not methods or not all(_measured(m) for m in methods)


def _inference_methods(runs: pd.DataFrame) -> list[str]:
    col = runs["bench_energy_method"] if "bench_energy_method" in runs else pd.Series(dtype=str)
    return sorted(str(m) for m in col.dropna().unique())


def inference_energy_measured(runs: pd.DataFrame) -> bool:
    """Every model's inference energy read from a power counter (else a power model x time)."""
    methods = _inference_methods(runs)
    return bool(methods) and all(_measured(m) for m in methods)


def energy_line(runs: pd.DataFrame, detail: bool = True) -> str:
    """How inference energy was obtained (runs `bench_energy_method`; `detail`: quoted)."""
    methods = _inference_methods(runs)
    listed = f" ({'; '.join(f'`{m}`' for m in methods) or 'none recorded'})" if detail else ""
    if inference_energy_measured(runs):
        return f"Energy per inference was read from hardware power counters{listed}."
    return (
        "Energy per inference (the energy columns and figure) is a CodeCarbon **estimate**: a "
        f"power model times run time, with no power counter read on this machine{listed}. It "
        "ranks the variants by time, not by power drawn."
    )


class Gap(NamedTuple):
    training: float  # mean over models
    deployed: float
    mean_gap: float  # mean of deployed - training
    worst: float  # the largest |deployed - training| of one model, signed


def gaps(runs: pd.DataFrame) -> dict[tuple[str, str], Gap]:
    """(protocol, variant) -> the deployment gap of its models (models without a deployed
    F1 are left out)."""
    if DEPLOYED not in runs:
        return {}
    out = {}
    for (p, v), part in runs.dropna(subset=[DEPLOYED]).groupby(["protocol", "variant"]):
        diff = (part[DEPLOYED] - part[TRAINING]).to_numpy(float)
        worst = diff[np.argmax(np.abs(diff))]
        out[(p, v)] = Gap(part[TRAINING].mean(), part[DEPLOYED].mean(), diff.mean(), worst)
    return out


def largest_gap(runs: pd.DataFrame) -> tuple[str, str, Gap] | None:
    """The (protocol, variant) whose mean deployment gap is largest in size."""
    found = gaps(runs)
    if not found:
        return None
    (p, v), g = max(found.items(), key=lambda kv: (abs(kv[1].mean_gap), kv[0]))
    return p, v, g


def artefacts(runs: pd.DataFrame) -> pd.Series:
    """variant -> what its deployed artefact is (runs `artefact`); empty when none recorded."""
    if "artefact" not in runs:
        return pd.Series(dtype=str)
    return runs.dropna(subset=["artefact"]).groupby("variant")["artefact"].first().astype(str)


def gap_table(runs: pd.DataFrame, protocols: tuple[str, ...]) -> str:
    found = gaps(runs)
    if not found:
        return f"No model has a `{DEPLOYED}`: nothing was deployed and scored.\n"
    head = ["Variant", "Deployed artefact"] + [
        f"{h} ({p})"
        for p in protocols
        for h in ("training form", "deployed", "gap: mean, worst model")
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    arts = artefacts(runs)
    for v in order(list(runs["variant"].unique())):
        cells = [f"`{v}`", str(arts.get(v, "n/a"))]
        for p in protocols:
            g = found.get((p, v))
            cells += (
                [f"{g.training:.4f}", f"{g.deployed:.4f}", f"{g.mean_gap:+.4f}, {g.worst:+.4f}"]
                if g
                else ["not run"] * 3
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def kernel_lines(runs: pd.DataFrame, form: DeployedForm | None, found: list[Machine]) -> list[str]:
    """What the kernels do differently from training, from the artefacts that were built
    (`form`: params `export`; None: not given)."""
    arts = artefacts(runs)
    lines = []
    if arts.str.contains("MatMulNBits").any() and form is None:
        lines.append("MatMulNBits artefacts were built, but their `export` form was not given.")
    elif arts.str.contains("MatMulNBits").any():
        lines.append(
            f"MatMulNBits with `export.accuracy_level` {form.accuracy_level} quantises its "
            f"input activations to int8 per block of `export.block_size` = {form.block_size} "
            "values along the input dimension, while training quantises per sample (one scale "
            "for the whole input vector): the deployed column above shows what that costs."
            if form.accuracy_level == 4
            else f"MatMulNBits with `export.accuracy_level` {form.accuracy_level} computes in "
            "floating point: its activations are not quantised as in training."
        )
    held = [v for v, a in arts.items() if "2-bit holding" in a]
    moes = set(runs.loc[runs["is_moe"].astype(bool), "variant"]) if "is_moe" in runs else set()
    singles = order([v for v in held if v not in moes])
    if held:
        runtime = ", ".join(sorted({m.onnxruntime for m in found})) or "(version not recorded)"
        arch = " and ".join(sorted({m.arch for m in found})) or "this"
        inside = " (and the ternary expert inside each MoE)" if set(held) & moes else ""
        lines.append(
            f"ONNX Runtime {runtime} has no 1-bit or ternary kernel for {arch} CPUs, so "
            f"{', '.join(f'`{v}`' for v in singles) or 'the MoEs'}{inside} run as 2-bit "
            "MatMulNBits holding their 1-bit or ternary codes: their latency and bytes are "
            "those of a 2-bit kernel, not of a native 1- or 1.58-bit one."
        )
    return lines


def markdown(
    runs: pd.DataFrame, records: list[dict], form: DeployedForm | None, protocols: tuple[str, ...]
) -> str:
    found = machines(records)
    lines = [
        "Each trained model is exported to its deployed artefact and scored again at batch 1 "
        f"on its test fold. Macro-F1 of the training form (`{TRAINING}`, what the accuracy "
        f"claims use) and of the deployed artefact (`{DEPLOYED}`), mean over models; the gap "
        "is deployed minus training form.\n",
        gap_table(runs, protocols),
        *(
            f"- {line}"
            for line in [
                scope_line(found, runtimes(runs), isa=True),
                *kernel_lines(runs, form, found),
            ]
        ),
        f"- {energy_line(runs)}",
    ]
    return "\n".join(lines) + "\n"

"""Where the report's numbers come from: commit, params, dataset checksums, device, energy."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from qmoe.contract.benchmarks import device_files
from qmoe.contract.raw import RawFolder

# Energy methods that read a hardware power counter; anything else is an estimate.
MEASURED_ENERGY = ("rapl", "nvml", "powermetrics", "intel_power_gadget")


def _git(args: list[str], cwd: Path | None, strip: bool = True) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return out.strip() if strip else out


def generated(root: Path) -> tuple[str, ...]:
    """What the pipeline itself writes among tracked files: dvc.lock and every stage's outs,
    metrics and plots in dvc.yaml (a templated path up to its first `${`). A `dvc repro` rewrites
    them before the report stage runs, so they cannot make the code 'dirty'."""
    path = Path(root) / "dvc.yaml"
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {}) if path.is_file() else {}
    found = {"dvc.lock"}
    for stage in stages.values():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind) or []:
                name = next(iter(entry)) if isinstance(entry, dict) else str(entry)
                found.add(name.split("${")[0])
    return tuple(sorted(p for p in found if p))


def git_commit(cwd: Path | None = None) -> str:
    """`git rev-parse HEAD`, with '-dirty' when a tracked file other than the pipeline's own
    outputs (`generated`) changed; 'unknown' outside git."""
    try:
        head = _git(["rev-parse", "HEAD"], cwd)
        top = Path(_git(["rev-parse", "--show-toplevel"], cwd))
        # porcelain v1 -z: 'XY path\0' (a rename adds its old path as the next entry)
        entries = _git(["status", "--porcelain", "-z", "--untracked-files=no"], cwd, False).split(
            "\0"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    skip = generated(top)
    changed = [e[3:] for e in entries if len(e) > 3]
    dirty = [
        c for c in changed if not any(c == g or c.startswith(g.rstrip("/") + "/") for g in skip)
    ]
    return f"{head}-dirty" if dirty else head or "unknown"


def commit_line(commit: str) -> str:
    """How provenance names the code (`commits_named` reads it back)."""
    return f"Code: git commit `{commit}`"


def commits_named(text: str) -> list[str]:
    """Every commit a generated text names as its code ('...-dirty': uncommitted changes)."""
    return re.findall(r"Code: git commit `([^`]*)`", text)


def manifest_digest(manifest: pd.DataFrame) -> str:
    """sha256 over the sorted `clip_id  sha256` lines: one hash for every clip's content."""
    lines = sorted(
        f"{c}  {h}" for c, h in zip(manifest["clip_id"].astype(str), manifest["sha256"].astype(str))
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def dataset_rows(raw_root: Path, datasets: list[str]) -> pd.DataFrame:
    """One row per dataset: source, licence, file count, archive and manifest checksums."""
    rows = []
    for name in datasets:
        folder = Path(raw_root) / name
        meta_path, manifest_path = RawFolder(folder).dataset_json, RawFolder(folder).manifest
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        manifest = pd.read_csv(manifest_path) if manifest_path.is_file() else None
        digest = (
            manifest_digest(manifest)
            if manifest is not None and "sha256" in manifest
            else f"n/a (no {manifest_path.name})"
        )
        rows.append(
            {
                "dataset": name,
                "source": _short(meta.get("source", "n/a")),
                "licence": str(meta.get("licence", meta.get("license", "n/a"))),
                "files": meta.get("file_count", len(manifest) if manifest is not None else "n/a"),
                "archive_sha256": str(meta.get("archive_sha256", "n/a")),
                "manifest_sha256_digest": digest,
                "folds": str(meta.get("folds", "n/a")),
                "content": content_statement(meta),
            }
        )
    return pd.DataFrame(rows)


def content_statement(meta: dict) -> str:
    """Whether the clips' bytes were checked against published checksums (dataset.json)."""
    if "content_verified" not in meta:
        return "n/a"
    verdict = "verified" if meta["content_verified"] else "**unverified**"
    return f"{verdict}: {meta.get('content_check', '')}"


def _short(value) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def devices(bench_root: Path) -> list[dict]:
    """The distinct device.json records under the benchmarks tree."""
    seen, out = set(), []
    for path in device_files(bench_root):
        record = json.loads(path.read_text())
        key = json.dumps(record, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


def energy_methods(runs: pd.DataFrame) -> list[str]:
    cols = [c for c in ("energy_method", "bench_energy_method") if c in runs]
    return sorted({str(v) for c in cols for v in runs[c].dropna().unique()})


def energy_statement(methods: list[str]) -> str:
    """Say plainly whether energy was measured or estimated."""
    measured = [m for m in methods if any(k in m.lower() for k in MEASURED_ENERGY)]
    listed = ", ".join(f"`{m}`" for m in methods) or "none recorded"
    if measured and len(measured) == len(methods):
        return f"Energy methods: {listed}: read from hardware power counters."
    return (
        f"Energy methods recorded: {listed}. CodeCarbon found no power counters for at least "
        "part of this study (typical of a VM), so energy is **estimated** from run time and "
        "CPU load, and every energy, emission and F1-per-energy number here is an estimate."
    )


def params_block(
    params: dict,
    sections: tuple[str, ...] = ("study", "train", "features", "model", "stats", "report"),
) -> str:
    """The named params.yaml sections, as YAML."""
    chosen = {k: params[k] for k in sections if k in params}
    return yaml.safe_dump(chosen, sort_keys=False, default_flow_style=None).rstrip()


def markdown(
    commit: str,
    params: dict,
    datasets: pd.DataFrame,
    device_records: list[dict],
    methods: list[str],
) -> str:
    """The report's Provenance section."""
    lines = [
        f"- {commit_line(commit)}",
        "- " + energy_statement(methods),
        "",
        "Datasets (manifest digest = sha256 over sorted `clip_id  sha256` lines):",
        "",
        "| Dataset | Source | Licence | Files | Archive sha256 | Manifest digest | Folds "
        "| Content |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.dataset} | {r.source} | {r.licence} | {r.files} | `{r.archive_sha256}` | "
        f"`{r.manifest_sha256_digest}` | {r.folds} | {r.content} |"
        for r in datasets.itertuples()
    ]
    lines += ["", f"Devices ({len(device_records)} distinct `device.json` record(s)):", ""]
    for record in device_records or [{"device": "no device.json found"}]:
        lines += ["```json", json.dumps(record, indent=2, sort_keys=True), "```"]
    lines += ["", "Params (`params.yaml`):", "", "```yaml", params_block(params), "```"]
    return "\n".join(lines) + "\n"

"""The repository's params.yaml, and a section's config built from it as its stage builds it.

Configs have no defaults (a deleted params key fails), so tests build them from params.yaml with
only the changes they are about; tests/conftest.py puts this folder on sys.path, so test modules
use it at import time too:

    from repo_params import PARAMS, config
    CFG = config(StatsConfig, "stats", n_resamples=300)
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, TypeVar

from qmoe.io import ConfigError, from_section, load_params

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
PARAMS = load_params(ROOT / "params.yaml")


def section(path: str) -> Any:
    """params.yaml's entry at a dotted path: "stats", "features.mel"."""
    entry: Any = PARAMS
    for part in path.split("."):
        entry = entry[part]
    return entry


def config(cls: type[T], path: str, **changes: Any) -> T:
    """`cls` from params.yaml's `path` (qmoe.io.from_section), then `changes` (dataclasses.replace:
    range checks run again; a nested config is replaced by a config object)."""
    return dataclasses.replace(from_section(cls, section(path), path), **changes)


# params section -> the config its stage builds from it with qmoe.io.from_section (none has a
# default: a deleted key fails). Not here: `study` and `variants` (qmoe.contract.study), `export`
# (two configs, qmoe.deploy.folder.export_params).
SECTION_CONFIGS = {
    "download": "qmoe.datasets.registry:DownloadConfig",
    "features": "qmoe.features.embed:FeaturesConfig",
    "model": "qmoe.models:ModelConfig",
    "train": "qmoe.training.fit:TrainConfig",
    "energy": "qmoe.energy:EnergyConfig",
    "execution": "qmoe.executor:ExecutionConfig",
    "stats": "qmoe.analysis.stats:StatsConfig",
    "report": "qmoe.report.document:ReportConfig",
    "benchmark": "qmoe.bench.suite:SuiteConfig",
}


def section_config(section_name: str) -> type:
    module, name = SECTION_CONFIGS[section_name].split(":")
    return getattr(importlib.import_module(module), name)


def validate(params: dict[str, Any]) -> None:
    """Every check the stages make of params before they work (ConfigError naming the key)."""
    from qmoe.cli import SECTIONS
    from qmoe.contract.study import Study
    from qmoe.datasets import SPECS
    from qmoe.deploy.folder import export_params
    from qmoe.io import choose
    from qmoe.training.protocols import PROTOCOLS

    unknown = [k for k in params if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"params.yaml: unknown section(s) {unknown}")
    study = from_section(Study, params.get("study"), "study")
    study.configs(params.get("variants"))
    for dataset in study.datasets:
        choose(dataset, SPECS, "dataset")
    for protocol in study.protocols:
        choose(protocol, PROTOCOLS, "protocol")
    for name in SECTION_CONFIGS:
        from_section(section_config(name), params.get(name), name)
    export_params(params.get("export"))

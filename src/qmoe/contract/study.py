"""params.yaml `study`: the datasets, protocols and variants every stage runs, checked once.

    study = from_section(Study, params["study"], "study")
    study.all_variants                   # single models, then MoEs: the run folders expected
    study.configs(params["variants"])    # every study variant's resolved config (train)
    study.runs(dataset, protocol)        # the RunIds one train/export/benchmark instance covers

Every stage that reads `study` builds this, so an unknown key, an empty list or a name listed
twice fails the stage that meets it first, before it deletes or writes anything. One of
`variants` and `moe_variants` may be empty (a study of single models or of MoEs only); a study
of no variant is refused (the train stage would delete every run folder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from qmoe.io import ConfigError, require
from qmoe.variants import MoEConfig, VariantConfig, resolve

NAMED = ("datasets", "protocols", "variants", "moe_variants", "experts")


class RunId(NamedTuple):
    """One run of the study: its folder is <tree>/<dataset>/<protocol>/<variant> in every
    per-run tree (data/runs, data/deployed, data/benchmarks)."""

    dataset: str
    protocol: str
    variant: str

    def under(self, root: Path | str) -> Path:
        return Path(root) / self.dataset / self.protocol / self.variant

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.protocol}/{self.variant}"


def runs_of(dataset: str, protocol: str, variants: Iterable[str]) -> tuple[RunId, ...]:
    """The runs of one (dataset, protocol) stage instance, in `variants` order."""
    return tuple(RunId(dataset, protocol, v) for v in variants)


def instance(runs: Sequence[RunId]) -> tuple[str, str]:
    """(dataset, protocol) shared by every run of one stage instance; anything else is a bug."""
    cells = sorted({(r.dataset, r.protocol) for r in runs})
    if len(cells) != 1:
        raise ValueError(f"one stage instance covers one (dataset, protocol), got {cells}")
    return cells[0]


def variant_names(runs: Sequence[RunId]) -> list[str]:
    return [r.variant for r in runs]


@dataclass(frozen=True)
class Study:
    """The combinations the pipeline runs; `experts` is the MoEs' pool (single-model variants,
    one router output each), not a combination of its own."""

    datasets: tuple[str, ...]
    protocols: tuple[str, ...]
    variants: tuple[str, ...]  # single models
    moe_variants: tuple[str, ...]  # MoEs
    experts: tuple[str, ...]

    def __post_init__(self) -> None:
        for field in ("datasets", "protocols", "experts"):
            require(len(getattr(self, field)) > 0, f"study.{field}", "must list at least one name")
        require(
            len(self.all_variants) > 0,
            "study.variants",
            "study.variants and study.moe_variants list no variant",
        )
        for field in NAMED:
            twice = sorted(n for n, k in Counter(getattr(self, field)).items() if k > 1)
            require(not twice, f"study.{field}", f"{twice} listed more than once")
        both = sorted(set(self.variants) & set(self.moe_variants))
        require(not both, "study.moe_variants", f"{both} also listed in study.variants")

    @property
    def all_variants(self) -> tuple[str, ...]:
        return (*self.variants, *self.moe_variants)

    def combinations(self) -> list[RunId]:
        return [
            RunId(d, p, v) for d in self.datasets for p in self.protocols for v in self.all_variants
        ]

    def runs(self, dataset: str, protocol: str) -> tuple[RunId, ...]:
        """Every variant's run of one (dataset, protocol): single models, then MoEs."""
        return runs_of(dataset, protocol, self.all_variants)

    def configs(self, entries: Mapping[str, Any] | None) -> dict[str, VariantConfig]:
        """The study's variants resolved from params `variants`, in study order. Every entry is
        resolved (a typo in one outside the study fails too), and each study variant must be
        listed where its kind belongs (an MoE in moe_variants, a single model in variants)."""
        if not isinstance(entries, Mapping):
            raise ConfigError(f"variants: expected a mapping, got {type(entries).__name__}")
        # study names first: an unknown one fails naming it
        resolved = {n: resolve(n, entries, self.experts) for n in (*self.all_variants, *entries)}
        for name in self.all_variants:
            moe = isinstance(resolved[name], MoEConfig)
            if moe != (name in self.moe_variants):
                raise ConfigError(
                    f"variants.{name} is {'an' if moe else 'not an'} MoE: list it in "
                    f"study.{'moe_variants' if moe else 'variants'}"
                )
        return {name: resolved[name] for name in self.all_variants}

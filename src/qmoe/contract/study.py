"""params.yaml `study`: the datasets, protocols and variants every stage runs, checked once.

    study = from_section(Study, params["study"], "study")
    study.all_variants                   # single models, then MoEs: the run folders expected
    study.configs(params["variants"])    # every study variant's resolved config (train)

Every stage that reads `study` builds this, so an unknown key, an empty list or a name listed
twice fails the stage that meets it first, before it deletes or writes anything. One of
`variants` and `moe_variants` may be empty (a study of single models or of MoEs only); a study
of no variant is refused (the train stage would delete every run folder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qmoe.io import ConfigError, require
from qmoe.variants import MoEConfig, VariantConfig, resolve

NAMED = ("datasets", "protocols", "variants", "moe_variants", "experts")


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

    def combinations(self) -> list[tuple[str, str, str]]:
        return [(d, p, v) for d in self.datasets for p in self.protocols for v in self.all_variants]

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

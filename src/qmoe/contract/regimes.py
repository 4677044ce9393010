"""The names a timed block carries besides its model and runtime: the cache regime the call meets
and the form of an MoE that is called, and the file and column names they give (torch-free: the
benchmark writes by these names and the stats stage reads by them).

Regimes (params `benchmark.regimes`; qmoe.bench.regimes brings the core into each):
- `warm`: back-to-back calls; the head's weights stay in the core's caches between calls.
- `after_backbone`: before every timed call the core's L2 is flushed, as the backbone pass that
  precedes a deployed head does; the head then starts from a cold L2.

MoE forms (ONNX Runtime only; every other target is `whole`):
- `whole`: the model as one call (the export stage's artefact, or the torch module);
- `router`: the router graph alone (z-score, router, curiosity, TopK);
- `expert`: per clip, the artefact of the expert the MoE routes that clip to, alone;
- `host_dispatch`: the router graph, then the chosen expert's artefact, called by the host
  (qmoe.deploy.runtime.HostDispatch).
"""

from __future__ import annotations

from enum import Enum

from qmoe.io import ConfigError


class Regime(Enum):
    WARM = "warm"
    AFTER_BACKBONE = "after_backbone"


class Form(Enum):
    WHOLE = "whole"
    ROUTER = "router"
    EXPERT = "expert"
    HOST_DISPATCH = "host_dispatch"


REFERENCE_BATCH = 64  # the reference's whole-fold pass runs batches of 64 (reference-method 10.2)
MOE_FORMS = (Form.WHOLE, Form.ROUTER, Form.EXPERT, Form.HOST_DISPATCH)
EXACT_FORMS = (Form.WHOLE, Form.HOST_DISPATCH)  # the two that compute the MoE's output


def check_regimes(names: tuple[str, ...]) -> None:
    """params `benchmark.regimes`: distinct known names, `warm` first (summary.csv's unprefixed
    columns and the energy estimate are warm)."""
    valid = [r.value for r in Regime]
    distinct = len(set(names)) == len(names) and set(names) <= set(valid)
    if not (names and names[0] == Regime.WARM.value and distinct):
        raise ConfigError(
            f"benchmark.regimes: {list(names)}: distinct names of {valid}, `warm` first "
            "(summary.csv's unprefixed columns and the energy estimate are warm)"
        )


def latency_prefix(runtime: str | None, regime: Regime) -> str:
    """summary.csv column prefix: '' for the deployment runtime (None) warm, else
    '<runtime>_' and/or '<regime>_' (torch_after_backbone_latency_median_ms)."""
    parts = [runtime] if runtime else []
    parts += [] if regime is Regime.WARM else [regime.value]
    return "".join(f"{p}_" for p in parts)


def latency_folder(runtime: str | None, form: Form, regime: Regime) -> str:
    """<variant>/<folder>/fold{k}_seed{s}.npy: latency[_<runtime>][_<form>]/<regime>."""
    name = "latency" + (f"_{runtime}" if runtime else "")
    name += "" if form is Form.WHOLE else f"_{form.value}"
    return f"{name}/{regime.value}"

"""The same-weights test of uncertainty routing: on each `route` model's own trained weights,
escalating the clips u picks against escalating as many clips at random, and against none.

The train stage records, per test clip of an escalating MoE (docs/architecture.md 3, curiosity
records), `u`, `label`, the deployed set `escalated` (u > tau) and the same weights' predictions
`pred_none` (no clip escalates) and `pred_escalated` (every clip does). Any escalation set S then
predicts where(S, pred_escalated, pred_none), so every arm is scored on the same weights with no
checkpoint loaded. Per (dataset, protocol, route variant):

- `same_weights` (routing_same_weights.csv): macro-F1 escalating by u (as deployed), at random
  (the mean of the null below), none and all; u's AUROC for the errors of the no-escalation
  predictions (0.5: u does not flag them); the one-sided test that u beats random.
- `share_curve` (routing_share_curve.csv): F1 against the escalated share, escalating the
  highest-u clips or random ones (mean over draws, and the `confidence` range of the mean).

The test. Statistic: the mean over the variant's models of macro-F1 with the deployed set. Null:
for every model independently, a set of as many test clips as u escalated, uniformly at random
(the same weights: only which clips escalate changes). `draws` seeded draws give p = (1 + #{null
>= observed}) / (1 + draws) (Phipson & Smyth 2010, never 0); where the models have no more joint
sets than `draws`, every set is enumerated and p = #{sets >= observed} / #sets, exact. Holm over
the route variants of one (dataset, protocol). Interval: the observed statistic minus the null's
central `confidence` range, i.e. how far u lies from what matched random escalation gives.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from qmoe.analysis.names import COMPUTED, Family
from qmoe.analysis.results import variant_facts
from qmoe.analysis.stats import StatsConfig, holm
from qmoe.contract.runs import ModelKey
from qmoe.contract.study import RunId
from qmoe.io import InputError

FAMILY = Family.ROUTING_SAME_WEIGHTS
BASELINE = "random escalation, same count, same weights"
FIELDS = ("u", "label", "pred", "escalated", "pred_none", "pred_escalated")
SHARES = tuple(i / 20 for i in range(21))  # the curve's escalated shares: every 5 %
TIE = 1e-12  # the same F1 summed in another order still counts as reaching the observed value


class Arms(NamedTuple):
    """One route model's test clips: everything an escalation set is scored from."""

    label: np.ndarray  # (n,) int
    pred_none: np.ndarray  # (n,) int: no clip escalates
    pred_escalated: np.ndarray  # (n,) int: every clip escalates
    escalated: np.ndarray  # (n,) bool: the deployed set, u > tau
    u: np.ndarray  # (n,) float
    mismatch: int  # clips where where(escalated, ...) differs from the deployed prediction


def arms(record: dict, where: RunId, key: ModelKey) -> Arms:
    """A curiosity record's arms; a record without the fields names the model."""
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise InputError(
            f"{where.dataset}/{where.protocol}/{where.variant} {key.stem}: curiosity record "
            f"lacks {missing} (written by the train stage; rerun it)"
        )
    a = {f: np.asarray(record[f]) for f in FIELDS}
    if len({len(v) for v in a.values()}) != 1:
        raise InputError(f"{where.variant} {key.stem}: curiosity record fields differ in length")
    up = a["escalated"].astype(bool)
    composed = np.where(up, a["pred_escalated"], a["pred_none"])
    return Arms(
        a["label"].astype(int),
        a["pred_none"].astype(int),
        a["pred_escalated"].astype(int),
        up,
        a["u"].astype(float),
        int(np.sum(composed != a["pred"])),
    )


def macro_f1(arm: Arms, masks: np.ndarray) -> np.ndarray:
    """Macro-F1 (b,) of where(masks[j], pred_escalated, pred_none) for masks (b, n) bool: the
    definition of qmoe.training.metrics.scores (classes seen in labels or predictions)."""
    c = 1 + int(max(arm.label.max(), arm.pred_none.max(), arm.pred_escalated.max()))
    y, none, up = (np.eye(c)[v] for v in (arm.label, arm.pred_none, arm.pred_escalated))
    m = np.atleast_2d(masks).astype(float)  # (b, n)
    tp = (none * y).sum(0) + m @ ((up - none) * y)  # (b, c)
    denom = y.sum(0) + none.sum(0) + m @ (up - none)  # (b, c): support + predicted
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1.sum(1) / present.sum(1)


def random_ranks(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n): a uniform random permutation of 0..n-1 per row; `ranks < k` is then a set of
    k clips drawn uniformly without replacement."""
    return rng.random((draws, n)).argsort(axis=1)


def every_mask(n: int, k: int) -> np.ndarray:
    """(C(n, k), n) bool: every set of k of the n clips."""
    sets = list(itertools.combinations(range(n), k))
    masks = np.zeros((len(sets), n), dtype=bool)
    for row, chosen in enumerate(sets):
        masks[row, list(chosen)] = True
    return masks


class Permutation(NamedTuple):
    observed: float  # mean over models of F1 with the deployed (u) sets
    null: np.ndarray  # the statistic for random sets of the same sizes (draws, or every set)
    p: float  # one-sided: u better than random
    exact: bool  # every joint set enumerated


def permutation_test(models: Sequence[Arms], draws: int, seed: int) -> Permutation:
    """The one-sided same-weights test of the module docstring."""
    observed = float(np.mean([macro_f1(a, a.escalated)[0] for a in models]))
    sizes = [(len(a.label), int(a.escalated.sum())) for a in models]
    if math.prod(math.comb(n, k) for n, k in sizes) <= draws:
        total = np.zeros(1)
        for a, (n, k) in zip(models, sizes):  # every joint set: outer sums of per-model F1
            total = (total[:, None] + macro_f1(a, every_mask(n, k))[None, :]).ravel()
        null = total / len(models)
        return Permutation(observed, null, float(np.mean(null >= observed - TIE)), True)
    rng = np.random.default_rng(seed)
    null = np.mean(
        [macro_f1(a, random_ranks(n, draws, rng) < k) for a, (n, k) in zip(models, sizes)], axis=0
    )
    p = (1 + np.sum(null >= observed - TIE)) / (1 + draws)
    return Permutation(observed, null, float(p), False)


def auroc(u: np.ndarray, error: np.ndarray) -> float:
    """P(u of an error > u of a correct clip), ties 1/2 (Mann-Whitney); NaN without both."""
    n_err, n_ok = int(error.sum()), int((~error).sum())
    if n_err == 0 or n_ok == 0:
        return float("nan")
    ranks = sps.rankdata(u)
    return float((ranks[error].sum() - n_err * (n_err + 1) / 2) / (n_err * n_ok))


COLUMNS = [
    "dataset",
    "protocol",
    "variant",
    "family",
    "baseline",
    "status",
    "reason",
    "n_models",
    "n_clips",
    "share",
    "f1_u",
    "f1_random",
    "f1_none",
    "f1_all",
    "diff",
    "ci_low",
    "ci_high",
    "p",
    "p_holm",
    "exact",
    "draws",
    "diff_vs_none",
    "auroc",
    "auroc_sd",
    "n_auroc",
    "mismatch",
]
CURVE_COLUMNS = [
    "dataset",
    "protocol",
    "variant",
    "share",
    "n_models",
    "f1_u",
    "f1_random",
    "f1_random_low",
    "f1_random_high",
]


def route_models(records: list[tuple[RunId, ModelKey, dict]], runs: pd.DataFrame) -> dict:
    """{RunId: [Arms, ...]} of every `route` variant's models, in record order (the placebo's
    u is a draw, not an uncertainty: it is left out)."""
    facts = variant_facts(runs) if not runs.empty else None
    out: dict[RunId, list[Arms]] = {}
    for where, key, record in records:
        if facts.loc[where.variant, "curiosity"] == "route":
            out.setdefault(where, []).append(arms(record, where, key))
    return out


def _fixed(models: Sequence[Arms], escalate: bool) -> float:
    return float(np.mean([macro_f1(a, np.full(len(a.label), escalate))[0] for a in models]))


def _row(where: RunId, models: list[Arms], cfg: StatsConfig) -> dict:
    test = permutation_test(models, cfg.permutation_draws, cfg.permutation_seed)
    lo, hi = np.quantile(test.null, [(1 - cfg.confidence) / 2, (1 + cfg.confidence) / 2])
    aucs = np.array([auroc(a.u, a.pred_none != a.label) for a in models])
    ok = aucs[np.isfinite(aucs)]
    none = _fixed(models, False)
    return {
        **where._asdict(),
        "family": FAMILY,
        "baseline": BASELINE,
        "status": COMPUTED,
        "reason": "",
        "n_models": len(models),
        "n_clips": int(sum(len(a.label) for a in models)),
        "share": float(np.mean([a.escalated.mean() for a in models])),
        "f1_u": test.observed,
        "f1_random": float(test.null.mean()),
        "f1_none": none,
        "f1_all": _fixed(models, True),
        "diff": test.observed - float(test.null.mean()),
        "ci_low": test.observed - float(hi),
        "ci_high": test.observed - float(lo),
        "p": test.p,
        "exact": test.exact,
        "draws": len(test.null),
        "diff_vs_none": test.observed - none,
        "auroc": float(ok.mean()) if ok.size else np.nan,
        "auroc_sd": float(ok.std(ddof=1)) if ok.size > 1 else np.nan,
        "n_auroc": int(ok.size),
        "mismatch": int(sum(a.mismatch for a in models)),
    }


def same_weights(groups: dict, cfg: StatsConfig) -> pd.DataFrame:
    """routing_same_weights.csv: one row per route variant of each (dataset, protocol), Holm
    over the route variants of a (dataset, protocol)."""
    rows = [_row(where, models, cfg) for where, models in sorted(groups.items())]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for _, idx in frame.groupby(["dataset", "protocol"], sort=False).groups.items():
        frame.loc[idx, "p_holm"] = holm(frame.loc[idx, "p"].astype(float), cfg.alpha)[0]
    return frame


def _curve_rows(where: RunId, models: list[Arms], cfg: StatsConfig) -> list[dict]:
    rng = np.random.default_rng(cfg.permutation_seed)
    ranks = [random_ranks(len(a.label), cfg.permutation_draws, rng) for a in models]
    by_u = [np.argsort(np.argsort(-a.u, kind="stable")) for a in models]  # rank 0: highest u
    band = ((1 - cfg.confidence) / 2, (1 + cfg.confidence) / 2)
    rows = []
    for share in SHARES:
        ks = [round(share * len(a.label)) for a in models]
        u_f1 = [macro_f1(a, r < k)[0] for a, r, k in zip(models, by_u, ks)]
        null = np.mean([macro_f1(a, r < k) for a, r, k in zip(models, ranks, ks)], axis=0)
        lo, hi = np.quantile(null, band)
        rows.append(
            {
                **where._asdict(),
                "share": share,
                "n_models": len(models),
                "f1_u": float(np.mean(u_f1)),
                "f1_random": float(null.mean()),
                "f1_random_low": float(lo),
                "f1_random_high": float(hi),
            }
        )
    return rows


def share_curve(groups: dict, cfg: StatsConfig) -> pd.DataFrame:
    """routing_share_curve.csv: F1 against the escalated share (highest u first, or random)."""
    rows = [r for where, models in sorted(groups.items()) for r in _curve_rows(where, models, cfg)]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)

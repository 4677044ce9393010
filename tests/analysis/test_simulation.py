"""A seeded simulation of the study's design: K = 5 folds x S = 3 seeds whose models share each
fold's test clips. It shows that the fold-level corrected t-test keeps its type-I error and its
interval's coverage for any within-fold seed correlation, and that treating the 15 (fold, seed)
models as 15 resamples (J = 15, df = 14: the former treatment) does not.

Model of one replication, for one pair of variants (score differences d[k, s]):

    d[k, s] = mu + G + U[k] + E[k, s],  Var(U) = c, Var(E) = 1 - c, Var(G) = r Var(U + mean_s E)

- c: the within-fold seed correlation of the differences (0 to 0.9): seeds of one fold share its
  test clips and its training part, so their models' errors agree;
- G: shared by every fold, so the fold means are correlated with rho = r / (1 + r) exactly as
  Nadeau and Bengio assume for K-fold cross-validation, r = n_test / n_train = 1 / (K - 1).
Under this model the fold-level statistic is exactly t with K - 1 df; the J = 15 one is not.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from qmoe.analysis.pairing import Scope, pair_folds
from qmoe.analysis.stats import nadeau_bengio_ci, nadeau_bengio_ttest

K, S, REPS = 5, 3, 10_000  # 10,000 replications per correlation
RATIO = 1 / (K - 1)  # n_test / n_train of K-fold cross-validation
CORRELATIONS = np.round(np.arange(0.0, 0.91, 0.1), 1)


def simulate(c: float, mu: float, rng: np.random.Generator) -> np.ndarray:
    """(REPS, K, S) score differences of one design (see the module docstring)."""
    var_fold_mean = c + (1 - c) / S
    shared = np.sqrt(RATIO * var_fold_mean) * rng.standard_normal((REPS, 1, 1))
    fold = np.sqrt(c) * rng.standard_normal((REPS, K, 1))
    seed = np.sqrt(1 - c) * rng.standard_normal((REPS, K, S))
    return mu + shared + fold + seed


def fold_level(d: np.ndarray, mu: float) -> tuple[float, float]:
    """(type-I error of H0: mean = mu, coverage of the 95 % interval) of the fold-level test."""
    means = d.mean(axis=2)  # (REPS, K)
    p = nadeau_bengio_ttest(means - mu, RATIO).p
    lo, hi = nadeau_bengio_ci(means, RATIO, 0.95)
    return float(np.mean(p < 0.05)), float(np.mean((lo <= mu) & (mu <= hi)))


def model_level(d: np.ndarray, mu: float) -> tuple[float, float]:
    """The same for the former treatment: J = K x S 'resamples', df = J - 1."""
    flat = d.reshape(REPS, K * S)
    p = nadeau_bengio_ttest(flat - mu, RATIO).p
    lo, hi = nadeau_bengio_ci(flat, RATIO, 0.95)
    return float(np.mean(p < 0.05)), float(np.mean((lo <= mu) & (mu <= hi)))


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    rng = np.random.default_rng(20240611)
    rows = []
    for c in CORRELATIONS:
        null = simulate(c, 0.0, rng)
        shifted = simulate(c, 0.3, rng)  # coverage away from 0 too
        t1_fold, cov0_fold = fold_level(null, 0.0)
        t1_model, cov0_model = model_level(null, 0.0)
        rows.append(
            {
                "c": c,
                "type1_fold": t1_fold,
                "coverage_fold": min(cov0_fold, fold_level(shifted, 0.3)[1]),
                "type1_model": t1_model,
                "coverage_model": min(cov0_model, model_level(shifted, 0.3)[1]),
            }
        )
    return pd.DataFrame(rows).set_index("c")


def test_fold_level_test_keeps_type_one_error_and_coverage(results):
    assert len(results) * REPS >= 2000
    assert (results["type1_fold"] <= 0.06).all(), results
    assert (results["coverage_fold"] >= 0.92).all(), results


def test_the_former_fifteen_key_treatment_fails_the_same_check(results):
    """J = 15 over-rejects once seeds of a fold agree (the issue measured 7 % at 0.6, 13 % at
    0.9) and its interval under-covers; it is conservative only for independent seeds."""
    high = results.loc[0.9]
    assert high["type1_model"] > 0.10 and high["coverage_model"] < 0.90
    assert results.loc[0.6, "type1_model"] > 0.06
    assert results.loc[0.0, "type1_model"] < 0.05  # over-corrected at c = 0
    assert not ((results["type1_model"] <= 0.06) & (results["coverage_model"] >= 0.92)).all()


def test_the_simulated_statistic_is_the_one_the_stats_stage_computes():
    """One replication through the pandas path (pair by key, average seeds, corrected t)."""
    rng = np.random.default_rng(1)
    d = simulate(0.5, 0.1, rng)[0]  # (K, S)
    base = rng.random((K, S))
    rows = [
        {
            "dataset": "d",
            "protocol": "corrected",
            "variant": v,
            "fold": k + 1,
            "seed": s,
            "macro_f1": base[k, s] + (d[k, s] if v == "a" else 0.0),
            "n_test": 1,
            "n_train": 4,
        }
        for v in ("a", "b")
        for k in range(K)
        for s in range(S)
    ]
    paired = pair_folds(pd.DataFrame(rows), Scope("d", "corrected"), "a", "b", "macro_f1")
    ours = nadeau_bengio_ttest(paired.a - paired.b, paired.test_train_ratio)
    assert paired.test_train_ratio == pytest.approx(RATIO)
    assert ours.p == pytest.approx(float(nadeau_bengio_ttest(d.mean(axis=1), RATIO).p))
    assert ours.df == K - 1
    se = np.sqrt((1 / K + RATIO) * d.mean(axis=1).var(ddof=1))
    assert ours.p == pytest.approx(2 * sps.t.sf(abs(d.mean() / se), K - 1))

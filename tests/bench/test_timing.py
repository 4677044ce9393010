import numpy as np
import pytest
import torch

from qmoe.bench import timing
from qmoe.bench.timing import summarize


class CountingModel:
    def __init__(self):
        self.calls = 0
        self.shapes = set()

    def __call__(self, x):
        self.calls += 1
        self.shapes.add(tuple(x.shape))
        return x.sum(dim=1, keepdim=True)


def test_summary_statistics():
    s = summarize(np.arange(1, 101, dtype=float))
    assert s.n == 100 and s.median_ms == pytest.approx(50.5) and s.mean_ms == pytest.approx(50.5)
    assert s.iqr_ms == pytest.approx(49.5) and s.p99_ms == pytest.approx(99.01)
    assert s.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))


def test_reference_pass_runs_the_fold_once_in_batches_of_64():
    m = CountingModel()
    assert timing.reference_fold_pass(m, torch.randn(130, 4)) > 0
    assert m.calls == 3 and m.shapes == {(64, 4), (2, 4)}

import logging

import numpy as np
import pytest
import torch

from qmoe.bench import timing
from qmoe.bench.timing import BenchmarkConfig, round_robin_latency, summarize
from qmoe.io import ConfigError


class CountingModel:
    def __init__(self):
        self.calls = 0
        self.shapes = set()

    def __call__(self, x):
        self.calls += 1
        self.shapes.add(tuple(x.shape))
        return x.sum(dim=1, keepdim=True)


def test_warmup_is_excluded_and_sample_count_exact():
    a, b = CountingModel(), CountingModel()
    x = torch.randn(7, 3)
    rr = round_robin_latency({"a": a, "b": b}, {"a": x, "b": x}, warmup=13, samples=250, block=100)
    assert a.calls == b.calls == 13 + 250
    assert rr.samples_ms["a"].shape == (250,) and (rr.samples_ms["a"] > 0).all()
    assert a.shapes == {(1, 3)}  # batch 1
    # round robin: blocks of 100, 100, 50 alternate between the models
    assert rr.order == [(0, "a"), (0, "b"), (1, "a"), (1, "b"), (2, "a"), (2, "b")]


def test_nothing_but_the_model_runs_inside_the_timed_region(monkeypatch, tmp_path):
    events = []
    monkeypatch.setattr("builtins.open", lambda *a, **k: events.append("open"))
    monkeypatch.setattr(logging.Logger, "_log", lambda *a, **k: events.append("log"))
    seen = []

    def model(x):
        seen.append(events.copy())
        return x

    round_robin_latency({"m": model}, {"m": torch.randn(3, 2)}, warmup=2, samples=100, block=50)
    assert events == [] and all(e == [] for e in seen)


def test_timer_measures_the_model_call():
    def slow(x):
        import time

        time.sleep(0.002)
        return x

    rr = round_robin_latency(
        {"s": slow}, {"s": torch.zeros(1, 1)}, warmup=0, samples=100, block=100
    )
    assert 2.0 <= np.median(rr.samples_ms["s"]) < 20.0


def test_summary_statistics():
    s = summarize(np.arange(1, 101, dtype=float))
    assert s.n == 100 and s.median_ms == pytest.approx(50.5) and s.mean_ms == pytest.approx(50.5)
    assert s.iqr_ms == pytest.approx(49.5) and s.p99_ms == pytest.approx(99.01)
    assert s.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("threads", 0, "benchmark.threads: 0 not in"),
        ("samples", 10, "benchmark.samples: 10 not in"),
        ("warmup", -1, "benchmark.warmup: -1 not in \\[0, 1000000\\]"),
        ("batch_sizes", (), "benchmark.batch_sizes: \\[\\]: need one or more"),
        ("block", 0, "benchmark.block: 0 not in"),
    ],
)
def test_config_ranges(field, value, message):
    with pytest.raises(ConfigError, match=message):
        BenchmarkConfig(**{field: value})


def test_batch_latency_and_reference_pass():
    m = CountingModel()
    s = timing.batch_latency(m, torch.randn(10, 4), batch=8, warmup=3, repeats=20)
    assert s.n == 20 and m.calls == 23 and m.shapes == {(8, 4)}
    assert timing.reference_fold_pass(torch.nn.Linear(4, 3), torch.randn(130, 4)) > 0


def test_each_timed_interval_holds_exactly_one_model_call(monkeypatch):
    events = []
    ticks = iter(range(0, 10**9, 1000))

    def clock():
        events.append("clock")
        return next(ticks)

    def model(x):
        events.append("model")
        return x

    monkeypatch.setattr(timing.time, "perf_counter_ns", clock)
    rr = round_robin_latency(
        {"m": model}, {"m": torch.randn(4, 2)}, warmup=3, samples=100, block=30
    )
    assert events[:3] == ["model"] * 3  # warm-up: untimed
    assert events[3:] == ["clock", "model", "clock"] * 100  # then clock / call / clock only
    assert (rr.samples_ms["m"] == 1000 / 1e6).all()  # one tick = 1000 ns = 0.001 ms


def test_samples_are_written_in_measured_order_per_model():
    seen = []

    def model(x):
        seen.append(float(x[0, 0]))
        return x

    x = torch.arange(5, dtype=torch.float32)[:, None]
    round_robin_latency({"m": model}, {"m": x}, warmup=0, samples=100, block=100)
    assert seen == [float(i % 5) for i in range(100)]  # cycles through the test samples


def test_fixed_threads_sets_and_restores():
    before = torch.get_num_threads()
    with timing.fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="no test samples to time"):
        round_robin_latency(
            {"m": CountingModel()}, {"m": torch.zeros(0, 3)}, warmup=0, samples=100, block=100
        )


def test_reference_pass_runs_the_fold_once_in_batches_of_64():
    m = CountingModel()
    assert timing.reference_fold_pass(m, torch.randn(130, 4)) > 0
    assert m.calls == 3 and m.shapes == {(64, 4), (2, 4)}


def test_energy_block_runs_exactly_the_requested_calls():
    m = CountingModel()
    timing.run_calls(m, torch.randn(7, 3), 250)
    assert m.calls == 250 and m.shapes == {(1, 3)}

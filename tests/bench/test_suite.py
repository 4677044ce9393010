"""The side-by-side benchmark: ABBA round-robin, config checks, and a whole tiny run."""

import contextlib
import json

import numpy as np
import pandas as pd
import pytest

from qmoe.bench import blocks, suite, tree
from qmoe.bench.regimes import Cache, Flush
from qmoe.bench.runners import Target, choose
from qmoe.contract.benchmarks import Regime
from qmoe.contract.runs import ModelKey
from qmoe.contract.study import runs_of
from qmoe.energy import EnergyConfig
from qmoe.io import ConfigError

CFG = dict(
    runtimes=("onnxruntime", "torch"),
    regimes=("warm", "after_backbone"),
    flush_l2_multiple=4.0,
    threads=1,
    cpu=-1,
    models_per_fold=1,
    warmup=2,
    samples=100,
    torch_samples=20,
    block=20,
    batch_sizes=(1, 4),
    batch_repeats=5,
    energy_block_s=5.0,
    energy_repeats=1,
    sessions=1,
    nice=0,
    frontend_clips=2,
    frontend_repeats=1,
)


class FakeMeter:
    """CodeCarbon stand-in: a 30 W power model (what an estimate is)."""

    method = "codecarbon CPU estimated (cpu_load: TDP 8 W scaled by load)"

    @contextlib.contextmanager
    def measure(self, task):
        class Reading:
            duration_s = 2.0
            energy_kwh = 30.0 * 2.0 / 3.6e6

        yield Reading()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_round_robin_runs_blocks_in_abba_order_and_keeps_every_call():
    seen = []
    targets = [Target(v, ModelKey(1, 0), "onnxruntime") for v in "ABC"]
    prepared = [blocks.Prepared(t, {1: [lambda v=t.variant: seen.append(v)]}) for t in targets]
    raw, order = blocks.round_robin(prepared, 1, {t: 2 for t in targets}, turns=3)
    assert [o["variant"] for o in order] == list("ABCCBAABC")
    assert seen == [v for v in "ABCCBAABC" for _ in range(2)]
    assert all(len(v) == 6 and (v > 0).all() for v in raw.values())


class RecordingFlush(Flush):
    """A flush that also says when it ran (into the same log as the calls)."""

    def __init__(self, log):
        super().__init__(4096, 64)
        self.log = log

    def __call__(self):
        super().__call__()
        self.log.append("flush")


def test_after_backbone_flushes_before_every_call_and_warm_never():
    """Each target is timed in both regimes side by side, ABBA; an after_backbone call always
    follows a flush, a warm call never does; each (target, regime) keeps its own samples."""
    seen = []
    targets = [Target(v, ModelKey(1, 0), "onnxruntime") for v in "AB"]
    prepared = [blocks.Prepared(t, {1: [lambda v=t.variant: seen.append(v)]}) for t in targets]
    regimes = (Regime.WARM, Regime.AFTER_BACKBONE)
    flush = RecordingFlush(seen)
    raw, order = blocks.round_robin(prepared, 1, {t: 2 for t in targets}, 2, regimes, flush)
    assert [(o["variant"], o["regime"]) for o in order] == [
        ("A", "warm"), ("A", "after_backbone"), ("B", "warm"), ("B", "after_backbone"),
        ("B", "after_backbone"), ("B", "warm"), ("A", "after_backbone"), ("A", "warm"),
    ]  # fmt: skip
    w, f = ["A", "A"], ["flush", "A", "flush", "A"]
    assert seen[:12] == w + f + ["B", "B", "flush", "B", "flush", "B"]
    assert seen[12:] == ["flush", "B", "flush", "B", "B", "B", *f, *w]
    assert sorted((t.variant, r.value) for t, r in raw) == [
        ("A", "after_backbone"), ("A", "warm"), ("B", "after_backbone"), ("B", "warm"),
    ]  # fmt: skip
    assert all(len(v) == 4 for v in raw.values())


def test_flush_size_is_the_multiple_of_the_pinned_cores_l2(monkeypatch):
    monkeypatch.setattr(suite, "l2_cache", lambda cpu: Cache(512 * 1024, 64, f"cpu{cpu} fake"))
    flush, record = suite.after_backbone(3, suite.SuiteConfig(**CFG))
    assert flush.nbytes == 4 * 512 * 1024 and flush.line_bytes == 64
    assert record == {
        "l2_bytes": 524288,
        "l2_source": "cpu3 fake",
        "buffer_bytes": 2097152,
        "line_bytes": 64,
    }
    before = flush._buffer.copy()
    flush()
    changed = np.flatnonzero(flush._buffer != before)
    assert changed.tolist() == list(range(0, 2097152, 64))  # one byte in every cache line
    none, nothing = suite.after_backbone(3, suite.SuiteConfig(**{**CFG, "regimes": ("warm",)}))
    assert none is None and nothing == {}


def test_one_model_per_fold_by_default():
    keys = [ModelKey(f, s) for f in (2, 1) for s in (2, 0, 1)]
    assert choose(keys, 1) == [ModelKey(1, 0), ModelKey(2, 0)]
    assert choose(keys, 2) == [ModelKey(1, 0), ModelKey(1, 1), ModelKey(2, 0), ModelKey(2, 1)]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("runtimes", ("tensorrt",), r"benchmark.runtimes: \['tensorrt'\] not supported"),
        ("block", 30, r"benchmark.block: 30 must divide samples=100"),
        ("torch_samples", 7, r"benchmark.torch_samples: 7 must be a multiple of the 5 round-robin"),
        ("energy_block_s", 1.0, r"benchmark.energy_block_s: 1.0 < 5 s"),
        ("regimes", ("after_backbone",), r"benchmark.regimes: \['after_backbone'\]: .* `warm`"),
        ("regimes", ("warm", "cold"), r"benchmark.regimes: \['warm', 'cold'\]: distinct names"),
        ("flush_l2_multiple", 2.0, r"benchmark.flush_l2_multiple: 2.0 < 4"),
    ],
)
def test_config_refuses_bad_values(field, value, message):
    with pytest.raises(ConfigError, match=message):
        suite.SuiteConfig(**{**CFG, field: value})


def test_whole_run_writes_every_variant_side_by_side(exported_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "l2_cache", lambda cpu: Cache(16 * 1024, 64, "fake"))
    cfg = suite.SuiteConfig(**CFG)
    out = tmp_path / "bench"
    spec = runs_of("tiny", "corrected", ("fp32", "ptq_int8", "w4a8", "moe"))
    frame = tree.benchmark_tree(
        spec,
        cfg,
        EnergyConfig("IRL"),
        exported_tree["features"],
        exported_tree["runs"],
        exported_tree["deployed"],
        out,
        FakeMeter,
    )
    assert list(frame["variant"]) == [r.variant for r in spec]
    s = pd.read_csv(out / "w4a8" / "summary.csv")
    assert list(s["fold"]) == [1, 2] and s["timed"].all()  # 1 seed per fold: all timed
    assert (s["latency_n"] == 100).all() and (s["torch_latency_n"] == 20).all()
    assert (s["after_backbone_latency_n"] == 100).all()
    assert (s["torch_after_backbone_latency_n"] == 20).all()
    for sub in ("latency/warm", "latency/after_backbone"):
        assert sorted(p.name for p in (out / "w4a8" / sub).iterdir()) == [
            "fold1_seed0.npy",
            "fold2_seed0.npy",
        ]
    assert len(np.load(out / "w4a8" / "latency_torch" / "warm" / "fold1_seed0.npy")) == 20
    for form in ("router", "expert", "host_dispatch"):  # an MoE's parts, both regimes
        for regime in ("warm", "after_backbone"):
            assert len(np.load(out / "moe" / f"latency_{form}" / regime / "fold2_seed0.npy")) == 100
    assert not (out / "w4a8" / "latency_router").exists()
    # estimate: the power model's watts x this model's warm median latency, labelled as such
    assert (s["energy_method"].str.startswith("estimated: power model x time (codecarbon")).all()
    watts_x_ms = 30.0 * s["latency_median_ms"].iloc[0]  # W x ms = mJ
    assert s["energy_per_inference_mj"].iloc[0] == pytest.approx(watts_x_ms)
    assert (
        s["size_packed_bytes"].iloc[0]
        == (exported_tree["deployed"] / "w4a8" / "fold1_seed0.onnx").stat().st_size
    )
    assert (s["analytical_energy_nj"] > 0).all() and s["deployed_macro_f1"].notna().all()
    batch = pd.read_csv(out / "w4a8" / "batch_latency.csv")
    assert set(zip(batch["runtime"], batch["batch_size"], batch["regime"])) == {
        (r, b, g)
        for r in ("onnxruntime", "torch")
        for b, g in ((1, "warm"), (1, "after_backbone"), (4, "warm"))
    }
    assert pd.read_csv(out / "moe" / "routing.csv")["expert_name"].tolist()[:2] == [
        "ternary_reference",
        "w4a8",
    ]
    run = json.loads((out / "run.json").read_text())
    assert run["machine"]["lock_wait_s"] < 1 and set(run["machine"]["start"]) >= {"load_average"}
    assert run["machine"]["after_backbone"]["buffer_bytes"] == 4 * 16 * 1024
    assert run["versions"]["onnxruntime"] and run["versions"]["torch"]
    turns = [o for o in run["order"] if o["batch_size"] == 1]
    # turns x (variants x models x runtimes + MoE parts: 3 forms x 2 models) x regimes
    assert len(turns) == 5 * (4 * 2 * 2 + 3 * 2) * 2
    per_turn = len(turns) // 5
    first = [(o["variant"], o["fold"], o["runtime"], o["form"], o["regime"]) for o in turns]
    assert first[0] == ("fp32", 1, "onnxruntime", "whole", "warm")  # A ...
    assert first[1] == ("fp32", 1, "onnxruntime", "whole", "after_backbone")
    assert first[2 * per_turn - 1] == first[0] and first[2 * per_turn] == first[0]  # ... A A
    assert first[per_turn - 1] == first[per_turn] == ("moe", 2, "torch", "whole", "after_backbone")
    moe_fold1 = [f[3] for f in first[:per_turn] if f[:3] == ("moe", 1, "onnxruntime")]
    assert moe_fold1 == [f for f in ("whole", "router", "expert", "host_dispatch") for _ in (0, 1)]
    # grouped by runtime: an ONNX Runtime block never follows a torch eager one inside a turn
    ort = 2 * (3 * 2 + 4 * 2)
    assert [o["runtime"] for o in turns[:per_turn]] == ["onnxruntime"] * ort + ["torch"] * 16
    per_round = pd.read_csv(out / "rounds.csv")
    assert set(per_round["regime"]) == {"warm", "after_backbone"}
    assert len(per_round) == len(turns)
    assert not (out / "ratios.csv").exists()  # ratios are the stats stage's (qmoe.analysis.rounds)
    dev = json.loads((out / "fp32" / "device.json").read_text())
    assert dev["runtimes"] == ["onnxruntime", "torch"] and "onnxruntime" in dev
    assert dev["after_backbone"]["l2_bytes"] == 16 * 1024


def test_rapl_path_subtracts_the_idle_baseline_per_variant(monkeypatch):
    """suite.measure_rapl with the counter faked: 10 W idle; each variant's calls add their own
    energy; idle blocks and variant blocks interleaved, variants in ABBA order."""
    from qmoe.bench import rapl

    per_call, seq, last = {"A": 2e-3, "B": 5e-3}, [], [None]
    targets = {v: Target(v, ModelKey(1, 0), "onnxruntime") for v in per_call}
    prepared = [
        blocks.Prepared(t, {1: [lambda v=v: last.__setitem__(0, v)]}) for v, t in targets.items()
    ]
    samples = {  # 1 ms a call
        suite.Timed(t, 1, Regime.WARM): np.full(10, 1_000_000) for t in targets.values()
    }

    def measure(counter, work, calls, clock=None):
        last[0] = None
        work()  # idle: the (patched) sleep; busy: the calls
        v = last[0]
        seq.append(v or "idle")
        return rapl.Block(10.0 * 5.0 + (per_call[v] * calls if v else 0.0), 5.0, calls)

    monkeypatch.setattr(rapl, "measure", measure)
    monkeypatch.setattr(suite.time, "sleep", lambda s: None)
    cfg = suite.SuiteConfig(**{**CFG, "energy_repeats": 2})
    e = suite.measure_rapl(prepared, samples, cfg, counter=None)
    assert e.method == "measured: RAPL package counters, idle baseline subtracted"
    assert e.per_inference_j["A"] == pytest.approx([2e-3, 2e-3])
    assert e.per_inference_j["B"] == pytest.approx([5e-3, 5e-3])
    assert seq == ["idle", "A", "B", "idle", "B", "A"]
    assert [r["calls"] for r in e.blocks if r["kind"] == "inference"] == [5000] * 4


def test_torch_bf16_runtime_times_half_variants_in_bfloat16_from_the_fp32_weights(
    write_tree, tmp_path
):
    import torch

    from qmoe.bench import runners

    t = write_tree(["fp16", "fp32"])
    table = pd.read_parquet(t["features"] / "features.parquet")
    (tmp_path / "deployed" / "fp16").mkdir(parents=True)
    (tmp_path / "deployed" / "fp16" / "fold1_seed0.onnx").write_bytes(b"")  # not opened here
    m = runners.load("fp16", ModelKey(1, 0), t["runs"], tmp_path / "deployed", table)
    assert runners.applies(m, "torch_bf16")
    net = runners.engine(m, "torch_bf16", 1)
    assert net.net.compute_dtype == torch.bfloat16
    assert {p.dtype for p in net.net.parameters()} == {torch.bfloat16}
    logits = runners.calls(net, "torch_bf16", m.x, 2)[0]()
    assert logits.shape == (2, 3) and logits.dtype == torch.float32


def test_an_moe_without_its_host_dispatch_parts_is_refused(exported_tree):
    from qmoe.bench import runners
    from qmoe.io import InputError

    table = pd.read_parquet(exported_tree["features"] / "features.parquet")
    args = (ModelKey(1, 0), exported_tree["runs"], exported_tree["deployed"], table)
    found = runners.load("moe", *args)
    assert found.parts.router.name == "fold1_seed0.router.onnx"
    assert [p.name for p in found.parts.experts] == [
        "fold1_seed0.expert0.onnx",
        "fold1_seed0.expert1.onnx",
    ]
    assert runners.load("w4a8", *args).parts is None
    (exported_tree["deployed"] / "moe" / "fold1_seed0.expert1.onnx").unlink()
    with pytest.raises(InputError, match=r"no MoE parts \['fold1_seed0.expert1.onnx'\] \(rerun"):
        runners.load("moe", *args)

"""Every variant kind exports to an ONNX graph that holds its codes and reproduces its logits."""

import numpy as np
import onnx
import pytest
import torch
from repo_params import section

from qmoe import models
from qmoe import variants as V
from qmoe.deploy import emulate as EM
from qmoe.deploy import export as E
from qmoe.deploy import runtime as R
from qmoe.deploy import verify as VF
from qmoe.io import ConfigError, InputError, from_section
from qmoe.training.artefacts import Standardized

MLP = models.MLPConfig(in_dim=40, num_classes=5, hidden_sizes=(64, 48), dropout=0.1)  # K=40 pads
SINGLES = {
    "fp32": V.FP32Config(),
    "ptq_int8": V.PTQInt8Config(engine="auto"),
    "fp16": V.HalfConfig(dtype="float16"),
    "w1a8": V.BitLinearConfig(1),
    "w2a8": V.BitLinearConfig(2),
    "w4a8": V.BitLinearConfig(4),
    "w8a8": V.BitLinearConfig(8),
    "q16_reference": V.Q16ReferenceConfig(),
    "ternary_reference": V.TernaryReferenceConfig(0.05, 0.15),
    "bitnet158": V.BitNet158Config(),
}
POOL = tuple(V.Expert(n, SINGLES[n]) for n in ("ternary_reference", "w4a8", "w8a8"))
MOES = {
    "moe": V.MoEConfig(POOL, 1, "reference", 1e-3, V.NoCuriosity()),
    "moe_kl": V.MoEConfig(POOL, 1, "reference", 1e-3, V.KLCuriosity(10, 0.02)),
    "moe_entropy": V.MoEConfig(POOL, 1, "reference", 1e-3, V.EntropyCuriosity(10, 0.1)),
    "moe_route": V.MoEConfig(POOL, 1, "reference", 1e-3, V.RouteCuriosity(10, 0.5, "variance")),
    "moe_route_bald": V.MoEConfig(POOL, 1, "reference", 1e-3, V.RouteCuriosity(8, 0.5, "bald")),
    "moe_route_entropy": V.MoEConfig(
        POOL, 1, "reference", 1e-3, V.RouteCuriosity(8, 0.5, "entropy")
    ),
    "moe_route_random": V.MoEConfig(POOL, 1, "reference", 1e-3, V.RandomCuriosity(0.5, 3)),
    "moe_top2_log": V.MoEConfig(POOL, 2, "reference", 1e-3, V.LogCuriosity(6)),
}
CFG = E.ExportConfig(block_size=32, accuracy_level=4)
CHECK = VF.CheckConfig(
    atol=1e-5,
    rtol=1e-4,
    fp16_rtol=5e-3,
    loose_rtol=1e-2,
    min_exact_share=0.95,
    min_routing_agreement=1.0,
)
X = torch.randn(24, 40, generator=torch.Generator().manual_seed(1)) * 3 + 1


def _deployed(cfg):
    torch.manual_seed(0)
    net = models.build(cfg, MLP)
    with torch.no_grad():  # non-trivial LayerNorms, so a swapped gamma/beta would show
        for m in net.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model = models.deploy(Standardized(net, X.mean(0), X.std(0)), cfg, freeze_quantized=True)
    if isinstance(cfg, V.MoEConfig) and isinstance(
        cfg.curiosity, (V.RouteCuriosity, V.RandomCuriosity)
    ):
        model.net.calibrate_((X - model.norm_mean) / model.norm_std)  # some samples escalate
    return model


def _export(name):
    cfg = {**SINGLES, **MOES}[name]
    model = _deployed(cfg)
    ex = E.export(model, CFG)
    return model, ex, R.session(ex.proto)


@pytest.mark.parametrize("name", [*SINGLES, *MOES])
def test_artefact_holds_the_codes_and_matches_the_frozen_model(name):
    model, ex, sess = _export(name)
    v = VF.verify(model, ex, sess, X.numpy(), CFG.block_size, CHECK, f"{name} fold 1 seed 0")
    assert v.check.max_abs_diff <= v.check.bound and v.check.exact_share == 1.0
    assert v.check.routing_agreement == 1.0
    assert v.deployed_pred.shape == (24,)
    quantised = {
        "ptq_int8": 3,
        "w1a8": 2,
        "w2a8": 2,
        "w4a8": 2,
        "w8a8": 2,
        "ternary_reference": 2,
        "bitnet158": 2,
    }
    assert v.check.layers_checked == (6 if name.startswith("moe") else quantised.get(name, 0))


@pytest.mark.parametrize(
    "name, ops, bits",
    [
        ("fp32", {"MatMul"}, set()),
        ("w1a8", {"MatMulNBits"}, {2}),
        ("w2a8", {"MatMulNBits"}, {2}),
        ("w4a8", {"MatMulNBits"}, {4}),
        ("w8a8", {"MatMulNBits"}, {8}),
        ("bitnet158", {"MatMulNBits"}, {2}),
        ("ptq_int8", {"MatMulInteger", "QuantizeLinear"}, set()),
    ],
)
def test_graph_uses_the_real_kernel(name, ops, bits):
    _, ex, _ = _export(name)
    types = [n.op_type for n in ex.proto.graph.node]
    assert ops <= set(types)
    nb = [n for n in ex.proto.graph.node if n.op_type == "MatMulNBits"]
    assert {a.i for n in nb for a in n.attribute if a.name == "bits"} == bits
    assert all(a.i == 4 for n in nb for a in n.attribute if a.name == "accuracy_level")
    # float MatMul: every layer of fp32; only the FP32 head of the BitLinear kinds; none in int8
    assert types.count("MatMul") == {"fp32": 3, "ptq_int8": 0}.get(name, 1)


def test_artefact_names_say_what_they_are():
    assert _export("w1a8")[1].artefact == "MatMulNBits 2-bit holding 1-bit sign codes"
    assert (
        _export("bitnet158")[1].artefact == "MatMulNBits 2-bit holding ternary codes (BitNet b1.58)"
    )
    assert "threshold-ternary activation ops" in _export("ternary_reference")[1].artefact
    types = [n.op_type for n in _export("ternary_reference")[1].proto.graph.node]
    assert {"Abs", "ReduceMean", "Less", "Sign", "Where"} <= set(types)


def test_fp16_graph_stores_float16_and_onnx_runtime_says_how_it_computes():
    _, ex, _ = _export("fp16")
    dtypes = {t.data_type for t in ex.proto.graph.initializer if t.name.startswith("w_")}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    assert isinstance(R.keeps_fp16(ex.proto), bool)


def test_only_a_float16_graph_is_marked_half():
    """`Exported.half` selects the fp16 tolerance: a typed field, not the artefact's wording."""
    assert [name for name in SINGLES if _export(name)[1].half] == ["fp16"]


def test_moe_graph_has_routing_inside_and_one_if_per_expert():
    _, ex, sess = _export("moe_route")
    types = [n.op_type for n in ex.proto.graph.node]
    assert types.count("If") == 3 and "TopK" in types and "MatMulNBits" not in types
    assert ex.outputs == ("logits", "expert", "uncertainty")
    out = R.run(sess, X[:1].numpy())
    assert out["logits"].shape == (1, 5) and out["expert"].dtype == np.int64


def test_moe_uncertainty_equals_the_torch_banked_value_and_ignores_batch_composition():
    model, _, sess = _export("moe_kl")
    x = X.numpy()
    together = R.run(sess, x)["uncertainty"]
    alone = R.run_rows(sess, x)["uncertainty"]
    torch_u = model.net.eval()((X - model.norm_mean) / model.norm_std).uncertainty.numpy()
    assert np.allclose(together, alone, rtol=1e-5, atol=1e-9)
    assert np.allclose(together, torch_u, rtol=1e-4, atol=1e-9)


def test_tampered_codes_are_refused_naming_the_model():
    model, ex, sess = _export("w4a8")
    blob = next(t for t in ex.proto.graph.initializer if t.name == ex.weights[0].weight_name)
    arr = onnx.numpy_helper.to_array(blob).copy()
    arr[0, 0, 0] ^= 0x0F
    blob.CopyFrom(onnx.numpy_helper.from_array(arr, blob.name))
    with pytest.raises(
        VF.ArtefactRefused, match=r"^w4a8 fold 2 seed 1: net.body.0: .*codes differ"
    ):
        VF.verify(model, ex, sess, X.numpy(), 32, CHECK, "w4a8 fold 2 seed 1")


def test_logits_off_by_more_than_the_tolerance_are_refused():
    model, ex, sess = _export("fp32")
    with torch.no_grad():
        model.net.head.bias += 1e-3  # the torch model moved: the artefact no longer is it
    with pytest.raises(
        VF.ArtefactRefused,
        match=r"^fp32 fold 3 seed 0: artefact logits differ "
        r"from the frozen torch model: 0.0% of test "
        r"samples within .*, need 95% \(max diff 0.001",
    ):
        VF.verify(model, ex, sess, X.numpy(), 32, CHECK, "fp32 fold 3 seed 0")
    with torch.no_grad():
        model.net.head.bias += 1.0  # beyond the loose bound: refused on that alone
    with pytest.raises(VF.ArtefactRefused, match=r"by 1 > tolerance .* \(loose_rtol\)"):
        VF.verify(model, ex, sess, X.numpy(), 32, CHECK, "fp32 fold 3 seed 0")


def test_unsupported_bit_width_is_refused_naming_the_layer_and_the_supported_ones():
    """Configs refuse such widths (qmoe.variants); a layer built without one still is, here."""
    model = _deployed(V.BitLinearConfig(4))
    model.net.body[0].bits = 3
    with pytest.raises(
        E.ExportError,
        match=r"net.body.0: weight bits 3 has no MatMulNBits "
        r"kernel; supported: 1 .*2, 4, 8",
    ):
        E.export(model, CFG)


def test_block_emulation_equals_training_quantiser_when_one_block_spans_the_row():
    from qmoe.quant.primitives import act_absmax8

    x = torch.randn(4, 32)
    assert torch.allclose(EM.act_absmax8_blocks(x, 32), act_absmax8(x), atol=1e-6)
    assert not torch.allclose(EM.act_absmax8_blocks(x, 16), act_absmax8(x), atol=1e-6)


def test_at_batch_1_only_the_chosen_experts_matmuls_run(tmp_path):
    """ONNX Runtime's profiler: one batch-1 call of the MoE graph executes the MatMulNBits of one
    expert (its two hidden layers), not of all three."""
    import json

    import onnxruntime as ort

    _, ex, _ = _export("moe")
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    sess = ort.InferenceSession(
        ex.proto.SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    sess.run(None, {"x": X[:1].numpy()})
    events = json.loads(open(sess.end_profiling()).read())
    ran = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    kinds = [e["args"]["op_name"] for e in ran]
    assert kinds.count("MatMulNBits") == 2 and kinds.count("If") == 3


@pytest.mark.parametrize("key", list(VF.TOLERANCE_CEILINGS))
def test_a_tolerance_typo_cannot_switch_the_check_off(key):
    check = section("export.check")
    most = VF.TOLERANCE_CEILINGS[key]
    assert from_section(VF.CheckConfig, {**check, key: most}, "export.check")  # the ceiling: kept
    for bad in (1000.0, -most):
        with pytest.raises(ConfigError) as e:
            from_section(VF.CheckConfig, {**check, key: bad}, "export.check")
        assert str(e.value) == (
            f"export.check.{key}: {bad} not in [0, {most}]: a wider tolerance would pass a "
            "wrong graph"
        )


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_a_corrupted_artefact_file_is_named_in_one_line(tmp_path, damage):
    """The benchmark loads a file that a disk, a copy or a hand can damage: an InputError
    (one `error:` line from the stage), not ONNX Runtime's traceback."""
    _, ex, _ = _export("w4a8")
    data = ex.proto.SerializeToString()
    path = tmp_path / "fold1_seed0.onnx"
    path.write_bytes(data[: len(data) // 2] if damage == "cut" else b"not a model" * 10)
    with pytest.raises(InputError) as e:
        R.session(path)
    assert str(e.value) == (
        f"{path}: not a loadable ONNX model (Protobuf parsing failed.); rerun the export stage"
    )
    path.write_bytes(data)
    assert R.run(R.session(path), X[:1].numpy())["logits"].shape == (1, MLP.num_classes)

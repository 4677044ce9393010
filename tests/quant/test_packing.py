import pytest
import torch

from qmoe import models
from qmoe.quant import packing
from qmoe.quant.layers import freeze_
from qmoe.variants import resolve

VARIANTS = {
    "fp32": {"kind": "fp32"},
    "w1a8": {"kind": "bitlinear", "weight_bits": 1},
    "w2a8": {"kind": "bitlinear", "weight_bits": 2},
    "w4a8": {"kind": "bitlinear", "weight_bits": 4},
    "w8a8": {"kind": "bitlinear", "weight_bits": 8},
    "q16_reference": {"kind": "q16_reference"},
    "ternary_reference": {
        "kind": "ternary_reference",
        "act_threshold": 0.05,
        "weight_threshold": 0.15,
    },
    "bitnet158": {"kind": "bitnet158"},
}
PAPER = models.MLPConfig(in_dim=1536, num_classes=50, hidden_sizes=(640, 320), dropout=0.1)


def _net(name, mlp=PAPER):
    torch.manual_seed(0)
    return models.build(resolve(name, VARIANTS, ()), mlp)


@pytest.mark.parametrize(
    "name, kb",
    [
        ("w1a8", 241.616),
        ("w2a8", 390.096),
        ("w4a8", 687.056),
        ("w8a8", 1280.976),
        ("q16_reference", 2468.816),
        ("ternary_reference", 393.928),
    ],
)
def test_reference_size_table_is_reproduced_exactly(name, kb):
    assert packing.reference_size_bytes(_net(name)) == pytest.approx(kb * 1000, abs=1e-9)


def test_fp32_has_no_theoretical_size_and_its_file_is_about_4830_kb():
    net = _net("fp32")
    assert packing.reference_size_bytes(net) is None
    assert packing.state_dict_bytes(net) / 1000 == pytest.approx(4830.805, rel=0.002)


@pytest.mark.parametrize(
    "bits, ternary, low, high",
    [
        (1, False, -1, 1),
        (2, False, -2, 1),
        (4, False, -8, 7),
        (8, False, -128, 127),
        (2, True, -1, 1),
    ],
)
def test_pack_unpack_round_trip_is_exact(bits, ternary, low, high):
    g = torch.Generator().manual_seed(bits)
    codes = torch.randint(low, high + 1, (7, 13), generator=g).to(torch.int8)
    if bits == 1:
        codes[codes == 0] = 1
    packed = packing.pack_codes(codes, bits, ternary)
    assert packed.dtype == torch.uint8
    per = 5 if ternary else 8 // bits
    assert packed.numel() == -(-codes.numel() // per)
    assert torch.equal(packing.unpack_codes(packed, bits, ternary, (7, 13)), codes)


def test_codes_out_of_range_are_refused():
    with pytest.raises(ValueError, match="outside the 4-bit range"):
        packing.pack_codes(torch.tensor([[9]], dtype=torch.int8), 4, False)


@pytest.mark.parametrize("name", ["w1a8", "w2a8", "w4a8", "w8a8", "ternary_reference", "bitnet158"])
def test_unpacked_model_has_the_same_weights_and_predictions(name):
    mlp = models.MLPConfig(in_dim=48, num_classes=5, hidden_sizes=(32, 16), dropout=0.1)
    net = _net(name, mlp).eval()
    state = packing.pack_state(net)
    rebuilt = packing.unpack_into(_net(name, mlp), state).eval()
    x = torch.randn(20, 48)
    with torch.no_grad():
        assert torch.equal(net(x), rebuilt(x))
    ref = {
        n: m.quantized_weight()
        for n, m in freeze_(net).named_modules()
        if hasattr(m, "quantized_weight")
    }
    for n, m in rebuilt.named_modules():
        if n in ref:
            assert torch.equal(m.quantized_weight().codes, ref[n].codes)


def test_packed_files_are_small_against_fp32(tmp_path):
    fp32 = packing.state_dict_bytes(_net("fp32"))
    w4 = packing.write_artefact(_net("w4a8"), tmp_path / "w4.pt")
    tern = packing.write_artefact(_net("ternary_reference"), tmp_path / "t.pt")
    assert w4 / fp32 <= 0.15
    assert tern / fp32 <= 0.08


MOE = {
    "kind": "moe",
    "top_k": 1,
    "balance": "reference",
    "balance_alpha": 1e-3,
    "curiosity": {"mode": "none"},
}
EXPERTS = ["ternary_reference", "w4a8", "w8a8"]
SMALL = models.MLPConfig(in_dim=48, num_classes=5, hidden_sizes=(32, 16), dropout=0.1)


@pytest.mark.parametrize(
    "name", ["w1a8", "w2a8", "w4a8", "w8a8", "ternary_reference", "bitnet158", "moe", "fp32"]
)
def test_artefact_file_round_trip_gives_the_same_predictions(name, tmp_path):
    variants = {**VARIANTS, "moe": MOE}
    torch.manual_seed(1)
    net = models.build(resolve(name, variants, EXPERTS), SMALL).eval()
    size = packing.write_artefact(net, tmp_path / "a.pt")
    assert size == (tmp_path / "a.pt").stat().st_size
    template = models.build(resolve(name, variants, EXPERTS), SMALL)
    rebuilt = packing.load_artefact(tmp_path / "a.pt", template).eval()
    x = torch.randn(30, 48)
    with torch.no_grad():
        a, b = net(x), rebuilt(x)
    a, b = (a, b) if isinstance(a, torch.Tensor) else (a.logits, b.logits)
    assert torch.equal(a, b)


def test_moe_artefact_stores_every_expert_packed():
    variants = {**VARIANTS, "moe": MOE}
    net = models.build(resolve("moe", variants, EXPERTS), SMALL)
    state = packing.pack_state(net)
    packed = sorted(k for k in state if k.endswith(".packed"))
    assert len(packed) == 3 * 2  # 3 experts x 2 quantised hidden layers
    assert not any(
        k.endswith(".weight") and k.rpartition(".")[0] + ".packed" in state for k in state
    )  # no latent FP32 weight beside its packed codes


def test_packed_state_missing_a_layer_is_refused():
    net = _net("w4a8", SMALL)
    state = packing.pack_state(net)
    del state["body.0.packed"]
    with pytest.raises(ValueError, match="lacks the codes of quantised layer 'body.0'"):
        packing.unpack_into(_net("w4a8", SMALL), state)


def test_ptq_int8_artefact_is_its_serialised_state_dict_about_a_quarter_of_fp32(tmp_path):
    from qmoe.quant import ptq

    fp32 = _net("fp32")
    int8 = ptq.dynamic_int8(_net("fp32"))
    size = packing.write_artefact(int8, tmp_path / "int8.pt")
    assert size == packing.state_dict_bytes(int8)
    assert 0.24 <= size / packing.state_dict_bytes(fp32) <= 0.27  # int8 weights, FP32 rest
    assert packing.reference_size_bytes(int8) is None  # 7.7: not a BitLinear model


def test_sizes_do_not_depend_on_the_file_name(tmp_path):
    net = _net("w4a8", SMALL)
    a = packing.write_artefact(net, tmp_path / "a.pt")
    b = packing.write_artefact(net, tmp_path / "a_much_longer_artefact_name.pt")
    assert a == b == len(packing.serialise(packing.pack_state(net)))

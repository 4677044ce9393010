import pytest
import torch

from qmoe import models, packing
from qmoe.layers import freeze_

VARIANTS = {
    "fp32": {"kind": "fp32"}, "w1a8": {"kind": "bitlinear", "weight_bits": 1},
    "w2a8": {"kind": "bitlinear", "weight_bits": 2}, "w4a8": {"kind": "bitlinear", "weight_bits": 4},
    "w8a8": {"kind": "bitlinear", "weight_bits": 8}, "q16_reference": {"kind": "q16_reference"},
    "ternary_reference": {"kind": "ternary_reference"}, "bitnet158": {"kind": "bitnet158"},
}
PAPER = models.MLPConfig(in_dim=1536, num_classes=50, hidden_sizes=(640, 320), dropout=0.1)


def _net(name, mlp=PAPER):
    torch.manual_seed(0)
    return models.build(models.variant_from_params(name, VARIANTS), mlp, VARIANTS)


@pytest.mark.parametrize("name, kb", [("w1a8", 241.616), ("w2a8", 390.096), ("w4a8", 687.056),
                                      ("w8a8", 1280.976), ("q16_reference", 2468.816),
                                      ("ternary_reference", 393.928)])
def test_reference_size_table_is_reproduced_exactly(name, kb):
    assert packing.reference_size_bytes(_net(name)) == pytest.approx(kb * 1000, abs=1e-9)


def test_fp32_has_no_theoretical_size_and_its_file_is_about_4830_kb():
    net = _net("fp32")
    assert packing.reference_size_bytes(net) is None
    assert packing.state_dict_bytes(net) / 1000 == pytest.approx(4830.805, rel=0.002)


@pytest.mark.parametrize("bits, ternary, low, high", [(1, False, -1, 1), (2, False, -2, 1),
                                                      (4, False, -8, 7), (8, False, -128, 127),
                                                      (2, True, -1, 1)])
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
    ref = {n: m.quantized_weight() for n, m in freeze_(net).named_modules() if hasattr(m, "quantized_weight")}
    for n, m in rebuilt.named_modules():
        if n in ref:
            assert torch.equal(m.quantized_weight().codes, ref[n].codes)


def test_packed_files_are_small_against_fp32(tmp_path):
    fp32 = packing.state_dict_bytes(_net("fp32"))
    w4 = packing.write_artefact(_net("w4a8"), tmp_path / "w4.pt")
    tern = packing.write_artefact(_net("ternary_reference"), tmp_path / "t.pt")
    assert w4 / fp32 <= 0.15
    assert tern / fp32 <= 0.08

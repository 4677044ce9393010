import numpy as np
import onnxruntime as ort
import pytest

from qmoe.bits import QUANTISER_BITS
from qmoe.deploy import graph as G
from qmoe.deploy import nbits
from qmoe.io import ConfigError
from qmoe.variants import BitLinearConfig


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pack_unpack_round_trip_with_padding_and_per_row_scales(bits):
    rng = np.random.default_rng(bits)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes = rng.integers(lo, hi + 1, (5, 40))  # K = 40: last block padded
    scale = rng.uniform(0.1, 1.0, (5, 1)).astype(np.float32)
    w = nbits.pack(codes, scale, bits, 32)
    assert w.blob.shape == (5, 2, 32 * bits // 8) and w.blob.dtype == np.uint8
    assert np.array_equal(nbits.unpack(w), codes.astype(np.int8))
    assert np.array_equal(nbits.row_scales(w), np.repeat(scale, 2, axis=1))
    assert nbits.nbytes(w) == 5 * 2 * 32 * bits // 8 + 5 * 2 * 4


def test_known_4bit_byte_layout():
    # codes 1, -2 -> stored 9, 6 (zero point 8) -> low nibble first: 0x69
    w = nbits.pack(np.array([[1, -2] + [0] * 14]), np.float32(1.0), 4, 16)
    assert w.blob[0, 0, 0] == 0x69 and (w.blob[0, 0, 1:] == 0x88).all()


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_onnx_runtime_reads_the_blob_as_codes_times_scale(bits):
    """accuracy_level 0 (float compute): the kernel's product is x @ (codes * scale).T."""
    rng = np.random.default_rng(0)
    q = 2 ** (bits - 1) - 1
    codes = rng.integers(-q, q + 1, (6, 48))
    w = nbits.pack(codes, np.float32(0.03), bits, 16)
    g = G.Graph()
    y = G.matmul_nbits(g, "x", w, np.arange(6, dtype=np.float32), accuracy_level=0).y
    g.alias(y, "y")
    model = G.to_model(g, [G.value("x", G.FLOAT, ["b", 48])], [G.value("y", G.FLOAT, ["b", 6])])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3, 48)).astype(np.float32)
    expected = x @ (codes * np.float32(0.03)).T.astype(np.float32) + np.arange(6)
    assert np.allclose(sess.run(None, {"x": x})[0], expected, atol=1e-5)


def test_unsupported_bits_name_the_supported_ones():
    with pytest.raises(nbits.UnsupportedBits, match=r"weight bits 3 .*supported: 1 .*2, 4, 8"):
        nbits.container_bits(3)
    assert [nbits.container_bits(b) for b in (1, 2, 4, 8)] == [2, 2, 4, 8]
    assert nbits.container_bits(8, ternary=True) == 2
    with pytest.raises(nbits.UnsupportedBits, match=r"supported: \[2, 4, 8\]"):
        nbits.pack(np.zeros((1, 16)), np.float32(1), 3, 16)


@pytest.mark.parametrize("bits", list(QUANTISER_BITS))
def test_a_width_a_config_accepts_is_one_the_export_packs_and_no_other(bits):
    """The quantisers implement 1..8 bits; a variant config accepts exactly the exportable ones."""
    try:
        BitLinearConfig(weight_bits=bits)
    except ConfigError:
        with pytest.raises(nbits.UnsupportedBits):
            nbits.container_bits(bits)
    else:
        assert nbits.container_bits(bits) in nbits.SUPPORTED_BITS


def test_codes_out_of_range_and_bad_block_are_refused():
    with pytest.raises(ValueError, match=r"do not fit 2-bit \[-2, 1\]"):
        nbits.pack(np.array([[2] * 16]), np.float32(1), 2, 16)
    with pytest.raises(ValueError, match=r"block size 48 not supported"):
        nbits.pack(np.zeros((1, 16)), np.float32(1), 4, 48)


def test_model_opsets():
    g = G.Graph()
    g.alias("x", "y")
    m = G.to_model(g, [G.value("x", G.FLOAT, [1])], [G.value("y", G.FLOAT, [1])])
    assert {(o.domain, o.version) for o in m.opset_import} == {("", 17), ("com.microsoft", 1)}
    assert [n.op_type for n in m.graph.node] == ["Identity"]


@pytest.mark.parametrize("batch", [1, 8])
def test_int8_layer_accumulates_exactly_with_full_range_activations(batch):
    """7-bit activation codes: ONNX Runtime's int8 GEMM equals exact integer arithmetic even where
    a u8 x s8 kernel would saturate (AVX2 without VNNI: 255 * 127 * 2 > 32767); the float output
    equals (codes - zero point) @ weights x both scales."""
    rng = np.random.default_rng(0)
    codes = rng.integers(-127, 128, (64, 1280))  # (n, k) extreme weights: pairs overflow int16
    g = G.Graph()
    y = G.int8_linear(g, "x", codes, 0.01, None).y
    g.alias(y, "y")
    model = G.to_model(g, [G.value("x", G.FLOAT, ["b", 1280])], [G.value("y", G.FLOAT, ["b", 64])])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((batch, 1280)).astype(np.float32)
    lo, hi = min(x.min(), 0.0), max(x.max(), 0.0)
    s = np.float32((hi - lo) / G.ACT_LEVELS)
    zp = np.clip(np.round(-lo / s), 0, G.ACT_LEVELS)
    q = np.clip(np.round(x / s) + zp, 0, 255)
    assert q.max() <= G.ACT_LEVELS + 1  # 7-bit codes (a rounding at the top may give 128)
    expected = ((q - zp).astype(np.int64) @ codes.T).astype(np.float32) * (s * np.float32(0.01))
    assert np.allclose(sess.run(None, {"x": x})[0], expected, rtol=1e-6, atol=1e-4)

"""Weight blobs of ONNX Runtime's `MatMulNBits` (com.microsoft), packed and unpacked with numpy.

Layout (onnxruntime contrib op MatMulNBits, symmetric form: no zero_points input):
    B       uint8 (N, n_blocks, block * bits / 8): row n of the weight (out, in) = (N, K), cut into
            blocks of `block` along K (the last one zero-padded); codes stored unsigned as
            code + 2^(bits-1) (the op's default zero point), little-endian within a byte
            (element j of a byte sits at bits [j * bits, (j + 1) * bits)).
    scales  float32 (N * n_blocks,):
            W[n, k] = (stored - 2^(bits-1)) * scales[n * n_blocks + k // block].
BitLinear codes map exactly (reference-method.md 7.1: W_q = code * s_w, the removed mean is not
added back): every block of a layer gets the layer's per-tensor scale (or its row's scale for the
reference ternary, 7.4). 1-bit sign codes and ternary codes have no kernel of their own in ONNX
Runtime 1.31; they are stored as 2-bit codes (`container_bits`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qmoe.bits import EXPORTABLE_BITS, KERNEL_BITS

SUPPORTED_BITS = KERNEL_BITS  # MatMulNBits kernels on CPU (bits attribute)
SUPPORTED_BLOCKS = (16, 32, 64, 128, 256)


class UnsupportedBits(ValueError):
    """A weight bit-width with no MatMulNBits container; the message names the supported ones."""


def container_bits(bits: int, ternary: bool = False) -> int:
    """The MatMulNBits `bits` that stores codes of `bits` bits (ternary: 3 levels -> 2)."""
    if ternary:
        return min(SUPPORTED_BITS)
    if bits in EXPORTABLE_BITS:
        return max(bits, min(SUPPORTED_BITS))
    raise UnsupportedBits(
        f"weight bits {bits} has no MatMulNBits kernel; supported: 1 (sign, as "
        f"2-bit), ternary (as 2-bit) and {', '.join(map(str, SUPPORTED_BITS))}"
    )


def check_block(block: int) -> int:
    if block not in SUPPORTED_BLOCKS:
        raise ValueError(
            f"MatMulNBits block size {block} not supported; use one of {list(SUPPORTED_BLOCKS)}"
        )
    return block


class NBitsWeight(NamedTuple):
    blob: np.ndarray  # (N, n_blocks, block * bits / 8) uint8
    scales: np.ndarray  # (N * n_blocks,) float32
    bits: int
    block: int
    k: int  # in_features (K)
    n: int  # out_features (N)


def n_blocks(k: int, block: int) -> int:
    return -(-k // block)


def pack(codes: np.ndarray, scale: np.ndarray, bits: int, block: int) -> NBitsWeight:
    """codes (N, K) integers in [-2^(bits-1), 2^(bits-1) - 1]; scale: one value () or one per row
    (N, 1) -> the MatMulNBits blob with that scale in every block of the row."""
    if bits not in SUPPORTED_BITS:
        raise UnsupportedBits(
            f"MatMulNBits bits {bits} not supported; supported: {list(SUPPORTED_BITS)}"
        )
    check_block(block)
    codes = np.asarray(codes, dtype=np.int64)
    n, k = codes.shape
    zero = 2 ** (bits - 1)
    if codes.min() < -zero or codes.max() > zero - 1:
        raise ValueError(
            f"codes in [{codes.min()}, {codes.max()}] do not fit {bits}-bit [{-zero}, {zero - 1}]"
        )
    nb = n_blocks(k, block)
    stored = np.full((n, nb * block), zero, dtype=np.uint16)  # padding = code 0
    stored[:, :k] = codes + zero
    per = 8 // bits
    grouped = stored.reshape(n, nb, block // per, per)  # (N, nb, bytes, per)
    shifts = (np.arange(per) * bits).astype(np.uint16)
    blob = (grouped << shifts).sum(axis=-1).astype(np.uint8)  # (N, nb, bytes)
    return NBitsWeight(blob, block_scales(scale, n, nb), bits, block, k, n)


def block_scales(scale: np.ndarray, n: int, nb: int) -> np.ndarray:
    """Per-tensor () or per-row (N, 1) scale -> (N * nb,) float32, row-major by (row, block)."""
    s = np.asarray(scale, dtype=np.float32)
    if s.size == 1:
        return np.full(n * nb, s.reshape(()), dtype=np.float32)
    if s.shape not in ((n, 1), (n,)):
        raise ValueError(f"scale of shape {s.shape}: expected () or ({n}, 1)")
    return np.repeat(s.reshape(n), nb).astype(np.float32)


def unpack(w: NBitsWeight) -> np.ndarray:
    """The (N, K) int8 codes a blob holds (inverse of `pack`)."""
    per = 8 // w.bits
    shifts = (np.arange(per) * w.bits).astype(np.uint8)
    mask = np.uint8(2**w.bits - 1)
    stored = (w.blob[..., None] >> shifts) & mask  # (N, nb, bytes, per)
    stored = stored.reshape(w.n, -1)[:, : w.k].astype(np.int16)
    return (stored - 2 ** (w.bits - 1)).astype(np.int8)


def row_scales(w: NBitsWeight) -> np.ndarray:
    """(N, n_blocks) scales of a blob's blocks."""
    return w.scales.reshape(w.n, -1)


def nbytes(w: NBitsWeight) -> int:
    """Bytes the weight occupies in the artefact: packed codes plus the block scales."""
    return int(w.blob.nbytes + w.scales.nbytes)

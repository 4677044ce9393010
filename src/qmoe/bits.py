"""Weight bit-widths, in one home: what the quantisers implement and what the deployment exports.

Torch-free, so that variant configs (`qmoe.variants`, when params are resolved), the quantisers
(when a layer is built) and the ONNX export (when it packs codes) check against the same sets.
"""

from __future__ import annotations

QUANTISER_BITS = range(1, 9)  # k-bit codes that kbit_codes and BitLinear implement
KERNEL_BITS = (2, 4, 8)  # ONNX Runtime's MatMulNBits CPU kernels (its `bits` attribute)
# BitLinear widths the deployment can export: a kernel's width, or 1-bit sign codes stored in the
# 2-bit kernel. 3, 5, 6 and 7 have no kernel: a wider one would time another width.
EXPORTABLE_BITS = (1, *KERNEL_BITS)


def check_quantiser_bits(bits: int) -> None:
    """ValueError unless the quantisers implement `bits`-bit codes."""
    if bits not in QUANTISER_BITS:
        raise ValueError(
            f"weight bits {bits} not supported; use {QUANTISER_BITS[0]}..{QUANTISER_BITS[-1]}"
        )

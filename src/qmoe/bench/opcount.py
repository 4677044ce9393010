"""Analytical energy per inference: operation and weight-read counts times a published per-op
energy table. A model-based expectation to set beside measurements, never a measurement.

Table: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
Fig. 1.1.9 (45 nm, 0.9 V): integer add 8-bit 0.03 pJ, 32-bit 0.1 pJ; multiply 8-bit 0.2 pJ,
32-bit 3.1 pJ; float add 16-bit 0.4 pJ, 32-bit 0.9 pJ; float multiply 16-bit 1.1 pJ, 32-bit 3.7 pJ;
64-bit memory read: 8 kB SRAM 10 pJ, 32 kB 20 pJ, 1 MB 100 pJ, DRAM 1.3-2.6 nJ.

Model (batch 1, as deployed by qmoe.deploy): a MAC of an int8-compute layer (MatMulNBits at
accuracy_level 4, MatMulInteger) = 8-bit multiply + 32-bit add; of a float layer = float multiply
+ add of its width (fp16 as designed, although ONNX Runtime's CPU provider upcasts it); every
weight byte (packed codes and block scales for the quantised layers) is read once per inference
from a 1 MB-class cache (the study's artefacts are 0.3-4 MB; DRAM would be 13-26x more per byte).
LayerNorm, activations and the router's softmax are left out (under 1 % of the MACs).
An MoE counts its router (and, with curiosity, T more passes of its last two layers) plus each
expert weighted by how often it was chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from torch import nn

from qmoe.deploy import nbits
from qmoe.moe.layer import MoE
from qmoe.quant import ptq
from qmoe.quant.layers import BitLinear, PreNormLinear, QuantLinear

SOURCE = "Horowitz, ISSCC 2014, 45 nm (Fig. 1.1.9)"
PJ = {
    "int8_mult": 0.2,
    "int32_add": 0.1,
    "fp16_mult": 1.1,
    "fp16_add": 0.4,
    "fp32_mult": 3.7,
    "fp32_add": 0.9,
    "cache_1mb_read_64bit": 100.0,
}
MAC_PJ = {
    "int8": PJ["int8_mult"] + PJ["int32_add"],
    "fp16": PJ["fp16_mult"] + PJ["fp16_add"],
    "fp32": PJ["fp32_mult"] + PJ["fp32_add"],
}
READ_PJ_PER_BYTE = PJ["cache_1mb_read_64bit"] / 8


class Count(NamedTuple):
    macs: dict[str, float]  # precision -> multiply-accumulates per inference
    weight_bytes: float  # bytes of weights read per inference

    def __add__(self, other: Count) -> Count:  # type: ignore[override]
        macs = {
            k: self.macs.get(k, 0.0) + other.macs.get(k, 0.0)
            for k in set(self.macs) | set(other.macs)
        }
        return Count(macs, self.weight_bytes + other.weight_bytes)

    def scaled(self, w: float) -> Count:
        return Count({k: v * w for k, v in self.macs.items()}, self.weight_bytes * w)


class Energy(NamedTuple):
    compute_pj: float
    memory_pj: float
    total_nj: float
    macs: dict[str, float]
    weight_bytes: float


def _linear(m: nn.Module, block: int) -> Count | None:
    """MACs and weight bytes of one linear-like module; None for other modules."""
    if ptq.is_dynamic_int8(m):
        k, n = m.in_features, m.out_features
        return Count({"int8": k * n}, k * n)
    if isinstance(m, QuantLinear):
        n, k = m.weight.shape
        ternary = not isinstance(m, BitLinear)
        bits = nbits.container_bits(m.bits, ternary)
        nb = nbits.n_blocks(k, block)
        return Count({"int8": k * n}, n * nb * block * bits / 8 + 4 * n * nb)
    if isinstance(m, (nn.Linear, PreNormLinear)):
        n, k = m.weight.shape
        width = m.weight.element_size()
        return Count({"fp16" if width == 2 else "fp32": k * n}, k * n * width)
    return None


def count_mlp(mlp: nn.Module, block: int) -> Count:
    total = Count({}, 0.0)
    for m in mlp.modules():
        c = _linear(m, block)
        if c is not None:
            total = total + c
    return total


def count_model(net: nn.Module, block: int, frequencies: Sequence[float] | None = None) -> Count:
    """Per-inference count of a deployed network (Standardized.net); an MoE needs the share of
    samples routed to each expert (`frequencies`, summing to 1)."""
    if not isinstance(net, MoE):
        return count_mlp(net, block)
    if frequencies is None or len(frequencies) != len(net.experts):
        raise ValueError(f"an MoE needs one routing frequency per expert ({len(net.experts)})")
    r = net.router
    router = count_mlp(r, block)
    if net.strategy is not None:  # T more passes through fc2 and out (weights read once)
        tail = Count({"fp32": net.mc_samples * (r.fc2.weight.numel() + r.out.weight.numel())}, 0)
        router = router + tail
    experts = Count({}, 0.0)
    for f, e in zip(frequencies, net.experts, strict=True):
        experts = experts + count_mlp(e, block).scaled(f)
    return router + experts


def energy(count: Count) -> Energy:
    compute = sum(MAC_PJ[k] * v for k, v in count.macs.items())
    memory = READ_PJ_PER_BYTE * count.weight_bytes
    return Energy(compute, memory, (compute + memory) / 1000, count.macs, count.weight_bytes)

"""Model size: the reference's theoretical accounting (reference-method.md 7.7) and real files.

Theory (7.7): a k-bit BitLinear weight costs k bits per entry + one 32-bit scale per layer; the
reference's ternary costs 2 bits per entry + one 32-bit alpha per row; every other parameter
(biases, LayerNorms, the FP32 head, the router) 32 bits; a model without quantised layers is the
size of its serialised state dict.

Practice: `pack_state` stores each quantised layer's integer codes densely (k-bit: 8/k codes per
byte; ternary: 5 trits per byte, base 3) with its scales, and everything else as it is; the
artefact is written with torch.save and its file size measured. `unpack_into` rebuilds frozen
layers from it, and the round trip is exact (tests/test_packing.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import Tensor, nn

from qmoe.quant.layers import (
    BitLinear,
    BitNet158Linear,
    PreNormLinear,
    QuantLinear,
    TernaryReferenceLinear,
)
from qmoe.quant.primitives import QuantizedWeight

TRITS_PER_BYTE = 5  # 3**5 = 243 <= 256


def _is_ternary(layer: QuantLinear) -> bool:
    return isinstance(layer, (TernaryReferenceLinear, BitNet158Linear))


def reference_size_bytes(net: nn.Module) -> float | None:
    """7.7 accounting of `net`'s parameters in bytes; None when nothing is quantised (then the
    reference used the state-dict file size). An MoE counts router + mean expert (7.7,
    "effective size")."""
    experts = getattr(net, "experts", None)
    if isinstance(experts, nn.ModuleList):
        sizes = []
        for expert in experts:
            size = reference_size_bytes(expert)
            sizes.append(size if size is not None else state_dict_bytes(expert))
        router = 4 * sum(p.numel() for p in net.router.parameters())
        return router + sum(sizes) / len(sizes)
    bits, counted = 0, set()
    for m in net.modules():
        if isinstance(m, PreNormLinear):
            if isinstance(m, TernaryReferenceLinear):
                bits += 2 * m.weight.numel() + 32 * m.out_features
            elif isinstance(m, BitNet158Linear):
                bits += 2 * m.weight.numel() + 32  # one absmean scale (not in the reference)
            else:  # BitLinear k-bit, or the reference's "16-bit" PreNormLinear counted at 16 bits
                k = m.bits if isinstance(m, BitLinear) else 16
                bits += k * m.weight.numel() + 32
            counted.add(id(m.weight))
    if not counted:
        return None
    bits += 32 * sum(p.numel() for p in net.parameters() if id(p) not in counted)
    return bits / 8


def serialise(obj: object) -> bytes:
    """torch.save of `obj` into memory. Sizes are taken from these bytes for every model alike:
    torch.save to a path embeds the file's name in the archive, which would move sizes by a few
    hundred bytes depending on the name."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def state_dict_bytes(module: nn.Module) -> int:
    """Bytes of the serialised `module.state_dict()`, the reference's size of an unquantised
    model (7.7)."""
    return len(serialise(module.state_dict()))


# --- dense packing of integer codes -----------------------------------------------------------


def pack_codes(codes: Tensor, bits: int, ternary: bool) -> Tensor:
    """(out, in) int8 codes -> flat uint8: base-3 trits, or 8/bits unsigned codes per byte."""
    flat = codes.flatten().to(torch.int64)
    if ternary:
        digits = flat + 1  # {-1, 0, 1} -> {0, 1, 2}
        per, base = TRITS_PER_BYTE, 3
    elif bits == 1:
        digits, per, base = (flat > 0).to(torch.int64), 8, 2  # {-1, +1} -> {0, 1}
    else:
        digits, per, base = flat + 2 ** (bits - 1), 8 // bits, 2**bits
    if digits.min() < 0 or digits.max() >= base:
        raise ValueError(f"codes outside the {bits}-bit{' ternary' if ternary else ''} range")
    pad = (-len(digits)) % per
    digits = torch.cat([digits, digits.new_zeros(pad)]).view(-1, per)  # (bytes, per)
    weights = base ** torch.arange(per, dtype=torch.int64)  # (per,)
    return (digits * weights).sum(dim=1).to(torch.uint8)


def unpack_codes(packed: Tensor, bits: int, ternary: bool, shape: tuple[int, ...]) -> Tensor:
    """Inverse of `pack_codes`: flat uint8 -> (out, in) int8 codes."""
    if ternary:
        per, base = TRITS_PER_BYTE, 3
    else:
        per, base = (8, 2) if bits == 1 else (8 // bits, 2**bits)
    values = packed.to(torch.int64)[:, None] // base ** torch.arange(per, dtype=torch.int64) % base
    n = int(torch.tensor(shape).prod())
    digits = values.flatten()[:n]
    if ternary:
        codes = digits - 1
    elif bits == 1:
        codes = digits * 2 - 1
    else:
        codes = digits - 2 ** (bits - 1)
    return codes.to(torch.int8).view(shape)


def pack_state(model: nn.Module) -> dict[str, Tensor]:
    """Deployable tensors of `model`: packed codes + scales for each QuantLinear, the rest as is."""
    state: dict[str, Tensor] = {}
    skip = set()
    for name, m in model.named_modules():
        if isinstance(m, QuantLinear):
            qw = m.quantized_weight()
            state[f"{name}.packed"] = pack_codes(qw.codes, qw.bits, _is_ternary(m))
            state[f"{name}.scale"] = qw.scale
            state[f"{name}.shape"] = torch.tensor(qw.codes.shape)
            skip |= {f"{name}.weight", f"{name}.frozen_codes", f"{name}.frozen_scale"}
    for key, value in model.state_dict().items():
        if key not in skip:
            state[key] = value
    return state


PACKED_FIELDS = ("packed", "scale", "shape")


def unpack_into(template: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    """Load `pack_state` output into `template` (same architecture): each QuantLinear becomes its
    frozen twin holding the unpacked codes and scale; everything else loads as usual."""
    frozen_keys, packed_keys = set(), set()
    for name, m in list(template.named_modules()):
        if not isinstance(m, QuantLinear):
            continue
        frozen_keys |= {f"{name}.weight", f"{name}.frozen_codes", f"{name}.frozen_scale"}
        packed_keys |= {f"{name}.{field}" for field in PACKED_FIELDS}
        if f"{name}.packed" not in state:
            raise ValueError(f"packed state lacks the codes of quantised layer {name!r}")
        shape = tuple(state[f"{name}.shape"].tolist())
        codes = unpack_codes(state[f"{name}.packed"], m.bits, _is_ternary(m), shape)
        qw = QuantizedWeight(codes, state[f"{name}.scale"], m.bits)
        twin = type(m).from_quantized(qw, bias=m.bias, norm=m.norm, **m.init_kwargs())
        parent, _, child = name.rpartition(".")
        setattr(template.get_submodule(parent) if parent else template, child, twin)
    rest = {k: v for k, v in state.items() if k not in packed_keys}
    missing, unexpected = template.load_state_dict(rest, strict=False)
    missing = [k for k in missing if k not in frozen_keys]
    if unexpected or missing:
        raise ValueError(
            f"packed state does not match the model: unexpected {unexpected[:5]}, "
            f"missing {missing[:5]}"
        )
    return template


def artefact_state(model: nn.Module) -> dict[str, Tensor]:
    """What a deployment stores: packed codes where the model has quantised layers, else its
    state dict (int8 PTQ: torch's packed int8 weights; half; fp32)."""
    has_quant = any(isinstance(m, QuantLinear) for m in model.modules())
    return pack_state(model) if has_quant else model.state_dict()


def write_artefact(model: nn.Module, path: Path) -> int:
    """Write the deployable artefact of a deployed `model` to `path`; return its size in bytes
    (equal to the file's size)."""
    data = serialise(artefact_state(model))
    Path(path).write_bytes(data)
    return len(data)


def load_artefact(path: Path, template: nn.Module) -> nn.Module:
    """Rebuild a packed model from `write_artefact`'s file into `template` (same architecture,
    training form); loads with weights_only=True."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return unpack_into(template, state)

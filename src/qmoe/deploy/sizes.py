"""The deployed table's size columns: the artefact's bytes (`file_bytes`), and its weight bytes
split into the hidden layers and the head (`layer_bytes`: qmoe.contract.deployed.LAYER_COLUMNS), so
compression can be compared like with like.

The study's k-bit BitLinear models keep an FP32 head (reference 7.1) while the half-precision model
stores its head in 16 bits, so whole-file sizes compare different things. A single MLP is packed as
it is deployed (`qmoe.quant.packing.pack_state`: k-bit codes packed densely with their scales;
everything else as stored) and the tensor bytes of its hidden layers (`body.*`, pre-LayerNorms
included) are counted apart from its head (`head.*`). An MoE or a dynamic int8 model has no such
split (the cells stay empty).
"""

from __future__ import annotations

from torch import nn

from qmoe.contract.deployed import LAYER_COLUMNS
from qmoe.deploy.export import Exported
from qmoe.deploy.graph import initializers
from qmoe.models import MLP
from qmoe.quant.packing import pack_state
from qmoe.quant.ptq import is_dynamic_int8


def split_bytes(net: nn.Module) -> tuple[int, int]:
    """(hidden-layer bytes, head bytes) of a deployed MLP's packed tensors."""
    body = head = 0
    for key, t in pack_state(net).items():
        n = t.numel() * t.element_size()
        if key.startswith("head."):
            head += n
        else:
            body += n
    return body, head


def layer_bytes(model: nn.Module) -> dict[str, int | None]:
    """The deployed table's layer columns of a loaded model (a training.artefacts.Standardized)."""
    net = model.net
    if not isinstance(net, MLP) or any(is_dynamic_int8(m) for m in net.modules()):
        return dict.fromkeys(LAYER_COLUMNS)
    return dict(zip(LAYER_COLUMNS, split_bytes(net), strict=True))


def file_bytes(exported: Exported, data: bytes, fp32_file: int) -> dict[str, int]:
    """Bytes on disk, bytes of all tensors, bytes of the quantised layers (codes and scales)."""
    inits = initializers(exported.proto.graph)
    quant = {name for w in exported.weights for name in (w.weight_name, w.scale_name)}
    return {
        "size_file_bytes": len(data),
        "size_tensor_bytes": sum(len(t.raw_data) for t in inits.values()),
        "size_quantised_weight_bytes": sum(len(inits[n].raw_data) for n in quant),
        "size_fp32_file_bytes": fp32_file,
    }

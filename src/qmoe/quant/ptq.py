"""Post-training conversions of a trained FP32 network into its deployed form.

- Dynamic int8 (reference-method.md 7.5): `torch.ao.quantization.quantize_dynamic` swaps every
  nn.Linear for a dynamically quantised Linear (int8 weights, per-tensor symmetric scale;
  activations quantised per call; real int8 kernels of the fbgemm / x86 engine).
- Half precision: weights and activations in float16 or bfloat16 (the "16-bit" row measured, not
  assumed; the reference's "16-bit" is FP32, 7.2).
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from qmoe.io import SetupError
from qmoe.quant.primitives import QuantizedWeight

log = logging.getLogger(__name__)

# Preferred engines on x86 first (x86 = fbgemm + onednn), qnnpack for ARM.
ENGINE_PREFERENCE = ("x86", "fbgemm", "qnnpack")
HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def select_engine(engine: str = "auto") -> str:
    """Set torch.backends.quantized.engine (global) and return it; "auto" picks the first supported
    of ENGINE_PREFERENCE."""
    supported = torch.backends.quantized.supported_engines
    if engine == "auto":
        choices = [e for e in ENGINE_PREFERENCE if e in supported]
        if not choices:
            raise SetupError(f"no int8 engine among {ENGINE_PREFERENCE}; supported: {supported}")
        engine = choices[0]
    elif engine not in supported:
        raise SetupError(f"quantised engine {engine!r} not supported here; supported: {supported}")
    torch.backends.quantized.engine = engine
    return engine


def dynamic_int8(module: nn.Module, engine: str = "auto") -> nn.Module:
    """A copy of `module` in eval mode with every nn.Linear dynamically quantised to qint8.
    Quantised layer subclasses (BitLinear, ...) are left alone: the match is by exact type."""
    select_engine(engine)
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(
            module.eval(), {nn.Linear}, dtype=torch.qint8, inplace=False
        )


def is_dynamic_int8(module: nn.Module) -> bool:
    """True for a dynamically quantised Linear."""
    return isinstance(module, torch.ao.nn.quantized.dynamic.Linear)


def int8_weight(module: nn.Module) -> QuantizedWeight:
    """Integer form of a dynamically quantised Linear: codes (out, in) int8, scale () float32."""
    if not is_dynamic_int8(module):
        raise TypeError(f"expected a dynamic int8 Linear, got {type(module).__name__}")
    w = module.weight()  # quantised tensor, per-tensor affine
    if w.qscheme() != torch.per_tensor_affine or w.q_zero_point() != 0:
        raise ValueError(f"unexpected int8 weight scheme {w.qscheme()} zp={w.q_zero_point()}")
    return QuantizedWeight(w.int_repr().clone(), torch.tensor(w.q_scale(), dtype=torch.float32), 8)


def to_half(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast parameters and buffers of `module` to `dtype` in place, eval mode. The module must cast
    its own inputs (see models.MLP.compute_dtype)."""
    if dtype not in HALF_DTYPES.values():
        raise ValueError(f"half dtype must be one of {sorted(HALF_DTYPES)}, got {dtype}")
    return module.to(dtype).eval()

"""Linear layers of the study (layer 2 of 3): thin nn.Linear subclasses over qmoe.quant.primitives.

Every layer normalises its input first (pre-LayerNorm, reference-method.md 7.1), uses Xavier-uniform
weights and zero biases, and computes in floating point ("fake quantisation": accuracy effects are
real, speed is not). Each quantised layer exposes its deployable integer form:

    qw = layer.quantized_weight()          # QuantizedWeight(codes int8 (out, in), scale, bits)
    qw.dequantize()                         # == the weight the forward pass uses, bit for bit
    twin = type(layer).from_quantized(qw, bias=layer.bias, norm=layer.norm, **layer.init_kwargs())
    # twin(x) == layer(x): the frozen twin stores codes * scale once (no per-call re-quantisation)

`freeze_(model)` swaps every training-form quantised layer of a model for its frozen twin: the
weights are then quantised once, as a deployment would, instead of on every call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qmoe.bits import check_quantiser_bits
from qmoe.quant import primitives
from qmoe.quant.primitives import QuantizedWeight


class PreNormLinear(nn.Linear):
    """LayerNorm(in) -> Linear, plain FP32: the reference's "16-bit" layer (7.2), no rounding."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.norm = nn.LayerNorm(in_features)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def quantize_input(self, x: Tensor) -> Tensor:
        return x

    def forward_weight(self) -> Tensor:
        return self.weight

    def forward(self, x: Tensor) -> Tensor:
        """x (b, in) -> (b, out)."""
        return F.linear(self.quantize_input(self.norm(x)), self.forward_weight(), self.bias)


class QuantLinear(PreNormLinear):
    """Base of the quantised layers: subclasses define `weight_codes` and `quantize_input`.

    Training form: the latent FP32 `weight` is quantised on every forward with an STE.
    Frozen form (`from_quantized`): buffers hold codes and scale, and `weight` (no gradient) holds
    codes * scale, computed once; that is the forward weight.
    """

    bits: int

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("frozen_codes", None)  # (out, in) int8 in the frozen form
        self.register_buffer("frozen_scale", None)  # () or (out, 1)

    def weight_codes(self) -> tuple[Tensor, Tensor]:
        """(codes (out, in) float, scale) of the current latent weight."""
        raise NotImplementedError

    def init_kwargs(self) -> dict:
        """Constructor arguments beyond (in, out, bias), to rebuild the same layer."""
        return {}

    def forward_weight(self) -> Tensor:
        if self.frozen_codes is not None:
            return self.weight  # == frozen codes * scale, set once
        codes, scale = self.weight_codes()
        return primitives.ste(self.weight, codes * scale)  # value codes * scale, gradient to W

    @torch.no_grad()
    def quantized_weight(self) -> QuantizedWeight:
        """Deployable form: codes (out, in) int8, scale () or (out, 1), bits per code."""
        if self.frozen_codes is not None:
            return QuantizedWeight(self.frozen_codes.clone(), self.frozen_scale.clone(), self.bits)
        codes, scale = self.weight_codes()
        return QuantizedWeight(codes.to(torch.int8), scale.detach().clone(), self.bits)

    @classmethod
    def from_quantized(
        cls,
        qw: QuantizedWeight,
        bias: Tensor | None = None,
        norm: nn.LayerNorm | None = None,
        **kwargs,
    ) -> QuantLinear:
        """Frozen layer whose forward weight is `qw.codes * qw.scale`, computed once into `weight`
        (requires_grad False). `norm` (or a fresh LayerNorm) is copied in."""
        out_features, in_features = qw.codes.shape
        layer = cls(in_features, out_features, bias=bias is not None, **kwargs)
        with torch.no_grad():
            layer.weight.copy_(qw.dequantize())
            if bias is not None:
                layer.bias.copy_(bias)
            if norm is not None:
                layer.norm.load_state_dict(norm.state_dict())
        layer.weight.requires_grad_(False)
        layer.frozen_codes = qw.codes.to(torch.int8).clone()
        layer.frozen_scale = qw.scale.clone()
        return layer

    def frozen_twin(self) -> QuantLinear:
        """The frozen form of this layer (itself if already frozen)."""
        if self.frozen_codes is not None:
            return self
        return type(self).from_quantized(
            self.quantized_weight(), bias=self.bias, norm=self.norm, **self.init_kwargs()
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, frozen={self.frozen_codes is not None}"


class BitLinear(QuantLinear):
    """Reference k-bit BitLinear (7.1): pre-LN, 8-bit absmax activations per sample, per-tensor
    centred weights (1-bit: sign, no scale; k >= 2: absmax with 2^(k-1) - 1 positive levels)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, weight_bits: int):
        check_quantiser_bits(weight_bits)
        self.bits = weight_bits
        super().__init__(in_features, out_features, bias=bias)

    def init_kwargs(self) -> dict:
        return {"weight_bits": self.bits}

    def quantize_input(self, x: Tensor) -> Tensor:
        return primitives.act_absmax8(x)

    def weight_codes(self) -> tuple[Tensor, Tensor]:
        return primitives.kbit_codes(self.weight, self.bits)


class TernaryReferenceLinear(QuantLinear):
    """The reference's threshold-ternary layer (7.4): ternary activations (threshold
    `act_threshold` * mean|x| per sample, no scale), weights centred per row, threshold
    `weight_threshold` * mean|W_c| per row, alpha_row = mean |W_c| over the non-zero codes."""

    bits = 2

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        act_threshold: float = 0.05,
        weight_threshold: float = 0.15,
    ):
        self.act_threshold, self.weight_threshold = act_threshold, weight_threshold
        super().__init__(in_features, out_features, bias=bias)

    def init_kwargs(self) -> dict:
        return {"act_threshold": self.act_threshold, "weight_threshold": self.weight_threshold}

    def quantize_input(self, x: Tensor) -> Tensor:
        return primitives.act_ternary_threshold(x, self.act_threshold)

    def weight_codes(self) -> tuple[Tensor, Tensor]:
        return primitives.ternary_threshold_codes(self.weight, self.weight_threshold)


class BitNet158Linear(QuantLinear):
    """BitNet b1.58 (arXiv 2402.17764): absmean ternary weights (one scale per tensor), 8-bit absmax
    activations per sample; pre-LN and an FP32 bias kept, as in the reference's expert MLP."""

    bits = 2

    def quantize_input(self, x: Tensor) -> Tensor:
        return primitives.act_absmax8(x)

    def weight_codes(self) -> tuple[Tensor, Tensor]:
        return primitives.absmean_ternary_codes(self.weight)


def freeze_(model: nn.Module) -> nn.Module:
    """Replace every QuantLinear in `model` (in place) by its frozen twin; returns the model (or the
    twin, when `model` is itself a QuantLinear). Outputs are unchanged bit for bit."""
    if isinstance(model, QuantLinear):
        return model.frozen_twin()
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, QuantLinear)]
    for name, layer in targets:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer.frozen_twin())
    return model

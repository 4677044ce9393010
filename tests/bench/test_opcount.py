"""Analytical energy from op counts (Horowitz, ISSCC 2014): exact counts, constants as published."""

import pytest
import torch

from qmoe import models
from qmoe import variants as V
from qmoe.bench import opcount

MLP = models.MLPConfig(in_dim=256, num_classes=10, hidden_sizes=(128, 64), dropout=0.1)


def _net(cfg):
    torch.manual_seed(0)
    return models.deploy(models.build(cfg, MLP), cfg, freeze_quantized=True)


def test_published_constants():
    assert opcount.MAC_PJ == {
        "int8": pytest.approx(0.3),
        "fp16": pytest.approx(1.5),
        "fp32": pytest.approx(4.6),
    }
    assert opcount.READ_PJ_PER_BYTE == 12.5


def test_fp32_counts_every_weight_as_fp32():
    c = opcount.count_model(_net(V.FP32Config()), block=128)
    macs = 256 * 128 + 128 * 64 + 64 * 10
    assert c.macs == {"fp32": macs} and c.weight_bytes == 4 * macs
    e = opcount.energy(c)
    assert e.total_nj == pytest.approx((4.6 * macs + 12.5 * 4 * macs) / 1000)


def test_4bit_reads_half_the_bytes_of_8bit_at_the_same_int8_macs():
    c4 = opcount.count_model(_net(V.BitLinearConfig(4)), block=128)
    c8 = opcount.count_model(_net(V.BitLinearConfig(8)), block=128)
    hidden = 256 * 128 + 128 * 64
    assert c4.macs == c8.macs == {"int8": hidden, "fp32": 64 * 10}  # FP32 head
    scales = 4 * (128 * 2 + 64 * 1)  # one per (row, 128-block)
    assert c4.weight_bytes == hidden / 2 + scales + 4 * 640
    assert c8.weight_bytes == hidden + scales + 4 * 640
    assert opcount.energy(c4).total_nj < opcount.energy(c8).total_nj


def test_moe_weights_experts_by_routing_frequency_and_counts_mc_passes():
    pool = (V.Expert("w4a8", V.BitLinearConfig(4)), V.Expert("w8a8", V.BitLinearConfig(8)))
    cfg = V.MoEConfig(pool, 1, "reference", 1e-3, V.LogCuriosity(10))
    net = _net(cfg)
    c = opcount.count_model(net, 128, [0.25, 0.75])
    e4 = opcount.count_mlp(net.experts[0], 128)
    e8 = opcount.count_mlp(net.experts[1], 128)
    router = 256 * 128 + 128 * 64 + 64 * 2
    assert c.macs["fp32"] == pytest.approx(router + 10 * (128 * 64 + 64 * 2) + 64 * 10)
    experts = 0.25 * e4.weight_bytes + 0.75 * e8.weight_bytes
    assert c.weight_bytes == pytest.approx(4 * router + experts)
    with pytest.raises(ValueError, match="one routing frequency per expert"):
        opcount.count_model(net, 128)

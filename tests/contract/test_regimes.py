"""The names cache regimes and MoE forms give to summary columns and sample folders
(qmoe.contract.benchmarks)."""

import pytest

from qmoe.contract import benchmarks
from qmoe.contract.benchmarks import Form, Regime


@pytest.mark.parametrize(
    "runtime, regime, prefix",
    [
        (None, Regime.WARM, ""),
        (None, Regime.AFTER_BACKBONE, "after_backbone_"),
        ("torch", Regime.WARM, "torch_"),
        ("torch", Regime.AFTER_BACKBONE, "torch_after_backbone_"),
    ],
)
def test_summary_prefixes(runtime, regime, prefix):
    assert benchmarks.latency_prefix(runtime, regime) == prefix


def test_sample_folders():
    assert benchmarks.latency_folder(None, Form.WHOLE, Regime.WARM) == "latency/warm"
    assert (
        benchmarks.latency_folder(None, Form.HOST_DISPATCH, Regime.AFTER_BACKBONE)
        == "latency_host_dispatch/after_backbone"
    )
    assert benchmarks.latency_folder("torch", Form.WHOLE, Regime.WARM) == "latency_torch/warm"

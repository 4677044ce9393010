"""The MoE split for host dispatch: the router graph plus per-expert artefacts give the one-graph
artefact's expert and logits for every clip, at batch 1 and batched; a wrong part is refused."""

import numpy as np
import pytest
import torch

from qmoe.deploy import dispatch, runtime
from qmoe.deploy.export import ExportConfig, export
from qmoe.training.artefacts import load_trained

CFG = ExportConfig(block_size=16, accuracy_level=4)


def _moe(run_tree_of, name="moe"):
    tree = run_tree_of([name])
    loaded = load_trained(tree["runs"] / name / "fold1_seed0.pt", frozen=True)
    x = np.random.default_rng(0).normal(1.0, 2.0, (40, 24)).astype(np.float32)
    return loaded.model, x


def _host(parts: dispatch.Parts) -> runtime.HostDispatch:
    experts = [runtime.session(p) for p in parts.experts]
    return runtime.HostDispatch(runtime.session(parts.router), experts)


def test_host_dispatch_gives_the_one_graph_expert_and_logits_for_every_clip(run_tree_of):
    model, x = _moe(run_tree_of)
    one = runtime.session(export(model, CFG).proto)
    parts = dispatch.split(model, CFG)
    assert set(parts.named()) == {"router", "expert0", "expert1"}
    host = _host(parts)
    found = dispatch.agree(one, host, x, 1e-6, "tiny moe")
    assert found.expert_agreement == 1.0 and found.max_abs_diff <= 1e-6
    whole = runtime.run_rows(one, x)
    assert len(set(whole["expert"].tolist())) == 2  # both experts get clips: both paths checked
    # one call on the whole batch groups the rows by expert, as the one graph's `If`s do
    batched, graph = host(x), runtime.run(one, x)
    np.testing.assert_array_equal(batched["expert"], graph["expert"])
    np.testing.assert_allclose(batched["logits"], graph["logits"], atol=1e-6, rtol=0)


def test_the_router_graph_alone_routes_like_the_moe(run_tree_of):
    model, x = _moe(run_tree_of)
    router = runtime.session(dispatch.split(model, CFG).router)
    index, gates = router.run(["index", "gates"], {"x": x})
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    np.testing.assert_array_equal(index[:, 0], out.expert_index[:, 0].numpy())
    top = out.routing_probs.max(dim=1).values.numpy()
    np.testing.assert_allclose(gates[:, 0], top, rtol=1e-5)


def test_parts_that_route_differently_are_refused(run_tree_of):
    model, x = _moe(run_tree_of)
    one = runtime.session(export(model, CFG).proto)
    parts = dispatch.split(model, CFG)
    swapped = parts._replace(experts=parts.experts[::-1])  # expert artefacts in the wrong slots
    with pytest.raises(dispatch.DispatchError, match=r"tiny moe: host dispatch .* disagrees"):
        dispatch.agree(one, _host(swapped), x, 1e-6, "tiny moe")


def test_split_refuses_a_single_model(run_tree_of):
    tree = run_tree_of(["w4a8"])
    loaded = load_trained(tree["runs"] / "w4a8" / "fold1_seed0.pt", frozen=True)
    with pytest.raises(TypeError, match="split needs an MoE, got MLP"):
        dispatch.split(loaded.model, CFG)

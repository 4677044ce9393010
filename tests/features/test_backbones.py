"""Backbones and heads (qmoe.features.backbones)."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F
from repo_params import config, section
from skimage import data

from qmoe.features import FeaturesConfig, band_stats, build_backbone, load_lite0, random_projection
from qmoe.features.backbones import IMAGENET_MEAN, IMAGENET_STD, band_quantiles
from qmoe.io import ConfigError, from_section

CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def imagenet_input(rgb_uint8, size: int = 224) -> torch.Tensor:
    """(H, W, 3) uint8 photo -> (1, 3, size, size) ImageNet-normalised tensor."""
    x = torch.from_numpy(rgb_uint8).permute(2, 0, 1).float()[None] / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def test_lite0_weights_are_real_imagenet_weights():
    model = load_lite0()
    with torch.inference_mode():
        probs = model(imagenet_input(data.chelsea())).softmax(dim=1)[0]  # (1000,)
    assert probs.argmax().item() in CAT_CLASSES  # scikit-image's chelsea is a cat
    assert probs[list(CAT_CLASSES)].sum().item() > 0.5


def test_lite0_backbone_gives_the_pooled_features_of_the_classifier():
    bb = build_backbone(
        config(FeaturesConfig, "features", backbone="efficientnet_lite0", normalize="none")
    )
    assert (bb.name, bb.dim, bb.image_size) == ("efficientnet_lite0", 1280, 224)
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    model = load_lite0()
    with torch.inference_mode():
        z = bb.net(x)  # (2, 1280)
        torch.testing.assert_close(model._fc(z), model(x))  # pooled features feed the FC
    assert z.shape == (2, 1280)


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(ConfigError) as e:
        from_section(FeaturesConfig, {**section("features"), "backbone": "resnet50"}, "features")
    msg = str(e.value)
    assert "features.backbone 'resnet50'" in msg
    for name in ("efficientnet_lite0", "efficientnet_b3", "logmel_stats"):
        assert name in msg


def test_efficientnet_b3_fails_fast_and_clearly_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty weights cache

    def no_network(url, dst, *args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(RuntimeError) as e:
        build_backbone(config(FeaturesConfig, "features", backbone="efficientnet_b3"))
    msg = str(e.value)
    assert msg.startswith(
        "efficientnet_b3 needs torchvision's IMAGENET1K_V1 weights, which could not be "
        "downloaded (<urlopen error [Errno -2] Name or service not known>)"
    )
    assert "use backbone efficientnet_lite0 (offline)" in msg
    assert f"efficientnet_b3_rwightman-b3899882.pth in {tmp_path}/hub/checkpoints" in msg


def test_logmel_stats_summarises_each_band():
    bb = build_backbone(config(FeaturesConfig, "features", backbone="logmel_stats"))
    assert (bb.dim, bb.image_size) == (128 * 9, None)
    db = -80.0 * torch.rand(128, 500, generator=torch.Generator().manual_seed(0))
    v = band_stats(db)  # (1152,)
    assert v.shape == (bb.dim,)
    blocks = v.view(9, 128)  # mean | std | min | max | q10 | q25 | q50 | q75 | q90
    torch.testing.assert_close(blocks[0], db.mean(dim=1))
    torch.testing.assert_close(blocks[2], db.amin(dim=1))
    torch.testing.assert_close(blocks[3], db.amax(dim=1))
    torch.testing.assert_close(blocks[6], db.median(dim=1).values, atol=0.5, rtol=0)


def test_band_quantiles_equal_torch_quantile():
    db = torch.randn(16, 101, generator=torch.Generator().manual_seed(0))
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    torch.testing.assert_close(band_quantiles(db, qs), torch.quantile(db, torch.tensor(qs), dim=1))


def test_random_projection_is_seeded():
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    a, b, c = random_projection(64, 0), random_projection(64, 0), random_projection(64, 1)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))
        assert not torch.allclose(a(x), c(x))
    bound = 1 / 64**0.5  # nn.Linear's default init range
    assert a.weight.abs().max().item() <= bound and a.bias.abs().max().item() <= bound


def test_efficientnet_b3_gives_the_pooled_features_of_its_classifier(monkeypatch):
    from torchvision.models import efficientnet_b3

    from qmoe.features import backbones

    torch.manual_seed(0)
    reference = efficientnet_b3().eval()  # random weights stand in for the downloaded ones
    monkeypatch.setattr(backbones, "b3_state_dict", lambda: reference.state_dict())
    bb = build_backbone(
        config(FeaturesConfig, "features", backbone="efficientnet_b3", normalize="none")
    )
    assert (bb.name, bb.dim, bb.image_size) == ("efficientnet_b3", 1536, 300)
    x = torch.rand(1, 3, 300, 300, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        z = bb.net(x)  # (1, 1536)
        torch.testing.assert_close(reference.classifier(z), reference(x))

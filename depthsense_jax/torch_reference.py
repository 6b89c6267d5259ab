"""The DepthNet architecture in plain PyTorch, for `depthsense bench model --compare`.

Imported only when asked for (torch is an optional dependency). Torchvision's ResNet layout,
the same fusion decoder as `models/fusion.py`; NCHW.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from depthsense_jax.models.resnet import BOTTLENECK_EXPANSION, STAGES


class _Basic(nn.Module):
    def __init__(self, cin: int, c: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.down = None
        if stride != 1 or cin != c:
            self.down = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu((x if self.down is None else self.down(x)) + y)


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, c: int, stride: int):
        super().__init__()
        out = c * BOTTLENECK_EXPANSION
        self.conv1 = nn.Conv2d(cin, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.down = None
        if stride != 1 or cin != out:
            self.down = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False),
                                      nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu((x if self.down is None else self.down(x)) + y)


class _FTB(nn.Module):
    def __init__(self, cin: int, m: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, m, 3, padding=1)
        self.branch_conv1 = nn.Conv2d(m, m, 3, padding=1)
        self.branch_bn = nn.BatchNorm2d(m)
        self.branch_conv2 = nn.Conv2d(m, m, 3, padding=1)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        return F.relu(h + self.branch_conv2(F.relu(self.branch_bn(self.branch_conv1(h)))))


def _up(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class TorchDepthNet(nn.Module):
    """(B, 3, H, W) -> (B, H, W), as `models.DepthNet` (ImageNet normalisation included)."""

    def __init__(self, encoder_depth: int = 50, width: int = 64, fusion_channels: int = 256):
        super().__init__()
        kind, blocks = STAGES[encoder_depth]
        block = _Basic if kind == "basic" else _Bottleneck
        expansion = BOTTLENECK_EXPANSION if kind == "bottleneck" else 1
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, cin, channels = [], width, []
        for i, count in enumerate(blocks):
            c = width * 2**i
            layers = []
            for j in range(count):
                layers.append(block(cin, c, 2 if i > 0 and j == 0 else 1))
                cin = c * expansion
            stages.append(nn.Sequential(*layers))
            channels.append(cin)
        self.stages = nn.ModuleList(stages)
        f = fusion_channels
        self.top_ftb = _FTB(channels[3], 2 * f)
        self.top_conv = nn.Conv2d(2 * f, f, 3, padding=1)
        self.ffm = nn.ModuleList(
            nn.ModuleList([_FTB(c, f), _FTB(f, f)]) for c in reversed(channels[:3])
        )
        self.out_conv1 = nn.Conv2d(f, f // 2, 3, padding=1)
        self.out_bn = nn.BatchNorm2d(f // 2)
        self.out_conv2 = nn.Conv2d(f // 2, 1, 3, padding=1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images):
        x = (images - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        x = _up(self.top_conv(self.top_ftb(feats[3])))
        for (ftb1, ftb2), low in zip(self.ffm, reversed(feats[:3]), strict=True):
            x = _up(ftb2(ftb1(low) + x))
        x = self.out_conv2(F.relu(self.out_bn(self.out_conv1(x))))
        return _up(x)[:, 0]

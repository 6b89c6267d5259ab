"""DepthNet in plain PyTorch: the DepthNet family's `torch_peer`, timed by `depthsense speed
model --compare` and the reference of the Flax model's tests (the one PyTorch copy of the
architecture; torchvision is not a dependency). It imports torch (the [compare] extra): only
those paths import this module.

Encoder (`TorchResNet`): module and state-dict names follow torchvision's `resnet.py`:
`conv1`, `bn1`, `maxpool`, `layer1..layer4` of `BasicBlock` (ResNet-18/34) or `Bottleneck`
(ResNet-50/101, v1.5: the stride sits on the 3x3 conv), each with an optional `downsample` =
Sequential(1x1 conv, BN), then `avgpool` and `fc`. `width` is the first stage's channel count
(64 in torchvision); stage i has width * 2**i planes. `forward_features` returns the four
stage outputs C2..C5 (NCHW).

Decoder (`TorchFusionDecoder`): the ReDWeb feature-fusion decoder, its modules named as the
Flax ones (`top_ftb`, `top_conv`, `ffm4`, `ffm3`, `ffm2`, `output`), so that
`load_flax_variables` copies a Flax DepthNet's variables in by name.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from depthsense_jax.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD

BLOCKS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class TorchResNet(nn.Module):
    def __init__(self, depth: int = 50, width: int = 64, num_classes: int = 1000):
        super().__init__()
        kind, counts = BLOCKS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, counts[0], 1)
        self.layer2 = self._make_layer(block, width * 2, counts[1], 2)
        self.layer3 = self._make_layer(block, width * 4, counts[2], 2)
        self.layer4 = self._make_layer(block, width * 8, counts[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

    def _make_layer(self, block, planes: int, count: int, stride: int) -> nn.Sequential:
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(conv1x1(self.inplanes, out, stride), nn.BatchNorm2d(out))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        layers += [block(out, planes) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5 = self.forward_features(x)[-1]
        return self.fc(torch.flatten(self.avgpool(c5), 1))


def make_resnet(depth: int = 18, width: int = 64, seed: int = 0) -> TorchResNet:
    """A TorchResNet in eval mode with random conv/fc weights, random BN affine params and
    random BN running statistics (positive variances).

    The running statistics are the batch statistics of one random batch (so that activations
    stay O(1) through 100 layers, as in a trained network, and a small error anywhere shows at
    the output), then randomly perturbed: var * U(0.5, 2), mean + 0.2 N(0, 1) sqrt(var).
    """
    torch.manual_seed(seed)
    model = TorchResNet(depth, width)
    gen = torch.Generator().manual_seed(seed + 1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
            elif isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.2 * torch.randn(n, generator=gen))
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.01, generator=gen)
                module.bias.normal_(0.0, 0.01, generator=gen)
        # Calibrate: momentum=None makes the running stats the (cumulative) batch statistics.
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        model.forward_features(torch.randn(4, 3, 64, 64, generator=gen))
        for bn in norms:
            n = bn.num_features
            bn.momentum = 0.1
            bn.running_var.mul_(0.5 + 1.5 * torch.rand(n, generator=gen)).clamp_(min=1e-3)
            bn.running_mean.add_(0.2 * torch.randn(n, generator=gen) * bn.running_var.sqrt())
            bn.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))
    return model.eval()


# ---------------------------------------------------------------------------------- decoder


def conv3x3_bias(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=True)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """The authors' upsampling: bilinear, align_corners=True."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class FTB(nn.Module):
    """h = relu(conv1(x)); relu(h + branch_conv2(relu(branch_bn(branch_conv1(h)))))."""

    def __init__(self, in_ch: int, features: int):
        super().__init__()
        self.conv1 = conv3x3_bias(in_ch, features)
        self.branch_conv1 = conv3x3_bias(features, features)
        self.branch_bn = nn.BatchNorm2d(features)
        self.branch_conv2 = conv3x3_bias(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x))
        branch = self.branch_conv2(F.relu(self.branch_bn(self.branch_conv1(h))))
        return F.relu(h + branch)


class FFM(nn.Module):
    def __init__(self, low_ch: int, features: int):
        super().__init__()
        self.ftb1 = FTB(low_ch, features)
        self.ftb2 = FTB(features, features)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return upsample2x(self.ftb2(self.ftb1(low) + high))


class AdaptiveOutput(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = conv3x3_bias(features, features // 2)
        self.bn = nn.BatchNorm2d(features // 2)
        self.conv2 = conv3x3_bias(features // 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2x(self.conv2(F.relu(self.bn(self.conv1(x)))))


class TorchFusionDecoder(nn.Module):
    def __init__(self, channels: tuple[int, int, int, int], features: int = 256):
        super().__init__()
        c2, c3, c4, c5 = channels
        self.top_ftb = FTB(c5, 2 * features)
        self.top_conv = conv3x3_bias(2 * features, features)
        self.ffm4 = FFM(c4, features)
        self.ffm3 = FFM(c3, features)
        self.ffm2 = FFM(c2, features)
        self.output = AdaptiveOutput(features)

    def forward(self, feats) -> torch.Tensor:
        c2, c3, c4, c5 = feats
        x = upsample2x(self.top_conv(self.top_ftb(c5)))
        x = self.ffm4(c4, x)
        x = self.ffm3(c3, x)
        x = self.ffm2(c2, x)
        return self.output(x)


class TorchDepthNet(nn.Module):
    """(B, 3, H, W) images in [0, 1] -> (B, H, W), as `depthsense_jax.models.DepthNet`
    (ImageNet normalisation inside)."""

    def __init__(self, encoder_depth: int = 50, width: int = 64, fusion_channels: int = 256):
        super().__init__()
        self.encoder = TorchResNet(encoder_depth, width)
        expansion = 1 if BLOCKS[encoder_depth][0] == "basic" else Bottleneck.expansion
        channels = tuple(width * 2**i * expansion for i in range(4))
        self.decoder = TorchFusionDecoder(channels, fusion_channels)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.encoder.forward_features((images - self.mean) / self.std)
        return self.decoder(feats)[:, 0]


def _flax_to_torch_name(path: tuple[str, ...]) -> tuple[str, str]:
    """Flax variable path (collection, module..., field) -> (torch module path, torch
    field): layer1_0 -> layer1.0, downsample_conv/bn -> downsample.0/1, kernel -> weight,
    BatchNorm scale/bias/mean/var -> weight/bias/running_mean/running_var."""
    collection, *modules, field = path
    names = []
    for m in modules:
        if m.startswith("layer") and "_" in m:
            names += m.split("_", 1)
        elif m == "downsample_conv":
            names += ["downsample", "0"]
        elif m == "downsample_bn":
            names += ["downsample", "1"]
        else:
            names.append(m)
    torch_field = {"kernel": "weight", "scale": "weight", "bias": "bias",
                   "mean": "running_mean", "var": "running_var"}[field]
    return ".".join(names), torch_field


def load_flax_variables(net: TorchDepthNet, variables: dict) -> None:
    """Copy a Flax DepthNet's {"params", "batch_stats"} into `net`, every tensor exactly
    once (a KeyError or a shape error otherwise); conv kernels (kh, kw, I, O) -> (O, I, kh,
    kw)."""
    state = net.state_dict()
    filled = set()
    flat = {}

    def walk(tree, prefix):
        for k, v in tree.items():
            if isinstance(v, dict) or hasattr(v, "items"):
                walk(v, (*prefix, k))
            else:
                flat[(*prefix, k)] = np.asarray(v, np.float32)

    walk(dict(variables), ())
    for path, value in flat.items():
        module, field = _flax_to_torch_name(path)
        key = f"{module}.{field}"
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)
        if tuple(state[key].shape) != value.shape:
            raise ValueError(f"{key}: torch {tuple(state[key].shape)}, flax {value.shape}")
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
        filled.add(key)
    left = [k for k in state if k not in filled and not k.endswith("num_batches_tracked")
            and k not in ("mean", "std") and not k.startswith("encoder.fc.")]
    if left:
        raise ValueError(f"torch tensors not filled from the Flax variables: {left}")
    net.load_state_dict(state)

"""Depth Anything V1/V2 (DINOv2 ViT encoder, patch 14, + DPT head) in plain PyTorch, a test
reference only: the tests load a released checkpoint (`depth_anything_v2_vits.pth`, ...) or
random weights into it and compare the package's JAX port against it.

Written from the structure and state-dict key names of the original releases, not copied:
DepthAnything/Depth-Anything-V2, files `depth_anything_v2/dpt.py` (DPTHead, DepthAnythingV2),
`depth_anything_v2/util/blocks.py` (_make_scratch, ResidualConvUnit, FeatureFusionBlock),
`depth_anything_v2/dinov2.py` (DinoVisionTransformer, as built by `DINOv2(...)`: patch 14,
LayerScale init 1.0, block_chunks=0, no register tokens, interpolate offset 0.1, no
antialias) and `depth_anything_v2/dinov2_layers/` (attention, block, layer_scale, mlp,
patch_embed); and LiheYoung/Depth-Anything, `depth_anything/dpt.py` (V1: the same head and
keys, DINOv2 from torch hub, features from the last four blocks). `model.state_dict()` has the
released keys and shapes (`pretrained.*`, `depth_head.*`); `use_clstoken=False`, `use_bn=False`
as in the releases, so no `readout_projects` / batch-norm keys.

Plain softmax attention (the path the original takes without xFormers), exact GELU, LayerNorm
eps 1e-6. Input: (B, 3, H, W) already ImageNet-normalised, H and W multiples of 14. Output:
(B, H, W) relative inverse depth, `relu(head(...)).squeeze(1)`. V1 additionally resizes the
head's output to (H, W) with bilinear align_corners=True before the ReLU; for H, W multiples of
14 that is the identity and is left out. Needs torch only (no torchvision/xformers/transformers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 14
VARIANTS: dict[str, dict] = {
    "vits": dict(
        embed_dim=384, depth=12, num_heads=6, features=64, out_channels=[48, 96, 192, 384]
    ),
    "vitb": dict(
        embed_dim=768, depth=12, num_heads=12, features=128, out_channels=[96, 192, 384, 768]
    ),
    "vitl": dict(
        embed_dim=1024, depth=24, num_heads=16, features=256, out_channels=[256, 512, 1024, 1024]
    ),
}


def v2_layers(variant: str) -> list[int]:
    """Blocks V2's head reads (`intermediate_layer_idx` in Depth-Anything-V2's dpt.py)."""
    return {"vits": [2, 5, 8, 11], "vitb": [2, 5, 8, 11], "vitl": [4, 11, 17, 23]}[variant]


def v1_layers(depth: int) -> list[int]:
    """Blocks V1's head reads: the last four (`get_intermediate_layers(x, 4)`)."""
    return list(range(depth - 4, depth))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, num_heads)
        self.ls1, self.norm2 = LayerScale(dim), nn.LayerNorm(dim, eps=1e-6)
        self.mlp, self.ls2 = Mlp(dim, 4 * dim), LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, h*w, D), row-major patches


class DINOv2(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, pos_grid: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pos_grid * pos_grid, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # in the checkpoint, never used here

    def interpolate_pos_encoding(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The original's rule; (h, w) are the image's height and width in pixels (the original
        unpacks them as `B, nc, w, h`, so its `w0` is the row count used here as `h0`)."""
        npatch, n = x.shape[1] - 1, self.pos_embed.shape[1] - 1
        if npatch == n and h == w:
            return self.pos_embed
        pos = self.pos_embed.float()
        dim, sqrt_n = x.shape[-1], math.sqrt(n)
        h0, w0 = h // PATCH + 0.1, w // PATCH + 0.1
        grid = pos[:, 1:].reshape(1, int(sqrt_n), int(sqrt_n), dim).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid, scale_factor=(h0 / sqrt_n, w0 / sqrt_n), mode="bicubic", antialias=False
        )
        assert grid.shape[-2:] == (int(h0), int(w0))
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((pos[:, :1], grid), dim=1).to(x.dtype)

    def get_intermediate_layers(self, x: torch.Tensor, layers: Sequence[int]) -> list:
        """LayerNorm-ed patch tokens (B, h*w, D) after each block in `layers`."""
        _, _, h, w = x.shape
        t = self.patch_embed(x)
        t = torch.cat((self.cls_token.expand(t.shape[0], -1, -1), t), dim=1)
        t = t + self.interpolate_pos_encoding(t, h, w)
        out = []
        for i, blk in enumerate(self.blocks):
            t = blk(t)
            if i in layers:
                out.append(self.norm(t)[:, 1:])
        assert len(out) == len(layers)
        return out


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)  # unused by refinenet4 (one input)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, *xs: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        out = xs[0] if len(xs) == 1 else xs[0] + self.resConfUnit1(xs[1])
        out = self.resConfUnit2(out)
        resize = {"scale_factor": 2} if size is None else {"size": tuple(size)}
        out = F.interpolate(out, **resize, mode="bilinear", align_corners=True)
        return self.out_conv(out)


class DPTHead(nn.Module):
    def __init__(self, in_ch: int, features: int, out_channels: Sequence[int]) -> None:
        super().__init__()
        oc = list(out_channels)
        self.projects = nn.ModuleList(nn.Conv2d(in_ch, c, 1) for c in oc)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = nn.Module()
        for i, c in enumerate(oc, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FeatureFusionBlock(features))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(32, 1, 1), nn.ReLU(True), nn.Identity(),
        )  # fmt: skip

    def forward(self, feats: Sequence[torch.Tensor], ph: int, pw: int) -> torch.Tensor:
        s = self.scratch
        rn = []
        for i, x in enumerate(feats):
            x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], ph, pw)
            x = self.resize_layers[i](self.projects[i](x))
            rn.append(getattr(s, f"layer{i + 1}_rn")(x))
        p = s.refinenet4(rn[3], size=rn[2].shape[2:])
        p = s.refinenet3(p, rn[2], size=rn[1].shape[2:])
        p = s.refinenet2(p, rn[1], size=rn[0].shape[2:])
        p = s.refinenet1(p, rn[0])
        out = s.output_conv1(p)
        out = F.interpolate(out, (ph * PATCH, pw * PATCH), mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnythingRef(nn.Module):
    """`DepthAnythingV2` (or V1's `DPT_DINOv2`, with `layers=v1_layers(depth)`)."""

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        features: int,
        out_channels: Sequence[int],
        layers: Sequence[int],
        pos_grid: int = 37,
    ) -> None:
        super().__init__()
        self.layers = list(layers)
        self.pretrained = DINOv2(embed_dim, depth, num_heads, pos_grid)
        self.depth_head = DPTHead(embed_dim, features, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        feats = self.pretrained.get_intermediate_layers(x, self.layers)
        return F.relu(self.depth_head(feats, ph, pw)).squeeze(1)


@torch.no_grad()
def healthy_init_(model: DepthAnythingRef, seed: int = 0) -> DepthAnythingRef:
    """Random weights at a scale that keeps activations O(1) through the whole network (the
    default init gives a near-constant map, or all zeros after the final ReLU), deterministic
    in `seed`; weights N(0, 1/fan_in), biases N(0, 0.1), LayerNorm 1 + N(0, 0.1), LayerScale
    N(0.5, 0.1), tokens and position embedding N(0, 0.5)."""
    g = torch.Generator().manual_seed(seed)

    def normal_(p: torch.Tensor, mean: float, std: float) -> None:
        p.copy_(mean + std * torch.randn(p.shape, generator=g))

    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            k = m.weight[0, 0].numel()
            if isinstance(m, nn.ConvTranspose2d):  # inputs per output pixel: in_ch*(k/stride)^2
                fan_in = m.weight.shape[0] * k // math.prod(m.stride)
            else:
                fan_in = m.weight.shape[1] * k if m.weight.ndim == 4 else m.weight.shape[1]
            normal_(m.weight, 0.0, fan_in**-0.5)
            if m.bias is not None:
                normal_(m.bias, 0.0, 0.1)
        elif isinstance(m, nn.LayerNorm):
            normal_(m.weight, 1.0, 0.1)
            normal_(m.bias, 0.0, 0.1)
        elif isinstance(m, LayerScale):
            normal_(m.gamma, 0.5, 0.1)
        elif isinstance(m, DINOv2):
            for p in (m.cls_token, m.pos_embed, m.mask_token):
                normal_(p, 0.0, 0.5)
    # The last conv's pre-ReLU output has a seed-dependent offset of either sign (its 32 inputs
    # are ReLU outputs), so a fixed bias leaves ~0% or ~100% of pixels positive. Calibrate it
    # once on a fixed random image instead: afterwards ~60% of the pixels are > 0.
    last = model.depth_head.scratch.output_conv2[2]
    grid = min(math.isqrt(model.pretrained.pos_embed.shape[1] - 1), 8)
    pre: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda _m, _i, out: pre.append(out.clone()))
    model(torch.randn(1, 3, PATCH * grid, PATCH * (grid + 2), generator=g))
    hook.remove()
    last.bias -= torch.quantile(pre[0].flatten(), 0.4)
    return model

"""The PyTorch loss formulas people use today, for the loss tests and `depthsense speed
losses --compare`: the pytorch-ssim SSIM map (the seed's SSIM), a straight PyTorch ranking
loss and a MiDaS-style scale-and-shift-invariant loss."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def pytorch_ssim_map(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11,
                     sigma: float = 1.5, c1: float = 0.01**2, c2: float = 0.03**2,
                     ) -> torch.Tensor:
    """pytorch-ssim: (B, C, H, W) pairs -> SSIM map, zero padding window_size // 2, 2-D
    Gaussian window, grouped conv."""
    channels = img1.shape[1]
    offsets = torch.arange(window_size, dtype=img1.dtype) - window_size // 2
    g = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    g = (g / g.sum())[:, None]
    window = (g @ g.t()).expand(channels, 1, window_size, window_size).contiguous()
    pad = window_size // 2

    def conv(a):
        return F.conv2d(a, window, padding=pad, groups=channels)

    mu1, mu2 = conv(img1), conv(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = conv(img1 * img1) - mu1_sq
    sigma2_sq = conv(img2 * img2) - mu2_sq
    sigma12 = conv(img1 * img2) - mu1_mu2
    return ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )


def pytorch_ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 1 - pytorch_ssim_map(pred, target).mean()


def ranking_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 num_pairs: int, generator: torch.Generator, sigma: float = 0.02,
                 ) -> torch.Tensor:
    """Sample `num_pairs` pairs among each image's valid pixels, label them by the depth
    ratio, log-loss on ordered pairs and squared difference on equal ones; mean per image,
    then over images. pred, target: (B, 1, H, W); mask: (B, H, W) bool."""
    pred_flat, target_flat = pred.reshape(pred.shape[0], -1), target.reshape(pred.shape[0], -1)
    total = 0.0
    valid_idx = [torch.nonzero(m)[:, 0] for m in mask.reshape(mask.shape[0], -1)]
    for i, idx in enumerate(valid_idx):
        sel = idx[torch.randint(len(idx), (2, num_pairs), generator=generator)]
        ratio = target_flat[i, sel[0]] / target_flat[i, sel[1]]
        r = (ratio >= 1 + sigma).float() - (ratio <= 1 / (1 + sigma)).float()
        diff = pred_flat[i, sel[0]] - pred_flat[i, sel[1]]
        total = total + torch.where(r != 0, F.softplus(-r * diff), diff**2).mean()
    return total / len(valid_idx)


def scale_shift_invariant_loss(pred: torch.Tensor, target: torch.Tensor,
                               mask: torch.Tensor) -> torch.Tensor:
    """MiDaS-style: least-squares scale and shift per image, then mean |residual| over the
    mask. pred, target: (B, 1, H, W); mask: (B, H, W) bool."""
    m = mask[:, None].float()
    a00, a01, a11 = (m * pred * pred).sum((1, 2, 3)), (m * pred).sum((1, 2, 3)), m.sum((1, 2, 3))
    b0, b1 = (m * pred * target).sum((1, 2, 3)), (m * target).sum((1, 2, 3))
    det = a00 * a11 - a01 * a01
    scale = (a11 * b0 - a01 * b1) / det
    shift = (-a01 * b0 + a00 * b1) / det
    residual = (scale[:, None, None, None] * pred + shift[:, None, None, None] - target).abs()
    return ((residual * m).sum((1, 2, 3)) / a11).mean()

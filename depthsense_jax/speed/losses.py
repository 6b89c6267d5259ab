"""`depthsense speed losses`: compile, forward and forward+backward time of every loss,
optionally beside the PyTorch formulas people use (kornia, pytorch-ssim, plain PyTorch)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from depthsense_jax import losses, sampling
from depthsense_jax.speed import reference, timing

ALL_PARTS = {name: 1.0 for name in losses.LOSS_NAMES}
NAMES = (*losses.LOSS_NAMES, "combined")


@dataclasses.dataclass
class Reference:
    """A PyTorch equivalent timed in the same run; speedup = its fwd+bwd time / ours."""

    name: str
    forward_ms: float
    forward_backward_ms: float
    speedup: float


@dataclasses.dataclass
class LossTiming:
    name: str
    compile_s: float
    forward_ms: float
    forward_backward_ms: float
    references: list[Reference] = dataclasses.field(default_factory=list)


def make_batch(batch: int, size: int, seed: int = 0,
               width: int | None = None) -> dict[str, np.ndarray]:
    """A deterministic benchmark batch: smooth random depth with a step, a textured image
    that follows it, a mask with an invalid band, and a noisy prediction.

    Returns image (B, S, W, 3) float32 in [0, 1], depth and pred (B, S, W) float32, mask
    bool; W = `width`, default S.
    """
    rng = np.random.default_rng(seed)
    width = width or size
    yy, xx = np.mgrid[0:size, 0:width].astype(np.float32) / max(size, width)
    depth = np.empty((batch, size, width), np.float32)
    for b in range(batch):
        a, c, f = rng.uniform(0.2, 1.0, 3)
        depth[b] = 0.2 + 0.5 * (a * yy + c * xx) / 2 + 0.2 * (xx > f * 0.8) * (yy > 0.3)
    texture = rng.uniform(0, 1, (batch, size, width, 3)).astype(np.float32)
    image = np.clip(0.6 * depth[..., None] + 0.4 * texture, 0, 1).astype(np.float32)
    mask = np.ones((batch, size, width), bool)
    mask[:, : size // 10] = False  # a "sky" band
    pred = depth + rng.normal(0, 0.1, depth.shape).astype(np.float32)
    return {"image": image, "depth": depth, "mask": mask, "pred": pred}


def _loss_fns(key: jax.Array, num_pairs: int, num_anchors: int) -> dict[str, Callable]:
    """name -> f(pred, batch) -> scalar, for each loss as a training step would call it."""
    pairs_key, edge_key = jax.random.split(key)

    def ranking(pred, b):
        pairs = sampling.random_pairs(pairs_key, b["mask"], num_pairs)
        return losses.ranking_loss(pred, b["depth"], pairs, mask=b["mask"])

    def edge(pred, b):
        return losses.edge_guided_ranking_loss(
            edge_key, pred, b["depth"], b["image"], b["mask"], num_anchors=num_anchors
        )

    options = {"num_pairs": num_pairs, "num_anchors": num_anchors}
    return {
        "ssim": lambda pred, b: losses.ssim_loss(pred, b["depth"]),
        "smoothness": lambda pred, b: losses.inverse_depth_smoothness_loss(pred, b["image"]),
        "ranking": ranking,
        "edge_guided_ranking": edge,
        "scale_shift": lambda pred, b: losses.scale_shift_invariant_loss(
            pred, b["depth"], b["mask"]
        ),
        "gradient_matching": lambda pred, b: losses.gradient_matching_loss(
            pred, b["depth"], b["mask"]
        ),
        "combined": lambda pred, b: losses.combined_loss(key, pred, b, ALL_PARTS, options)[0],
    }


def bench_losses(
    batch: int = 8,
    size: int = 384,
    repeats: int = 20,
    warmup: int = 3,
    compare: bool = False,
    only: list[str] | None = None,
    num_pairs: int = 300,
    num_anchors: int = 100,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> list[LossTiming]:
    """Time each loss's forward and forward+backward (gradient w.r.t. the prediction)."""
    names = list(only) if only else list(NAMES)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ValueError(f"--only names unknown loss(es) {unknown}; choose from {list(NAMES)}")
    data = make_batch(batch, size)
    pred = jnp.asarray(data.pop("pred"))
    b = {k: jnp.asarray(v) for k, v in data.items()}
    fns = _loss_fns(jax.random.PRNGKey(0), num_pairs, num_anchors)
    torch_refs = _torch_references(data, np.asarray(pred), num_pairs) if compare else {}
    results = []
    for name in names:
        log(f"[speed] {name}: compiling ...")
        fwd, t_fwd = timing.compile_timed(fns[name], pred, b)
        grad, t_grad = timing.compile_timed(jax.value_and_grad(fns[name]), pred, b)
        value = float(fwd(pred, b))
        if not np.isfinite(value):
            raise RuntimeError(f"{name} gave a non-finite loss {value} on the benchmark batch")
        result = LossTiming(
            name=name,
            compile_s=t_fwd + t_grad,
            forward_ms=timing.time_call(fwd, pred, b, repeats=repeats, warmup=warmup),
            forward_backward_ms=timing.time_call(grad, pred, b, repeats=repeats,
                                                 warmup=warmup),
        )
        log(f"[speed] {name}: fwd {result.forward_ms:.1f} ms, fwd+bwd "
            f"{result.forward_backward_ms:.1f} ms")
        results.append(result)
    # PyTorch after all of ours: its OpenMP threads keep spinning for a while after each
    # parallel region, which slowed whichever of our losses was timed next (scale_shift
    # measured 17.7 ms fwd+bwd that way, 4.0 ms alone).
    for result in results:
        for ref_name, ref_fwd, ref_grad in torch_refs.get(result.name, []):
            log(f"[speed] {result.name}: timing {ref_name} ...")
            ref_grad_ms = timing.median_ms(ref_grad, repeats, warmup)
            result.references.append(Reference(
                name=ref_name,
                forward_ms=timing.median_ms(ref_fwd, repeats, warmup),
                forward_backward_ms=ref_grad_ms,
                speedup=ref_grad_ms / result.forward_backward_ms,
            ))
    return results


def _torch_references(data: dict, pred: np.ndarray, num_pairs: int) -> dict:
    """name -> [(reference name, forward thunk, forward+backward thunk)], in PyTorch."""
    torch = reference.require_torch()
    from depthsense_jax.speed import torch_losses as refs

    try:
        import kornia
    except ImportError as err:
        raise ValueError(f"--compare needs kornia ({err}); pip install -e '.[compare]'") from None
    p = torch.tensor(pred)[:, None].requires_grad_(True)
    t = torch.tensor(data["depth"])[:, None]
    img = torch.tensor(data["image"]).permute(0, 3, 1, 2).contiguous()
    mask = torch.tensor(data["mask"])
    generator = torch.Generator().manual_seed(0)

    def pair(loss_fn):
        def fwd():
            with torch.no_grad():
                loss_fn()

        def fwd_bwd():
            p.grad = None
            loss_fn().backward()

        return fwd, fwd_bwd

    table = {
        "ssim": [
            ("kornia.losses.ssim_loss", lambda: kornia.losses.ssim_loss(p, t, 11)),
            ("pytorch-ssim formula", lambda: refs.pytorch_ssim_loss(p, t)),
        ],
        "smoothness": [
            ("kornia.losses.inverse_depth_smoothness_loss",
             lambda: kornia.losses.inverse_depth_smoothness_loss(p, img)),
        ],
        "ranking": [("PyTorch ranking loss",
                     lambda: refs.ranking_loss(p, t, mask, num_pairs, generator))],
        "scale_shift": [("PyTorch MiDaS-style SSI",
                         lambda: refs.scale_shift_invariant_loss(p, t, mask))],
    }
    return {name: [(label, *pair(fn)) for label, fn in entries]
            for name, entries in table.items()}


def format_table(results: list[LossTiming], batch: int, size: int) -> str:
    header = (
        f"losses at batch {batch}, {size}x{size} ({jax.default_backend()}, "
        f"{jax.devices()[0].device_kind})\n"
        f"{'loss':<22}{'compile s':>10}{'fwd ms':>10}{'fwd+bwd ms':>12}"
    )
    if any(r.references for r in results):
        header += "   (ratio = PyTorch time / ours)"
    lines = [header, "-" * len(header.splitlines()[-1])]
    for r in results:
        lines.append(
            f"{r.name:<22}{r.compile_s:>10.2f}{r.forward_ms:>10.2f}{r.forward_backward_ms:>12.2f}"
        )
        for ref in r.references:
            lines.append(
                f"{'  vs PyTorch':<22}{'':>10}{ref.forward_ms:>10.2f}"
                f"{ref.forward_backward_ms:>12.2f}   {ref.name} (fwd+bwd ratio {ref.speedup:.1f}x)"
            )
    return "\n".join(lines)

"""Time each convolution of DepthNet alone: forward, input gradient and weight gradient in
JAX (XLA's), and the same in PyTorch when it is installed (docs/benchmarks.md, "Convolutions
on CPU").

    python scripts/conv_layers.py --model r50            # ResNet-50 at 384 px, batch 4
    python scripts/conv_layers.py --model r18            # ResNet-18 at 128 px, batch 8
    DEPTHSENSE_KEEP_XLA_CPU_FLAGS=1 python scripts/conv_layers.py   # XLA's YNNPACK convs

Milliseconds, median of `--repeats` after one warm-up. Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import depthsense_jax
from depthsense_jax.speed.timing import median_ms

NHWC = ("NHWC", "HWIO", "NHWC")

# (batch, input size, Cin, Cout, kernel, stride) of each distinct convolution.
SHAPES = {
    "r50": [(4, 384, 3, 64, 7, 2), (4, 96, 64, 64, 3, 1), (4, 96, 128, 128, 3, 2),
            (4, 48, 128, 128, 3, 1), (4, 24, 256, 256, 3, 1), (4, 12, 512, 512, 3, 1),
            (4, 12, 2048, 512, 3, 1), (4, 24, 1024, 256, 3, 1), (4, 48, 512, 256, 3, 1),
            (4, 48, 256, 256, 3, 1), (4, 96, 256, 256, 3, 1), (4, 192, 256, 128, 3, 1),
            (4, 192, 128, 1, 3, 1)],
    "r18": [(8, 128, 3, 64, 7, 2), (8, 32, 64, 64, 3, 1), (8, 32, 64, 128, 3, 2),
            (8, 16, 128, 128, 3, 1), (8, 8, 256, 256, 3, 1), (8, 4, 512, 512, 3, 1),
            (8, 32, 64, 256, 3, 1), (8, 32, 256, 256, 3, 1), (8, 16, 256, 256, 3, 1),
            (8, 64, 256, 128, 3, 1), (8, 64, 128, 1, 3, 1)],
}


def _median_ms(fn, repeats: int) -> float:
    return median_ms(fn, repeats, warmup=1)


def jax_times(shape, repeats: int) -> list[float]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    b, n, cin, cout, k, s = shape
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((b, n, n, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, cin, cout)) * 0.05, jnp.float32)
    pads = (((k - 1) // 2,) * 2,) * 2

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (s, s), pads, dimension_numbers=NHWC)

    dy = jnp.asarray(rng.standard_normal(conv(x, w).shape), jnp.float32)
    calls = [
        (jax.jit(conv), (x, w)),
        (jax.jit(lambda x, w, dy: jax.vjp(lambda v: conv(v, w), x)[1](dy)[0]), (x, w, dy)),
        (jax.jit(lambda x, w, dy: jax.vjp(lambda v: conv(x, v), w)[1](dy)[0]), (x, w, dy)),
    ]
    return [_median_ms(lambda f=f, a=a: jax.block_until_ready(f(*a)), repeats)
            for f, a in calls]


def torch_times(shape, repeats: int, channels_last: bool) -> list[float]:
    import torch

    torch.set_num_threads(2)
    b, n, cin, cout, k, s = shape
    x = torch.randn(b, cin, n, n)
    w = torch.randn(cout, cin, k, k) * 0.05
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    p = (k - 1) // 2
    dy = torch.randn_like(torch.nn.functional.conv2d(x, w, stride=s, padding=p))

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

    with torch.no_grad():
        return [_median_ms(lambda: torch.nn.functional.conv2d(x, w, stride=s, padding=p),
                           repeats),
                _median_ms(backward([True, False, False]), repeats),
                _median_ms(backward([False, True, False]), repeats)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(SHAPES), default="r50")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true",
                        help="PyTorch in channels_last (default: contiguous)")
    args = parser.parse_args(argv)
    depthsense_jax.configure()  # before JAX starts (DEPTHSENSE_KEEP_XLA_CPU_FLAGS=1 opts out)
    try:
        import torch  # noqa: F401

        with_torch = True
    except ImportError:
        with_torch = False
    header = f"{'(B, H, Cin, Cout, k, stride)':<30}{'fwd':>8}{'dx':>8}{'dw':>8}"
    if with_torch:
        header += f"{'torch fwd':>11}{'dx':>8}{'dw':>8}"
    print(header)
    totals = np.zeros(6 if with_torch else 3)
    for shape in SHAPES[args.model]:
        row = jax_times(shape, args.repeats)
        if with_torch:
            row += torch_times(shape, args.repeats, args.channels_last)
        totals += row
        print(f"{str(shape):<30}" + "".join(f"{t:8.1f}" for t in row[:3])
              + "".join(f"{t:11.1f}" if i == 0 else f"{t:8.1f}"
                        for i, t in enumerate(row[3:])), flush=True)
    print(f"{'total':<30}" + "".join(f"{t:8.1f}" for t in totals[:3])
          + "".join(f"{t:11.1f}" if i == 0 else f"{t:8.1f}" for i, t in enumerate(totals[3:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Depth Anything inference speed: ours (jax.jit) against transformers' PyTorch model with the
same weights, in one run, at each size and batch (docs/benchmarks.md, "Depth Anything").

    python scripts/bench_depth_anything.py --variant vits --sizes 518x518,518x686 \\
        --batches 1,4 --repeats 5

Random weights (timing does not depend on their values); both sides get the same ones (our
variables copied into transformers' model) and the script checks that they agree before it
times them. Needs torch and transformers (the [compare] extra). The training step is
`depthsense speed model --config depth_anything_finetune --compare`.
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="vits", choices=["vits", "vitb", "vitl"])
    parser.add_argument("--sizes", default="518x518,518x686", help="HxW,HxW,...")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    import torch

    import depthsense_jax
    from depthsense_jax.models import registry
    from depthsense_jax.models.depth_anything import variant_config
    from depthsense_jax.models.torch_depth_anything import TransformersPeer
    from depthsense_jax.speed import timing

    depthsense_jax.configure()
    torch.set_num_threads(os.cpu_count())
    config = variant_config(args.variant, 2, pos_interpolation="transformers")
    module = registry.build(config)
    variables = jax.jit(module.init)(jax.random.PRNGKey(0), jnp.zeros((1, 518, 518, 3)))
    peer = TransformersPeer(config).eval()
    peer.load_variables(jax.device_get(variables))
    forward = jax.jit(lambda v, x: registry.infer(module, v, x))
    print(f"{registry.describe(config)}; jax {jax.__version__} on {jax.devices()[0]}, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads")
    print("| size | batch | ours (jit) ms | PyTorch ms | ours images/s | PyTorch images/s | "
          "ours / PyTorch speed | max diff / range |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for size in args.sizes.split(","):
        height, width = (int(v) for v in size.split("x"))
        for batch in (int(b) for b in args.batches.split(",")):
            images = rng.random((batch, height, width, 3), dtype=np.float32)
            pixels = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
            ours = np.asarray(forward(variables, images))
            with torch.inference_mode():
                theirs = peer(pixels).numpy()
            diff = float(np.abs(ours - theirs).max() / (theirs.max() - theirs.min()))
            ours_ms = timing.time_call(forward, variables, images, repeats=args.repeats,
                                       warmup=args.warmup)

            def torch_forward(pixels=pixels):
                with torch.inference_mode():
                    peer(pixels)

            torch_ms = timing.median_ms(torch_forward, args.repeats, args.warmup)
            print(f"| {height}x{width} | {batch} | {ours_ms:.0f} | {torch_ms:.0f} | "
                  f"{1e3 * batch / ours_ms:.2f} | {1e3 * batch / torch_ms:.2f} | "
                  f"{torch_ms / ours_ms:.2f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()

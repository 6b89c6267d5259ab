"""Jitted training and evaluation steps over a data-parallel mesh.

The state is replicated and the batch sharded along "data"; XLA inserts the all-reduces, so
BatchNorm statistics and the loss are over the global batch and a step gives the same
result on 1 or N devices (up to float summation order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from depthsense_jax import losses, metrics, sampling
from depthsense_jax.train.sharding import batch_sharding, replicated
from depthsense_jax.train.state import TrainState


def make_train_step(
    model,
    weights: Mapping[str, float],
    options: Mapping | None,
    mesh,
    debug_sharding: Callable | None = None,
):
    """jit(step)(state, batch, key) -> (state, metrics).

    batch: {"image": (B, S, S, 3), "depth": (B, S, S), "mask": (B, S, S)} global arrays
    sharded over "data". key: the run's base PRNG key; the step's sampling key is folded from
    it and the step number, so a run is reproducible from its seed and resumable. The state
    is donated. metrics: scalar float32 {"loss", each loss part, "grad_norm"}.
    debug_sharding: if given, called (via jax.debug.inspect_array_sharding) with the sharding
    of the image batch inside the step.
    """
    weights = dict(weights)
    options = dict(options or {})

    def step(state: TrainState, batch: dict, key: jax.Array):
        if debug_sharding is not None:
            jax.debug.inspect_array_sharding(batch["image"], callback=debug_sharding)
        step_key = jax.random.fold_in(key, state.step)

        def loss_fn(params):
            pred, updates = model.apply(
                {"params": params, "batch_stats": state.batch_stats}, batch["image"],
                train=True, mutable=["batch_stats"],
            )
            total, parts = losses.combined_loss(step_key, pred, batch, weights, options)
            return total, (parts, updates["batch_stats"])

        (total, (parts, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
        out = {"loss": total, **parts, "grad_norm": optax.tree.norm(grads)}
        return new_state, out

    rep, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(step, in_shardings=(rep, data, rep), out_shardings=(rep, rep),
                   donate_argnums=(0,))


def make_eval_step(model, weights: Mapping[str, float], options: Mapping | None, mesh,
                   num_pairs: int = 3000, sigma: float = 0.02):
    """jit(step)(state, batch, key) -> per-image metrics, each (B,) float32.

    loss (the combined loss of the batch, repeated per image), whdr (on `num_pairs` random
    pairs per image), and, after per-image scale-and-shift alignment of the prediction to
    the target, ssim, mse, abs_rel and delta1. Images with an empty mask have weight 0
    ("weight" (B,)), so sums over batches give exact means.
    """
    weights = dict(weights)
    options = dict(options or {})

    def step(state: TrainState, batch: dict, key: jax.Array):
        pred = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                           batch["image"], train=False)
        depth, mask = batch["depth"], batch["mask"]
        total, _ = losses.combined_loss(key, pred, batch, weights, options)
        pairs = sampling.random_pairs(key, mask, num_pairs)
        aligned = metrics.align_scale_shift(pred, depth, mask)
        batch_size = pred.shape[0]
        return {
            "weight": jnp.any(mask, axis=(1, 2)).astype(jnp.float32),
            "loss": jnp.full((batch_size,), total),
            "whdr": metrics.whdr(pred, depth, pairs, sigma=sigma, mask=mask),
            "ssim": metrics.ssim(jnp.clip(aligned, 0.0, 1.0), depth, mask=mask),
            "mse": metrics.mse(aligned, depth, mask),
            "abs_rel": metrics.abs_rel(pred, depth, mask),
            "delta1": metrics.delta1(pred, depth, mask),
        }

    # Replicated out: every host gets the whole global batch's metrics (they are (B,) small),
    # which a multi-host evaluation needs to sum them without a gather.
    rep, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(step, in_shardings=(rep, data, rep), out_shardings=rep)

"""Train state (params, optimizer state, BatchNorm statistics) and the optimizer."""

from __future__ import annotations

from typing import Any

import ml_collections
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
    """flax's TrainState plus the model's BatchNorm running statistics."""

    batch_stats: Any = None


def make_optimizer(
    opt: ml_collections.ConfigDict, total_steps: int
) -> optax.GradientTransformation:
    """AdamW (or SGD with momentum) with linear warmup then cosine decay, global-norm clipping
    and optional gradient accumulation (`opt.accumulate` > 1 micro-batches per update)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup = min(opt.warmup_steps, max(total_steps - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=opt.learning_rate, warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=opt.learning_rate * opt.final_lr_fraction,
    )
    if opt.name == "adamw":
        base = optax.adamw(schedule, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
    elif opt.name == "sgd":
        base = optax.sgd(schedule, momentum=opt.momentum, nesterov=True)
    else:
        raise ValueError(f"config.optimizer.name must be 'adamw' or 'sgd', got {opt.name!r}")
    tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), base)
    if opt.accumulate > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=opt.accumulate)
    return tx


def create_train_state(model, variables: dict, tx: optax.GradientTransformation) -> TrainState:
    return TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=tx,
        batch_stats=variables.get("batch_stats", {}),
    )

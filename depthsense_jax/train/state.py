"""Train state (params, optimizer state, BatchNorm statistics), the optimizer and its
learning-rate schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import optax
from flax.training import train_state

from depthsense_jax import params_io
from depthsense_jax.models import registry


class TrainState(train_state.TrainState):
    """flax's TrainState plus the model's BatchNorm running statistics ({} for a family
    without them)."""

    batch_stats: Any = None


def num_updates(opt: ml_collections.ConfigDict, total_steps: int) -> int:
    """Optimizer updates in a run of `total_steps` training steps: one per step, or one per
    `opt.accumulate` steps with gradient accumulation."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if opt.accumulate < 1:
        raise ValueError(f"config.optimizer.accumulate must be >= 1, got {opt.accumulate}")
    if total_steps < opt.accumulate:
        raise ValueError(f"{total_steps} training steps make no update with "
                         f"config.optimizer.accumulate={opt.accumulate}")
    return total_steps // opt.accumulate


def make_schedule(opt: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Learning rate as a function of the optimizer's update count: linear warmup from 0 to
    `opt.learning_rate`, then cosine decay to `opt.final_lr_fraction` of it at the last
    update. `opt.warmup_steps` and `total_steps` are in training steps; with
    `opt.accumulate` = k they become updates (/ k), so warmup and decay take the same share
    of the run whatever k is."""
    updates = num_updates(opt, total_steps)
    warmup = min(-(-opt.warmup_steps // opt.accumulate), max(updates - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=opt.learning_rate, warmup_steps=warmup,
        decay_steps=max(updates, warmup + 1),
        end_value=opt.learning_rate * opt.final_lr_fraction,
    )


def _base_optimizer(opt: ml_collections.ConfigDict, schedule) -> optax.GradientTransformation:
    if opt.name == "adamw":
        return optax.adamw(schedule, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
    if opt.name == "sgd":
        return optax.sgd(schedule, momentum=opt.momentum, nesterov=True)
    raise ValueError(f"config.optimizer.name must be 'adamw' or 'sgd', got {opt.name!r}")


def encoder_frozen(opt: ml_collections.ConfigDict) -> bool:
    return opt.get("encoder_lr_multiplier", 1.0) == 0


def _keys(path) -> tuple[str, ...]:
    """A jax tree path as the tuple of its dict keys (attribute names, indices) as str."""
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def encoder_rate_factors(opt: ml_collections.ConfigDict, encoder: Sequence[str] = (),
                         encoder_layers: registry.EncoderLayers | None = None
                         ) -> dict[int, float] | float:
    """The encoder's learning rate as a fraction of the rest's, checked: one float
    (`opt.encoder_lr_multiplier`) without layer decay, else {layer k: multiplier *
    layer_decay ** (num_layers - k)} for k = 0..num_layers."""
    multiplier = opt.get("encoder_lr_multiplier", 1.0)
    if not 0 <= multiplier:
        raise ValueError(f"config.optimizer.encoder_lr_multiplier must be >= 0, got {multiplier}")
    decay = opt.get("layer_decay", 1.0)
    if not 0 < decay <= 1:
        raise ValueError(f"config.optimizer.layer_decay must be in (0, 1] (1 = off), got {decay}")
    if (multiplier != 1 or decay != 1) and not encoder:
        option = "encoder_lr_multiplier" if multiplier != 1 else "layer_decay"
        raise ValueError(f"config.optimizer.{option} is set, but this model family names no "
                         "encoder")
    if decay == 1:
        return multiplier
    if encoder_layers is None:
        raise ValueError(f"config.optimizer.layer_decay={decay}, but this model family gives "
                         "its encoder no layer order (ModelFamily.encoder_layers); use 1")
    top = int(encoder_layers.num_layers)
    return {k: multiplier * decay ** (top - k) for k in range(top + 1)}


def make_optimizer(
    opt: ml_collections.ConfigDict, total_steps: int, encoder: Sequence[str] = (),
    encoder_layers: registry.EncoderLayers | None = None,
) -> optax.GradientTransformation:
    """AdamW (or SGD with Nesterov momentum) on `make_schedule`, global-norm clipping and
    optional gradient accumulation (`opt.accumulate` > 1 micro-batches per update).

    `opt.encoder_lr_multiplier` scales the learning rate of the params' top-level entries
    named in `encoder` (the model family's encoder; optax.multi_transform, those against
    the rest); 0 freezes them (no update, no weight decay). `opt.layer_decay` = d < 1
    scales it further by d ** (L - k) for a parameter of layer k of `encoder_layers` (the
    family's `EncoderLayers`, L its num_layers: the encoder's output end keeps the
    multiplier, each layer below learns d times slower; BEiT, DINOv2). The weight decay of
    AdamW scales with each group's rate, as in those papers' parameter groups."""
    schedule = make_schedule(opt, total_steps)
    factors = encoder_rate_factors(opt, encoder, encoder_layers)
    base = _base_optimizer(opt, schedule)
    if factors == 1:
        tx = base
    else:
        names = frozenset(encoder)

        def scaled(factor: float) -> optax.GradientTransformation:
            if factor == 0:
                return optax.set_to_zero()
            return _base_optimizer(opt, lambda count: factor * schedule(count))

        def label(path, _leaf) -> str:
            keys = _keys(path)
            if keys[0] not in names:
                return "rest"
            if not isinstance(factors, dict):
                return "encoder"
            try:
                layer = int(encoder_layers.index(keys))
            except (KeyError, ValueError, IndexError) as e:
                raise ValueError(f"the model family gives encoder parameter "
                                 f"{'/'.join(keys)} no layer ({e!r})") from None
            if layer not in factors:
                raise ValueError(f"encoder parameter {'/'.join(keys)} is in layer {layer}, "
                                 f"outside 0..{encoder_layers.num_layers}")
            return f"layer_{layer}"

        transforms = {"rest": base}
        if isinstance(factors, dict):
            transforms.update({f"layer_{k}": scaled(f) for k, f in factors.items()})
        else:
            transforms["encoder"] = scaled(factors)
        tx = optax.multi_transform(
            transforms, lambda params: jax.tree_util.tree_map_with_path(label, params))
    tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx)
    if opt.accumulate > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=opt.accumulate)
    return tx


def create_train_state(model, variables: dict, tx: optax.GradientTransformation) -> TrainState:
    return TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=tx,
        batch_stats=variables.get("batch_stats", {}),
    )


def initial_variables(config: ml_collections.ConfigDict) -> tuple[Any, dict]:
    """(module, variables) a run starts from: initialised from `config.seed` (with
    `model.pretrained` in the encoder), or all of them from `config.init.from` (a trained
    model: anything `params_io.load` reads)."""
    init = config.get("init")
    if init is not None and init.get("from"):
        # Every variable comes from the checkpoint: no random init to compile and discard
        # (for a ViT that alone is tens of seconds on a CPU).
        return registry.build(config.model), params_io.load_variables(
            init["from"], config.model, init.get("checkpoint", "latest"))
    model, variables = registry.create_variables(config.model, jax.random.PRNGKey(config.seed))
    if config.model.get("pretrained"):
        encoder = params_io.encoder_weights(config.model.pretrained, config.model)
        variables = jax.tree.map(jax.numpy.asarray,
                                 params_io.with_encoder(variables, encoder, config.model))
    return model, variables


def build_state(config: ml_collections.ConfigDict, total_steps: int):
    """(model, freshly initialised TrainState on the host) for `config`: `initial_variables`
    and the optimizer for a run of `total_steps` steps (what resuming a run restores
    into)."""
    model, variables = initial_variables(config)
    family = registry.family_of(config.model)
    tx = make_optimizer(config.optimizer, total_steps, family.encoder,
                        family.encoder_layers(config.model) if family.encoder_layers else None)
    return model, create_train_state(model, variables, tx)

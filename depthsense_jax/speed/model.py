"""`depthsense speed model`: inference and training-step speed of a config's model, with the
training step `depthsense train` runs (model, combined loss, optimizer update)."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

import jax
import ml_collections

from depthsense_jax.models import registry
from depthsense_jax.speed import reference, timing
from depthsense_jax.speed.losses import Reference, make_batch
from depthsense_jax.train import sharding, steps
from depthsense_jax.train import state as state_lib


@dataclasses.dataclass
class ModelTiming:
    config: str
    model: str  # the family's description of the model (`model-summary`'s first line)
    dtype: str
    batch: int
    size: int
    params: int
    compile_s: float
    forward_ms: float
    train_step_ms: float
    forward_flops: float | None  # one inference pass of the whole batch
    train_step_flops: float | None  # one training step of the whole batch
    device_kind: str
    references: list[Reference] = dataclasses.field(default_factory=list)
    width: int | None = None  # None: size (square inputs)

    @property
    def forward_images_per_s(self) -> float:
        return 1e3 * self.batch / self.forward_ms

    @property
    def train_images_per_s(self) -> float:
        return 1e3 * self.batch / self.train_step_ms

    @property
    def mfu(self) -> float | None:
        return timing.mfu(self.train_step_flops, self.train_step_ms * 1e-3, 1, self.device_kind)

    def derived(self) -> dict:
        return {"forward_images_per_s": self.forward_images_per_s,
                "train_images_per_s": self.train_images_per_s, "mfu": self.mfu}


def bench_model(
    config: ml_collections.ConfigDict,
    config_name: str,
    batch: int,
    size: int,
    repeats: int = 20,
    warmup: int = 3,
    compare: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    width: int | None = None,
) -> ModelTiming:
    """Time inference (eval-mode forward) and the training step of `depthsense train` (the
    config's combined loss, gradients of all params, BatchNorm in train mode, the optimizer
    update) at `batch` x `size` x `width` (default `size`) on one device."""
    family = registry.family_of(config.model)
    width = width or size
    for name, value in (("--size", size), ("--width", width)):
        if value % family.stride:
            raise ValueError(f"{name} must be a multiple of the model's stride "
                             f"{family.stride}, got {value}")
    config = config.copy_and_resolve_references()
    config.batch_size, config.image_size = batch, size
    mesh = sharding.make_data_mesh(jax.devices()[:1])
    steps.validate(config, mesh.size)
    # The schedule's length only sets constants in the step; that of the config's run when
    # it gives one (steps_per_epoch; else the dataset decides, which this benchmark skips).
    total_steps = config.num_epochs * config.steps_per_epoch or 10 * (repeats + warmup) + 10
    model, train_state = state_lib.build_state(config, total_steps=total_steps)
    train_state = jax.device_put(train_state, sharding.replicated(mesh))
    data = make_batch(batch, size, width=width)
    data.pop("pred")
    global_batch = sharding.global_batch(data, mesh)
    key = jax.random.PRNGKey(1)
    variables = steps.variables_of(train_state)
    train_step = steps.make_train_step(
        model, family, config.loss.weights, config.loss.options, mesh,
        freeze_encoder=state_lib.encoder_frozen(config.optimizer))

    log(f"[speed] {config_name}: compiling forward and training step at {batch}x{size}x{width}")
    forward, forward_compile_s = timing.compile_timed(
        lambda v, x: registry.infer(model, v, x), variables, global_batch["image"])
    forward_flops = timing.lowered_flops(lambda v, x: registry.infer(model, v, x), variables,
                                         global_batch["image"])
    flops = timing.lowered_flops(train_step, train_state, global_batch, key)
    start = time.perf_counter()
    compiled_step = train_step.lower(train_state, global_batch, key).compile()
    step_compile_s = time.perf_counter() - start
    holder = {"state": train_state}

    def one_step():
        # The step donates the state: thread it through, as the training loop does.
        holder["state"], out = compiled_step(holder["state"], global_batch, key)
        jax.block_until_ready((holder["state"], out))

    result = ModelTiming(
        config=config_name, model=registry.describe(config.model),
        dtype=config.model.dtype,
        batch=batch, size=size,
        params=sum(x.size for x in jax.tree.leaves(train_state.params)),
        compile_s=forward_compile_s + step_compile_s,
        forward_ms=timing.time_call(forward, variables, global_batch["image"],
                                    repeats=repeats, warmup=warmup),
        train_step_ms=timing.median_ms(one_step, repeats, warmup),
        forward_flops=forward_flops,
        train_step_flops=flops,
        device_kind=jax.devices()[0].device_kind,
        width=width if width != size else None,
    )
    if compare:
        # The trained state's variables: the step donated the first ones.
        result.references.extend(_torch_references(config, data, repeats, warmup, result, log,
                                                    steps.variables_of(holder["state"])))
    return result


def _torch_references(config, data, repeats, warmup, result: ModelTiming,
                      log, variables) -> list[Reference]:
    """The same architecture in PyTorch eager, timed in this run in its default layout and
    in channels_last (oneDNN's preferred one); the faster is the yardstick. A peer that can
    take our variables (`load_variables`) runs the same weights."""
    family = registry.family_of(config.model)
    if family.torch_peer is None:
        raise ValueError(f"--compare: the {family.name} model family has no PyTorch peer")
    torch = reference.require_torch()
    references = []
    for layout in ("contiguous", "channels_last"):
        net = family.torch_peer(config.model)
        if hasattr(net, "load_variables"):
            net.load_variables(jax.device_get(variables))
        images = torch.tensor(data["image"]).permute(0, 3, 1, 2).contiguous()
        if layout == "channels_last":
            net = net.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        depth = torch.tensor(data["depth"])
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-6)
        log(f"[speed] timing the same architecture in PyTorch eager, {layout} ...")

        def fwd(net=net, images=images):
            net.eval()
            with torch.no_grad():
                net(images)

        def train_step(net=net, images=images, depth=depth, optimizer=optimizer):
            net.train()
            optimizer.zero_grad(set_to_none=True)
            # The model's cost: a plain squared error stands in for our combined loss.
            ((net(images) - depth) ** 2).mean().backward()
            optimizer.step()

        train_ms = timing.median_ms(train_step, repeats, warmup)
        forward_ms = timing.median_ms(fwd, repeats, warmup)
        references.append(Reference(
            name=f"PyTorch {torch.__version__} eager {layout}, MSE loss, AdamW",
            forward_ms=forward_ms, forward_backward_ms=train_ms,
            speedup=train_ms / result.train_step_ms,
        ))
    return references


def format_table(t: ModelTiming) -> str:
    dev = jax.devices()[0]
    lines = [
        f"{t.config}: {t.model} ({t.params / 1e6:.1f}M params), "
        f"{t.dtype}, batch {t.batch}, {t.size}x{t.width or t.size}, on {dev.platform} "
        f"({t.device_kind})",
        f"  compile                 {t.compile_s:8.1f} s",
        f"  forward (inference)     {t.forward_ms:8.1f} ms/batch  {t.forward_images_per_s:8.1f} "
        "images/s",
        f"  train step              {t.train_step_ms:8.1f} ms/batch  {t.train_images_per_s:8.1f} "
        "images/s",
    ]
    if t.train_step_flops:
        achieved = t.train_step_flops / (t.train_step_ms * 1e-3)
        line = f"  train step FLOPs        {t.train_step_flops / 1e9:8.1f} GFLOP  ->  "
        line += f"{achieved / 1e12:.2f} TFLOP/s"
        if t.mfu is not None:
            line += (f", MFU {100 * t.mfu:.1f}% of {timing.peak_flops(t.device_kind) / 1e12:.0f}"
                     " TFLOP/s bf16")
        lines.append(line)
    for ref in t.references:
        lines.append(
            f"  {ref.name}: forward {ref.forward_ms:.1f} ms, train step "
            f"{ref.forward_backward_ms:.1f} ms ({1e3 * t.batch / ref.forward_backward_ms:.1f} "
            f"images/s); ours {ref.forward_ms / t.forward_ms:.2f}x its inference speed, "
            f"{ref.speedup:.2f}x its training speed"
        )
    if t.references:
        best_train = min(r.forward_backward_ms for r in t.references)
        best_forward = min(r.forward_ms for r in t.references)
        lines.append(f"  against PyTorch's best layout: ours {best_forward / t.forward_ms:.2f}x "
                     f"in inference, {best_train / t.train_step_ms:.2f}x in training")
    return "\n".join(lines)

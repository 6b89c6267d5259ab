"""Benchmarks: `depthsense bench losses` times every loss compiled with jax.jit.

Timing is the median of repeated calls after warm-up, each ended by `block_until_ready`.
Compile time is lowering plus XLA compilation of the forward and of the forward+backward.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from depthsense_jax import losses, sampling

ALL_PARTS = {name: 1.0 for name in losses.LOSS_NAMES}


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


def make_batch(batch: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A deterministic benchmark batch: smooth random depth with a step, a textured image
    that follows it, a mask with an invalid band, and a noisy prediction.

    Returns image (B, S, S, 3) float32 in [0, 1], depth and pred (B, S, S) float32, mask bool.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    depth = np.empty((batch, size, size), np.float32)
    for b in range(batch):
        a, c, f = rng.uniform(0.2, 1.0, 3)
        depth[b] = 0.2 + 0.5 * (a * yy + c * xx) / 2 + 0.2 * (xx > f * 0.8) * (yy > 0.3)
    texture = rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32)
    image = np.clip(0.6 * depth[..., None] + 0.4 * texture, 0, 1).astype(np.float32)
    mask = np.ones((batch, size, size), bool)
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


def time_call(fn: Callable, *args, repeats: int, warmup: int) -> float:
    """Median wall time in ms of `fn(*args)` with its outputs ready."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _compile(fn: Callable, *args) -> tuple[Callable, float]:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


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
    data = make_batch(batch, size)
    pred = jnp.asarray(data.pop("pred"))
    b = {k: jnp.asarray(v) for k, v in data.items()}
    fns = _loss_fns(jax.random.PRNGKey(0), num_pairs, num_anchors)
    names = list(fns) if not only else only
    unknown = sorted(set(names) - set(fns))
    if unknown:
        raise ValueError(f"unknown loss(es) {unknown} for --only; choose from {list(fns)}")
    torch_refs = _torch_references(data, np.asarray(pred), num_pairs) if compare else {}
    results = []
    for name in names:
        log(f"[bench] {name}: compiling ...")
        fwd, t_fwd = _compile(fns[name], pred, b)
        grad, t_grad = _compile(jax.value_and_grad(fns[name]), pred, b)
        value = float(fwd(pred, b))
        if not np.isfinite(value):
            raise RuntimeError(f"{name} gave a non-finite loss {value} on the benchmark batch")
        timing = LossTiming(
            name=name,
            compile_s=t_fwd + t_grad,
            forward_ms=time_call(fwd, pred, b, repeats=repeats, warmup=warmup),
            forward_backward_ms=time_call(grad, pred, b, repeats=repeats, warmup=warmup),
        )
        for ref_name, ref_fwd, ref_grad in torch_refs.get(name, []):
            log(f"[bench] {name}: timing {ref_name} ...")
            ref_grad_ms = _time_torch(ref_grad, repeats, warmup)
            timing.references.append(Reference(
                name=ref_name,
                forward_ms=_time_torch(ref_fwd, repeats, warmup),
                forward_backward_ms=ref_grad_ms,
                speedup=ref_grad_ms / timing.forward_backward_ms,
            ))
        log(
            f"[bench] {name}: fwd {timing.forward_ms:.1f} ms, fwd+bwd "
            f"{timing.forward_backward_ms:.1f} ms"
        )
        results.append(timing)
    return results


def _time_torch(fn: Callable, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _torch_references(data: dict, pred: np.ndarray, num_pairs: int) -> dict:
    """name -> [(reference name, forward thunk, forward+backward thunk)], in PyTorch."""
    try:
        import kornia
        import torch
        import torch.nn.functional as F
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise SystemExit(
            f"--compare needs torch and kornia ({err}); install with pip install -e '.[compare]'"
        ) from err
    torch.set_num_threads(_cpu_count())
    p = torch.tensor(pred)[:, None].requires_grad_(True)
    t = torch.tensor(data["depth"])[:, None]
    img = torch.tensor(data["image"]).permute(0, 3, 1, 2).contiguous()
    mask = torch.tensor(data["mask"])
    taps = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g = torch.tensor(taps / taps.sum(), dtype=torch.float32)
    window = (g[:, None] @ g[None, :])[None, None]

    def pytorch_ssim_loss(a, b):
        # The pytorch-ssim formula (the seed's SSIM): zero padding, 2-D Gaussian window.
        mu_a, mu_b = F.conv2d(a, window, padding=5), F.conv2d(b, window, padding=5)
        var_a = F.conv2d(a * a, window, padding=5) - mu_a**2
        var_b = F.conv2d(b * b, window, padding=5) - mu_b**2
        cov = F.conv2d(a * b, window, padding=5) - mu_a * mu_b
        c1, c2 = 0.01**2, 0.03**2
        num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
        den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        return 1 - (num / den).mean()

    gen = torch.Generator().manual_seed(0)
    flat_mask = mask.reshape(mask.shape[0], -1)

    def torch_ranking(a, b):
        # A straight PyTorch ranking loss: sample pairs among valid pixels, label, loss.
        pa_all, pb_all = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        total = 0.0
        valid_idx = [torch.nonzero(m)[:, 0] for m in flat_mask]
        for i, idx in enumerate(valid_idx):
            sel = idx[torch.randint(len(idx), (2, num_pairs), generator=gen)]
            ga, gb = pb_all[i, sel[0]], pb_all[i, sel[1]]
            ratio = ga / gb
            r = (ratio >= 1.02).float() - (ratio <= 1 / 1.02).float()
            diff = pa_all[i, sel[0]] - pa_all[i, sel[1]]
            loss = torch.where(r != 0, F.softplus(-r * diff), diff**2)
            total = total + loss.mean()
        return total / len(valid_idx)

    def torch_ssi(a, b):
        # MiDaS-style: least-squares scale and shift per image, then mean |residual|.
        m = mask[:, None].float()
        a00, a01, a11 = (m * a * a).sum((1, 2, 3)), (m * a).sum((1, 2, 3)), m.sum((1, 2, 3))
        b0, b1 = (m * a * b).sum((1, 2, 3)), (m * b).sum((1, 2, 3))
        det = a00 * a11 - a01 * a01
        s = (a11 * b0 - a01 * b1) / det
        sh = (-a01 * b0 + a00 * b1) / det
        res = (s[:, None, None, None] * a + sh[:, None, None, None] - b).abs() * m
        return (res.sum((1, 2, 3)) / a11).mean()

    def pair(loss_fn):
        def fwd():
            with torch.no_grad():
                loss_fn()

        def fwd_bwd():
            p.grad = None
            loss_fn().backward()

        return fwd, fwd_bwd

    refs = {
        "ssim": [
            ("kornia.losses.ssim_loss", lambda: kornia.losses.ssim_loss(p, t, 11)),
            ("pytorch-ssim formula", lambda: pytorch_ssim_loss(p, t)),
        ],
        "smoothness": [
            (
                "kornia.losses.inverse_depth_smoothness_loss",
                lambda: kornia.losses.inverse_depth_smoothness_loss(p, img),
            )
        ],
        "ranking": [("PyTorch ranking loss", lambda: torch_ranking(p, t))],
        "scale_shift": [("PyTorch MiDaS-style SSI", lambda: torch_ssi(p, t))],
    }
    return {
        name: [(label, *pair(fn)) for label, fn in entries] for name, entries in refs.items()
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_info() -> dict:
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": _cpu_count(),
    }


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


def write_json(path: str, results: list[LossTiming], **settings) -> None:
    payload = {
        "machine": machine_info(),
        "settings": settings,
        "results": [dataclasses.asdict(r) for r in results],
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


# Dense bf16 peak of the chips we record model FLOP utilisation on (vendor figures).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "TPU v4": 275e12,
                   "TPU v5 lite": 197e12, "TPU v5p": 459e12}


def peak_flops(device_kind: str) -> float | None:
    for name, flops in PEAK_BF16_FLOPS.items():
        if name.lower() in device_kind.lower():
            return flops
    return None


@dataclasses.dataclass
class ModelTiming:
    config: str
    encoder_depth: int
    dtype: str
    batch: int
    size: int
    params: int
    compile_s: float
    forward_ms: float
    train_step_ms: float
    train_step_flops: float | None
    references: list[Reference] = dataclasses.field(default_factory=list)

    @property
    def forward_images_per_s(self) -> float:
        return 1e3 * self.batch / self.forward_ms

    @property
    def train_images_per_s(self) -> float:
        return 1e3 * self.batch / self.train_step_ms

    @property
    def mfu(self) -> float | None:
        peak = peak_flops(jax.devices()[0].device_kind)
        if not peak or not self.train_step_flops:
            return None
        return self.train_step_flops / (self.train_step_ms * 1e-3) / peak


def _flops(fn: Callable, *args) -> float | None:
    """FLOPs of `fn(*args)` from XLA's cost analysis of the lowered (unoptimised) HLO.

    Not of the compiled program: on GPU the convolutions become cuDNN custom calls that the
    compiled cost analysis counts as 0 (it reported 0.3% MFU for a 35% run). Lowered for the
    CPU, whose cost analysis answers everywhere (jax 0.11's GPU lowering returned none); the
    FLOPs of convolutions and matmuls do not depend on the platform.
    """
    try:
        lowered = jax.jit(fn).trace(*args).lower(lowering_platforms=("cpu",))
        analysis = lowered.cost_analysis()
    except Exception:  # cost analysis is best effort and backend dependent
        return None
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def bench_model(
    config,
    config_name: str,
    batch: int,
    size: int,
    repeats: int = 20,
    warmup: int = 3,
    compare: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> ModelTiming:
    """Forward (inference) and training-step forward+backward (the config's combined loss,
    gradients w.r.t. all params, BatchNorm in train mode) of the config's model."""
    from depthsense_jax.config import model_from_config

    model = model_from_config(config.model)
    data = make_batch(batch, size)
    data.pop("pred")
    b = {k: jnp.asarray(v) for k, v in data.items()}
    variables = model.init(jax.random.PRNGKey(0), b["image"][:1])
    weights = dict(config.loss.weights)
    options = dict(config.loss.options)
    key = jax.random.PRNGKey(1)

    def forward(v, images):
        return model.apply(v, images)

    def loss_fn(params, batch_stats, batch):
        pred, updates = model.apply(
            {"params": params, "batch_stats": batch_stats}, batch["image"], train=True,
            mutable=["batch_stats"],
        )
        total, _ = losses.combined_loss(key, pred, batch, weights, options)
        return total, updates["batch_stats"]

    step = jax.value_and_grad(loss_fn, has_aux=True)
    log(f"[bench] {config_name}: compiling forward and training step at {batch}x{size}x{size} ...")
    fwd, t_fwd = _compile(forward, variables, b["image"])
    train, t_train = _compile(step, variables["params"], variables["batch_stats"], b)
    timing = ModelTiming(
        config=config_name, encoder_depth=config.model.encoder_depth, dtype=config.model.dtype,
        batch=batch, size=size,
        params=sum(x.size for x in jax.tree.leaves(variables["params"])),
        compile_s=t_fwd + t_train,
        forward_ms=time_call(fwd, variables, b["image"], repeats=repeats, warmup=warmup),
        train_step_ms=time_call(train, variables["params"], variables["batch_stats"], b,
                                repeats=repeats, warmup=warmup),
        train_step_flops=_flops(step, variables["params"], variables["batch_stats"], b),
    )
    if compare:
        timing.references.append(_torch_model_reference(config, data, repeats, warmup, timing,
                                                        log))
    return timing


def _torch_model_reference(config, data, repeats, warmup, timing, log) -> Reference:
    try:
        import torch

        from depthsense_jax.torch_reference import TorchDepthNet
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise SystemExit(f"--compare needs torch ({err}); pip install -e '.[compare]'") from err
    torch.set_num_threads(_cpu_count())
    net = TorchDepthNet(config.model.encoder_depth, config.model.width,
                        config.model.fusion_channels)
    images = torch.tensor(data["image"]).permute(0, 3, 1, 2).contiguous()
    depth = torch.tensor(data["depth"])
    log("[bench] timing the same architecture in PyTorch ...")

    def fwd():
        net.eval()
        with torch.no_grad():
            net(images)

    def fwd_bwd():
        net.train()
        net.zero_grad(set_to_none=True)
        # The model's cost: a plain squared error stands in for our combined loss.
        ((net(images) - depth) ** 2).mean().backward()

    train_ms = _time_torch(fwd_bwd, repeats, warmup)
    return Reference(
        name=f"PyTorch {torch.__version__} (oneDNN), MSE loss",
        forward_ms=_time_torch(fwd, repeats, warmup),
        forward_backward_ms=train_ms,
        speedup=train_ms / timing.train_step_ms,
    )


def format_model_table(t: ModelTiming) -> str:
    dev = jax.devices()[0]
    lines = [
        f"{t.config}: DepthNet ResNet-{t.encoder_depth} ({t.params / 1e6:.1f}M params), "
        f"{t.dtype}, batch {t.batch}, {t.size}x{t.size}, on {dev.platform} ({dev.device_kind})",
        f"  compile                 {t.compile_s:8.1f} s",
        f"  forward (inference)     {t.forward_ms:8.1f} ms/batch  {t.forward_images_per_s:8.1f} "
        "images/s",
        f"  train step (fwd+bwd)    {t.train_step_ms:8.1f} ms/batch  {t.train_images_per_s:8.1f} "
        "images/s",
    ]
    if t.train_step_flops:
        achieved = t.train_step_flops / (t.train_step_ms * 1e-3)
        line = f"  train step FLOPs        {t.train_step_flops / 1e9:8.1f} GFLOP  ->  "
        line += f"{achieved / 1e12:.2f} TFLOP/s"
        if t.mfu is not None:
            line += f", MFU {100 * t.mfu:.1f}% of {peak_flops(dev.device_kind) / 1e12:.0f} bf16"
        lines.append(line)
    for ref in t.references:
        lines.append(
            f"  {ref.name}: forward {ref.forward_ms:.1f} ms, fwd+bwd {ref.forward_backward_ms:.1f}"
            f" ms ({1e3 * t.batch / ref.forward_backward_ms:.1f} images/s); ours "
            f"{ref.speedup:.2f}x its training speed"
        )
    return "\n".join(lines)


def write_model_json(path: str, t: ModelTiming, **settings) -> None:
    payload = {
        "machine": machine_info(),
        "settings": settings,
        "result": dict(
            dataclasses.asdict(t), forward_images_per_s=t.forward_images_per_s,
            train_images_per_s=t.train_images_per_s, mfu=t.mfu,
        ),
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


@dataclasses.dataclass
class TrainLoopTiming:
    """Steady-state speed of the real training loop (data pipeline + sharded jitted step)."""

    config: str
    batch: int
    size: int
    devices: int
    compile_s: float  # the first step: compile and run
    images_per_s: float  # pipelined, as `depthsense train` runs
    step_ms: float  # median of the blocked steps below, summed
    input_wait_ms: float  # waiting for the next host batch from tf.data
    host_ms: float  # placing the batch on the devices and dispatching the step
    device_ms: float  # from dispatch until the step's results are ready
    train_step_flops: float | None = None

    @property
    def input_wait_fraction(self) -> float:
        return self.input_wait_ms / max(self.step_ms, 1e-9)

    @property
    def mfu(self) -> float | None:
        peak = peak_flops(jax.devices()[0].device_kind)
        if not peak or not self.train_step_flops:
            return None
        return self.train_step_flops * self.images_per_s / self.batch / (peak * self.devices)


def bench_train(
    config,
    config_name: str,
    steps: int = 20,
    warmup: int = 3,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> TrainLoopTiming:
    """Time `steps` training steps of the loop `depthsense train` runs.

    Two passes over fresh batches: one pipelined (dispatch runs ahead, as in training) for
    images/s, and one that waits for each step, for the split of a step into input wait,
    host work (batch placement, dispatch) and device time (medians).
    """
    from depthsense_jax.data import pipeline
    from depthsense_jax.train import loop, sharding
    from depthsense_jax.train import steps as steps_lib

    mesh = sharding.make_data_mesh()
    loop.validate(config, mesh.size)
    model, state = loop.build_state(config, total_steps=10 * (steps + warmup) + 1000)
    state = jax.device_put(state, sharding.replicated(mesh))
    train_step = steps_lib.make_train_step(model, config.loss.weights, config.loss.options, mesh)
    data = iter(pipeline.make_dataset(config, "train", process_index=jax.process_index(),
                                      process_count=jax.process_count()))
    key = jax.random.PRNGKey(config.seed)
    log(f"[bench] {config_name}: compiling the training step at "
        f"{config.batch_size}x{config.image_size}x{config.image_size} on {mesh.size} device(s)")
    batch = sharding.global_batch(next(data), mesh)
    flops = _flops(lambda s, b, k: train_step(s, b, k), state, batch, key)
    start = time.perf_counter()
    state, out = train_step(state, batch, key)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        state, out = train_step(state, sharding.global_batch(next(data), mesh), key)
    jax.block_until_ready(out)

    start = time.perf_counter()
    for _ in range(steps):
        state, out = train_step(state, sharding.global_batch(next(data), mesh), key)
    jax.block_until_ready((state, out))
    images_per_s = steps * config.batch_size / (time.perf_counter() - start)

    waits, hosts, devices = [], [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        host_batch = next(data)
        t1 = time.perf_counter()
        state, out = train_step(state, sharding.global_batch(host_batch, mesh), key)
        t2 = time.perf_counter()
        jax.block_until_ready((state, out))
        t3 = time.perf_counter()
        waits.append(t1 - t0)
        hosts.append(t2 - t1)
        devices.append(t3 - t2)
    wait, host, device = (1e3 * float(np.median(x)) for x in (waits, hosts, devices))
    return TrainLoopTiming(
        config=config_name, batch=config.batch_size, size=config.image_size, devices=mesh.size,
        compile_s=compile_s, images_per_s=images_per_s, step_ms=wait + host + device,
        input_wait_ms=wait, host_ms=host, device_ms=device,
        train_step_flops=flops / config.batch_size if flops else None,
    )


def format_train_table(t: TrainLoopTiming) -> str:
    lines = [
        f"training loop {t.config}: batch {t.batch} at {t.size}x{t.size} on {t.devices} "
        f"{jax.devices()[0].device_kind} device(s)",
        f"  first step (compile)     {t.compile_s:8.1f} s",
        f"  steady state             {t.images_per_s:8.1f} images/s (pipelined)",
        f"  step (waited on)         {t.step_ms:8.1f} ms",
        f"    input wait             {t.input_wait_ms:8.1f} ms  "
        f"({100 * t.input_wait_fraction:.1f}% of the step)",
        f"    host (place+dispatch)  {t.host_ms:8.1f} ms",
        f"    device                 {t.device_ms:8.1f} ms",
    ]
    if t.train_step_flops:
        line = f"  train step FLOPs         {t.train_step_flops / 1e9:8.1f} GFLOP/image"
        if t.mfu is not None:
            line += f"  ->  MFU {100 * t.mfu:.1f}%"
        lines.append(line)
    return "\n".join(lines)


def write_train_json(path: str, t: TrainLoopTiming, **settings) -> None:
    payload = {
        "machine": machine_info(),
        "settings": settings,
        "result": dict(dataclasses.asdict(t), input_wait_fraction=t.input_wait_fraction,
                       mfu=t.mfu),
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)

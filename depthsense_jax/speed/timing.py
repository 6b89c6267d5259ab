"""What every speed benchmark shares: timing medians, compile timing, FLOPs from the lowered HLO,
model FLOP utilisation, machine facts and the JSON record."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax

from depthsense_jax import storage

# Dense bf16 peak of the chips we record model FLOP utilisation on (vendor figures).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "TPU v4": 275e12,
                   "TPU v5 lite": 197e12, "TPU v5p": 459e12}


def median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall time in ms of `fn()` over `repeats` calls after `warmup` untimed ones.
    `fn` must return only when its work is done (block on JAX outputs inside it)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_call(fn: Callable, *args, repeats: int, warmup: int) -> float:
    """Median wall time in ms of `fn(*args)` with its JAX outputs ready."""
    return median_ms(lambda: jax.block_until_ready(fn(*args)), repeats, warmup)


def compile_timed(fn: Callable, *args) -> tuple[Callable, float]:
    """(compiled fn, seconds to lower and compile it) for these arguments."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def lowered_flops(fn: Callable, *args) -> float | None:
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


def peak_flops(device_kind: str) -> float | None:
    """Dense bf16 peak FLOP/s of one device of this kind, if we know it."""
    for name, flops in PEAK_BF16_FLOPS.items():
        if name.lower() in device_kind.lower():
            return flops
    return None


def mfu(step_flops: float | None, step_seconds: float, devices: int = 1,
        device_kind: str | None = None) -> float | None:
    """Model FLOP utilisation: the FLOPs of one training step (the whole global batch)
    divided by the step's time and by the peak of all `devices`. None when the FLOPs or
    the peak are unknown."""
    peak = peak_flops(device_kind if device_kind is not None else jax.devices()[0].device_kind)
    if not peak or not step_flops or step_seconds <= 0:
        return None
    return step_flops / step_seconds / (peak * devices)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_info() -> dict:
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": cpu_count(),
    }


def write_json(path: str, result, **settings) -> None:
    """{"machine", "settings", "result"} as JSON at `path` (a local file or a URL); `result`
    a dataclass (with its properties listed in its `derived()` method when it has one) or a
    list of them."""
    def record(item):
        out = dataclasses.asdict(item)
        if hasattr(item, "derived"):
            out.update(item.derived())
        return out

    payload = {
        "machine": machine_info(),
        "settings": settings,
        "result": [record(r) for r in result] if isinstance(result, list) else record(result),
    }
    storage.write_text(path, json.dumps(payload, indent=2))

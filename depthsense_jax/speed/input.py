"""`depthsense speed input` and `speed render`: what feeds the model, the tf.data pipeline
(batches/s) and the synthetic scene renderer (images/s)."""

from __future__ import annotations

import dataclasses
import time

import ml_collections

from depthsense_jax.data import pipeline


@dataclasses.dataclass
class InputTiming:
    dataset: str
    batch: int
    size: int
    batches: int
    batches_per_s: float

    def derived(self) -> dict:
        return {"images_per_s": self.batches_per_s * self.batch,
                "ms_per_batch": 1e3 / self.batches_per_s}


def bench_input(config: ml_collections.ConfigDict, batches: int = 50,
                warmup: int = 5) -> InputTiming:
    """Batches/s of the training input pipeline of `config` (decode, augment, batch) after
    `warmup` untimed batches."""
    iterator = iter(pipeline.make_dataset(config, "train"))
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = batches / (time.perf_counter() - start)
    return InputTiming(config.data.name, config.batch_size, config.image_size, batches, rate)


def format_input(t: InputTiming) -> str:
    d = t.derived()
    return (f"input pipeline {t.dataset}, batch {t.batch}, {t.size}x{t.size}: "
            f"{t.batches_per_s:.2f} batches/s ({d['images_per_s']:.1f} images/s, "
            f"{d['ms_per_batch']:.1f} ms/batch) over {t.batches} batches")


def bench_render(num: int = 200, size: int = 160, families: tuple[str, ...] = ()) -> float:
    """Images/s of the synthetic scene renderer at size x size for the scenes of
    ``families`` (empty: the first layout); one process; run with OMP_NUM_THREADS=1
    taskset -c 0 for a strict single-core figure."""
    from depthsense_jax.data.synthetic import benchmark_render

    return benchmark_render(num, size, families)

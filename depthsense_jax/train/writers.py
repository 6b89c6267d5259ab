"""Where a run reports: metrics.jsonl, TensorBoard event files, and a progress bar (or plain
log lines when stderr is not a terminal). Only process 0 writes files."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import numpy as np


class Jsonl:
    """One JSON object per line, appended; a no-op without a path (other processes)."""

    def __init__(self, path: str | None):
        self.path = path

    def write(self, record: dict) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


class TensorBoard:
    """Scalar and image summaries in a log folder (TF on the CPU); a no-op without one."""

    def __init__(self, logdir: str | None):
        self.writer = None
        if logdir is not None:
            import tensorflow as tf

            from depthsense_jax._tf import keep_tf_off_accelerators

            keep_tf_off_accelerators()
            self.tf = tf
            self.writer = tf.summary.create_file_writer(logdir)

    def scalars(self, step: int, values: dict, prefix: str) -> None:
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                self.tf.summary.scalar(f"{prefix}/{name}", value)
        self.writer.flush()

    def image(self, step: int, name: str, rgb: np.ndarray) -> None:
        if self.writer is not None:
            with self.writer.as_default(step=step):
                self.tf.summary.image(name, rgb[None])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress:
    """A tqdm bar (step, images/s, loss) on a terminal; plain log lines elsewhere."""

    def __init__(self, total: int, initial: int, log: Callable[[str], None], enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            desc="train")
        self.log = log

    def update(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def report(self, line: str, **postfix) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=True)
        else:
            self.log(line)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            self.log(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

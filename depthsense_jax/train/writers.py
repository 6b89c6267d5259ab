"""Where a run reports: metrics.jsonl, TensorBoard event files, and a progress bar (or plain
log lines when stderr is not a terminal). Only process 0 writes files. Both files may be in
a bucket (storage URLs)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable

import numpy as np

from depthsense_jax import storage


class Jsonl:
    """One JSON object per line, appended; a no-op without a path (other processes). An
    object in a bucket cannot be appended to: its text is kept here and written whole."""

    def __init__(self, path: str | None):
        self.path = path
        self._text = None
        if path is not None and storage.is_url(path):
            self._text = storage.read_text(path) if storage.exists(path) else ""

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        line = json.dumps(record) + "\n"
        if self._text is None:
            storage.append_text(self.path, line)
        else:
            self._text += line
            storage.write_text(self.path, self._text)


class TensorBoard:
    """Scalar and image summaries in a log folder (TF on the CPU); a no-op without one.

    A folder in a bucket is written through the storage layer: TF writes the event file
    to a local folder and each flush uploads it whole (as TF's own GCS writer does)."""

    def __init__(self, logdir: str | None):
        self.writer = None
        self.logdir, self.staging = logdir, None
        if logdir is not None:
            import tensorflow as tf

            from depthsense_jax._tf import keep_tf_off_accelerators

            keep_tf_off_accelerators()
            self.tf = tf
            if storage.is_url(logdir):
                storage.makedirs(logdir)
                self.staging = tempfile.mkdtemp(prefix="depthsense-tensorboard-")
            self.writer = tf.summary.create_file_writer(self.staging or logdir)

    def _flush(self) -> None:
        self.writer.flush()
        if self.staging is not None:
            for name in os.listdir(self.staging):
                storage.copy_file(os.path.join(self.staging, name),
                                  storage.join(self.logdir, name))

    def scalars(self, step: int, values: dict, prefix: str) -> None:
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                self.tf.summary.scalar(f"{prefix}/{name}", value)
        self._flush()

    def image(self, step: int, name: str, rgb: np.ndarray) -> None:
        if self.writer is not None:
            with self.writer.as_default(step=step):
                self.tf.summary.image(name, rgb[None])
            self._flush()

    def close(self) -> None:
        if self.writer is not None:
            self._flush()
            self.writer.close()
            if self.staging is not None:
                shutil.rmtree(self.staging, ignore_errors=True)


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

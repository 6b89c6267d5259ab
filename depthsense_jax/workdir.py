"""The layout of a training workdir, shared by training (which writes it) and by params I/O
(which reads models out of it):

  WORKDIR/config.json     the run's config
  WORKDIR/checkpoints/    orbax: the last `checkpoint.keep` TrainStates, one folder per step
  WORKDIR/best/           orbax: the TrainState with the lowest validation WHDR
  WORKDIR/metrics.jsonl, tensorboard/, predictions.png, eval/

A workdir may be a local folder or a URL (gs://bucket/run): every file goes through
`depthsense_jax.storage`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ml_collections

from depthsense_jax import storage

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
BEST = "best"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD = "tensorboard"
PICTURE = "predictions.png"
EVAL = "eval"


def path(workdir: str, *parts: str) -> str:
    """Absolute path (or tidy URL) of a part of a workdir (orbax wants absolute folders)."""
    return storage.normalize(storage.join(storage.expand(workdir), *parts))


def write_config(workdir: str, config: ml_collections.ConfigDict) -> str:
    file = path(workdir, CONFIG_FILE)
    storage.write_text(file, config.to_json_best_effort(indent=2))
    return file


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run saved in WORKDIR/config.json."""
    file = path(workdir, CONFIG_FILE)
    if not storage.isfile(file):
        storage.require_bucket(file)
        raise FileNotFoundError(f"{file} does not exist: is {workdir!r} a training workdir "
                                "(made by `depthsense train`)?")
    return ml_collections.ConfigDict(json.loads(storage.read_text(file)))


def checkpoint_steps(folder: str) -> list[int]:
    """The steps saved in an orbax checkpoint folder (one numbered folder each), ascending."""
    if not storage.isdir(folder):
        return []
    return sorted(int(name) for name in storage.listdir(folder)
                  if name.isdigit() and storage.isdir(storage.join(folder, name)))


def resolve_checkpoint(workdir: str, checkpoint: str = "latest") -> tuple[str, list[int]]:
    """(folder, candidate steps, newest first) of a workdir's checkpoint: "latest" (every
    step of checkpoints/, for a fallback past a damaged newest one), "best" (best/) or a
    step number (from checkpoints/, else best/). ValueError when there is none."""
    latest, best = path(workdir, CHECKPOINTS), path(workdir, BEST)
    if checkpoint in ("latest", "best"):
        folder = latest if checkpoint == "latest" else best
        candidates = checkpoint_steps(folder)[::-1]
        if not candidates:
            raise ValueError(f"{workdir} has no {checkpoint} checkpoint yet (in {folder})")
        return folder, candidates
    try:
        step = int(checkpoint)
    except ValueError:
        raise ValueError(f"--checkpoint must be 'latest', 'best' or a step number, got "
                         f"{checkpoint!r}") from None
    for folder in (latest, best):
        if step in checkpoint_steps(folder):
            return folder, [step]
    there = sorted(set(checkpoint_steps(latest) + checkpoint_steps(best)))
    raise ValueError(f"no checkpoint of step {step} in {latest} or {best}; there are {there}")


def first_readable(candidates: list[int], read: Callable[[int], Any],
                   log: Callable[[str], None]) -> tuple[Any, int | None, list[str]]:
    """(read(step), step, failures) for the first of `candidates` that reads; (None, None,
    failures) when none does. Each failure is logged as a warning and listed."""
    failures = []
    for step in candidates:
        try:
            return read(step), step, failures
        except Exception as err:  # a half-written checkpoint: fall back to the one before
            failures.append(f"step {step}: {type(err).__name__}: {str(err)[:300]}")
            log(f"warning: checkpoint {step} cannot be read; trying the previous one")
    return None, None, failures

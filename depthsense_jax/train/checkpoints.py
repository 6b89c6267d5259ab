"""Orbax checkpoints of a training workdir: the last K TrainStates, the best one by
validation WHDR, and resuming a run with a fallback past a damaged checkpoint. Reading a
checkpoint's params alone (evaluation, prediction, export, init.from) is
`params_io.restore_params`: no optimizer is built for it."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from depthsense_jax import storage
from depthsense_jax import workdir as workdir_lib


def managers(workdir: str, keep: int) -> tuple[ocp.CheckpointManager, ocp.CheckpointManager]:
    """(latest, best): the last `keep` checkpoints in DIR/checkpoints, and the one with the
    lowest validation WHDR in DIR/best."""
    options = dict(enable_async_checkpointing=False)
    latest = ocp.CheckpointManager(
        workdir_lib.path(workdir, workdir_lib.CHECKPOINTS),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, **options),
    )
    best = ocp.CheckpointManager(
        workdir_lib.path(workdir, workdir_lib.BEST),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m["whdr"], best_mode="min",
            keep_checkpoints_without_metrics=False, **options),
    )
    return latest, best


def save(manager: ocp.CheckpointManager, step: int, train_state,
         metrics: dict | None = None) -> None:
    manager.save(step, args=ocp.args.StandardSave(train_state), metrics=metrics)


def restore(manager: ocp.CheckpointManager, train_state, log: Callable[[str], None],
            workdir: str, step: int | None = None):
    """(state, step) from the newest readable checkpoint of `manager` (or exactly `step`);
    (train_state, 0) when there is none. A damaged newest checkpoint falls back to the one
    before with a warning, and is moved aside (STEP.unreadable) so that the resumed run can
    save that step again; when none fits the config, a ValueError says so and nothing is
    moved."""
    candidates = sorted(manager.all_steps(), reverse=True)
    if step is not None:
        if step not in candidates:
            raise ValueError(f"no checkpoint of step {step} in {manager.directory}; there are "
                             f"{sorted(candidates)}")
        candidates = [step]
    def read(s: int):
        _check_shapes(manager, s, train_state)
        return manager.restore(s, args=ocp.args.StandardRestore(train_state))

    restored, found, failures = workdir_lib.first_readable(candidates, read, log)
    if found is not None:
        if failures and step is None:
            _move_aside(manager, [s for s in candidates if s > found], log)
        return restored, found
    if failures:
        # Not one checkpoint fits: most likely the config changed (another model size).
        raise ValueError(
            f"no checkpoint in {manager.directory} fits this config (a different model or "
            f"optimizer?); use a new --workdir or the config that wrote {workdir}:\n  "
            + "\n  ".join(failures)
        )
    return train_state, 0


def _name(path) -> str:
    """A tree path as the dotted name orbax's metadata uses: params.encoder.conv1.kernel."""
    return jax.tree_util.keystr(path, simple=True, separator=".")


def _check_shapes(manager: ocp.CheckpointManager, step: int, train_state) -> None:
    """A ValueError naming the first variable whose shape in checkpoint `step` differs from
    train_state's, from the checkpoint's metadata before any array is read: a restore that
    fails on a shape leaves orbax's pending reads behind. Where the metadata cannot be read
    (a damaged checkpoint), the restore itself reports it."""
    try:
        metadata = ocp.StandardCheckpointHandler().metadata(
            manager.directory / str(step) / "default")
        stored = {_name(p): tuple(leaf.shape) for p, leaf in
                  jax.tree_util.tree_leaves_with_path(metadata) if hasattr(leaf, "shape")}
    except Exception:  # noqa: BLE001 - unreadable metadata: restore names the failure
        return
    for p, leaf in jax.tree_util.tree_leaves_with_path(train_state):
        name, shape = _name(p), np.shape(leaf)
        if name in stored and stored[name] != shape:
            raise ValueError(f"{name} has shape {stored[name]} in the checkpoint and {shape} "
                             f"in this config")


def _move_aside(manager: ocp.CheckpointManager, steps: list[int],
                log: Callable[[str], None]) -> None:
    for bad in steps:
        folder = storage.join(str(manager.directory), str(bad))
        storage.move_tree(folder, folder + ".unreadable")
        log(f"moved the unreadable checkpoint {bad} to {folder}.unreadable")
    manager.reload()

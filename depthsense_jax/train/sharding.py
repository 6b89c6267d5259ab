"""A data-parallel mesh over every device of every host, global batches on it, and joining
the other processes of a multi-host run."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA = "data"


def make_data_mesh(devices=None) -> Mesh:
    """1-D mesh named "data" over all devices (all hosts). Axis type Auto: shardings are
    given to jit explicitly rather than carried in the types (JAX 0.10's default for
    make_mesh is Explicit)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (DATA,), axis_types=(AxisType.Auto,), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the data axis."""
    return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, num_devices: int) -> None:
    """The global batch must split evenly over the devices (ValueError saying what to use)."""
    if global_batch % num_devices:
        raise ValueError(
            f"config.batch_size={global_batch} is not divisible by the {num_devices} devices: "
            f"use a multiple of {num_devices}"
        )


def global_batch(host_batch: dict, mesh: Mesh) -> dict:
    """Host-local NumPy arrays (this host's rows) -> global jax.Arrays sharded over "data".

    Non-numeric entries (file names) are dropped: they do not go to the devices.
    """
    sharding = batch_sharding(mesh)
    out = {}
    for key, value in host_batch.items():
        value = np.asarray(value)
        if value.dtype.kind in "biuf":
            out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


def pad_batch(batch: dict, size: int) -> dict:
    """Pad a short (evaluation) host batch to `size` rows with zeros: empty masks, so the
    padded rows have weight 0 in every metric. Non-numeric entries are kept as they are."""
    rows = len(batch["image"])
    if rows == size:
        return batch
    out = {}
    for key, value in batch.items():
        pad = [(0, size - rows)] + [(0, 0)] * (value.ndim - 1)
        out[key] = np.pad(value, pad) if value.dtype.kind in "biuf" else value
    return out


def maybe_initialize_distributed(coordinator: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None,
                                 force: bool = False) -> bool:
    """jax.distributed.initialize() when asked or when the environment is a multi-process
    one: a coordinator address (argument or JAX_COORDINATOR_ADDRESS), a multi-host Cloud TPU
    slice (TPU_WORKER_HOSTNAMES lists several), Slurm or Open MPI with several tasks.
    Must run before anything touches a JAX device. Returns whether it initialised."""
    env = os.environ
    multi_host_tpu = "," in env.get("TPU_WORKER_HOSTNAMES", "")
    launcher = any(int(env.get(name, "1") or 1) > 1
                   for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))
    wanted = force or coordinator or env.get("JAX_COORDINATOR_ADDRESS") or multi_host_tpu \
        or launcher
    if not wanted:
        return False
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
    return True

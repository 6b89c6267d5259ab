"""A data-parallel mesh over every device of every host, and global batches on it."""

from __future__ import annotations

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


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
    if global_batch % mesh.size:
        raise ValueError(
            f"config.batch_size={global_batch} is not divisible by the {mesh.size} devices: use "
            f"a multiple of {mesh.size}"
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

"""Argument checks that run at trace time and raise ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def shape_of(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def check_rank(name: str, x, ranks: int | Sequence[int], layout: str) -> None:
    """Raise unless `x` has one of `ranks` dimensions; `layout` says the expected shape."""
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if np.ndim(x) not in ranks:
        raise ValueError(f"`{name}` must have shape {layout}, got shape {shape_of(x)}")


def check_same_shape(name: str, x, ref_name: str, ref_shape: Sequence[int]) -> None:
    if shape_of(x) != tuple(ref_shape):
        raise ValueError(
            f"`{name}` must have the shape of `{ref_name}` {tuple(ref_shape)}, got {shape_of(x)}"
        )


def check_mask(mask, ref_name: str, ref_shape: Sequence[int]) -> None:
    """A mask is (B, H, W) matching the leading dims of the reference; any dtype, read as bool."""
    if mask is None:
        return
    check_same_shape("mask", mask, ref_name, tuple(ref_shape)[:3])


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")


def check_nonnegative(name: str, value) -> None:
    if not np.isscalar(value) or not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite non-negative number, got {value!r}")

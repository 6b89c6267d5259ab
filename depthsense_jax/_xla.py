"""A workaround for XLA:CPU fusion decisions that cost an order of magnitude in speed."""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax import lax


def _cpu_unfused(fn: Callable, *args):
    sized = [leaf for leaf in jax.tree.leaves(args) if leaf.size]
    if not sized:
        return fn(*args)
    leaf = sized[0].reshape(-1)
    # The middle element, not the first: a padded input has a constant first element, and a
    # predicate that XLA can fold removes the conditional.
    probe = leaf[leaf.shape[0] // 2]
    # A conditional is a fusion boundary that XLA:CPU keeps (`lax.optimization_barrier` is
    # expanded away there). Both branches are `fn` and the predicate, false only for NaN, cannot
    # be folded at compile time, so the result is `fn(*args)` either way.
    return lax.cond(probe == probe, fn, fn, *args)


def unfused(fn: Callable, *args):
    """`fn(*args)` as a computation of its own: XLA does not fuse it with its neighbours.

    On CPU this avoids two costly fusions: a blur's row pass pulled into the column pass (all
    row taps recomputed for each column tap), and shifted slices pulled into a reduction fusion
    that materialises every slice on its own. Elsewhere it is a plain call: GPU and TPU fusion
    weigh duplication themselves, and a conditional there reads its predicate back to the host.
    """
    return lax.platform_dependent(
        *args, cpu=lambda *a: _cpu_unfused(fn, *a), default=fn
    )

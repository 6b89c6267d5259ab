"""depthsense-jax: monocular relative depth in JAX/Flax."""

from depthsense_jax import _cpu_flags

_cpu_flags.apply()  # before anything starts JAX's CPU backend

from depthsense_jax import losses, metrics, sampling  # noqa: E402

__version__ = "0.1.0"
__all__ = ["losses", "metrics", "sampling", "__version__"]

"""depthsense-jax: monocular relative depth in JAX/Flax."""

from depthsense_jax import losses, metrics, sampling

__version__ = "0.1.0"
__all__ = ["losses", "metrics", "sampling", "__version__"]

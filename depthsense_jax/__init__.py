"""depthsense-jax: monocular relative depth in JAX/Flax."""

from depthsense_jax import _cpu_flags

_cpu_flags.apply()  # before anything starts JAX's CPU backend

import os  # noqa: E402

# TensorFlow's GCS client (epath's default for gs://) caches file status for 5 s, so a
# checkpoint folder just moved aside or deleted would still look present to orbax's step
# listing. Read when TF loads its file systems, so set before TF is imported; a value the
# user set wins.
os.environ.setdefault("GCS_STAT_CACHE_MAX_AGE", "0")

from depthsense_jax import losses, metrics, sampling  # noqa: E402

__version__ = "0.1.0"
__all__ = ["losses", "metrics", "sampling", "__version__"]

"""depthsense-jax: monocular relative depth in JAX/Flax.

Importing the package changes nothing outside it (no environment variable, no JAX
setting). Call `depthsense_jax.configure()` before using JAX to run with the settings the
`depthsense` command uses (`depthsense_jax.runtime`). The pure core (`losses`, `sampling`,
`metrics`) is imported on first use.
"""

import importlib

from depthsense_jax.runtime import configure

__version__ = "0.1.0"
__all__ = ["__version__", "configure", "losses", "metrics", "sampling"]
_CORE = ("losses", "metrics", "sampling")


def __getattr__(name: str):
    if name in _CORE:
        return importlib.import_module(f"depthsense_jax.{name}")
    raise AttributeError(f"module 'depthsense_jax' has no attribute {name!r}")

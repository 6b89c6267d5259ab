"""Process settings for depthsense's runs, applied by `configure()` before JAX (and
TensorFlow) start: the `depthsense` command calls it first thing, and a Python user calls
`depthsense_jax.configure()` before using JAX. Importing the package sets nothing: a library
must not change JAX for its user's other models, and a flag set after JAX has started is
silently ignored.

- XLA:CPU (jaxlib 0.10-0.11) hands convolutions to YNNPACK by default, whose weight gradient
  of a 3x3 convolution over a large feature map is 4-7x slower than XLA's own path and
  whose forward is ~10% slower: ResNet-50 DepthNet trained at 0.49x PyTorch's speed on this
  project's CPU with it (docs/benchmarks.md, "Convolutions on CPU"). Removing only the
  convolution from YNNPACK's fusion types (`FLAG`; its dot, eltwise and reduce fusions
  stay) brings the model's convolutions, summed, within 0-13% of oneDNN's speed. The flag
  is added to XLA_FLAGS unless the user already sets
  `--xla_cpu_experimental_ynn_fusion_type`, or sets DEPTHSENSE_KEEP_XLA_CPU_FLAGS=1; only
  for the jaxlib versions where it was measured (an XLA that does not know a flag aborts
  the process). It has no effect on GPU or TPU.
- TensorFlow's GCS client (epath's default for gs://) caches file status for 5 s, so a
  checkpoint folder just moved aside or deleted would still look present to orbax's step
  listing: GCS_STAT_CACHE_MAX_AGE=0 unless the user set it (read when TF loads its file
  systems).
"""

from __future__ import annotations

import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
MEASURED_JAXLIB = ((0, 10), (0, 11))  # (major, minor) versions that know the flag
OPT_OUT = "DEPTHSENSE_KEEP_XLA_CPU_FLAGS"
GCS_STAT_CACHE = "GCS_STAT_CACHE_MAX_AGE"


def _jaxlib_version() -> tuple[int, int] | None:
    try:
        from jaxlib import version
    except ImportError:
        return None
    parts = version.__version__.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def apply_cpu_flag() -> bool:
    """Add FLAG to XLA_FLAGS where it applies (module docstring); True when added."""
    flags = os.environ.get("XLA_FLAGS", "")
    if (os.environ.get(OPT_OUT) == "1" or "xla_cpu_experimental_ynn_fusion_type" in flags
            or _jaxlib_version() not in MEASURED_JAXLIB):
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True


def ynn_convolution_enabled() -> bool:
    """Whether XLA_FLAGS leave convolutions to YNNPACK (XLA:CPU's default)."""
    for flag in os.environ.get("XLA_FLAGS", "").split():
        if flag.startswith("--xla_cpu_experimental_ynn_fusion_type="):
            value = flag.split("=", 1)[1]
            if value.startswith(("+", "-")):
                return "-individual_convolution" not in value.split(",")
            return "individual_convolution" in value.split(",")
    return True


def configure() -> dict[str, str]:
    """Apply the settings of the module docstring to this process's environment, before
    JAX and TensorFlow start; a value the user set wins. Returns the variables it changed
    ({name: new value})."""
    before = {name: os.environ.get(name) for name in ("XLA_FLAGS", GCS_STAT_CACHE)}
    apply_cpu_flag()
    os.environ.setdefault(GCS_STAT_CACHE, "0")
    return {name: os.environ[name] for name, value in before.items()
            if os.environ.get(name) != value}

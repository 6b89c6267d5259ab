"""Process settings (depthsense_jax.runtime): importing the package changes nothing outside
it; `configure()`, which the `depthsense` command calls first, adds the XLA:CPU flag that
turns YNNPACK's convolutions off and GCS_STAT_CACHE_MAX_AGE=0, never over the user's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from depthsense_jax import runtime

# Run in a child without the settings this test session applied (conftest configures it).
CLEAN = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", runtime.GCS_STAT_CACHE, runtime.OPT_OUT)}


def _child(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], env=CLEAN, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_importing_the_package_leaves_the_environment_unchanged():
    """Its dependencies set variables of their own when imported (TensorFlow sets
    TF2_BEHAVIOR and others): they are imported first, then every module of ours."""
    changed = _child(
        "import os, json, pkgutil, importlib\n"
        "import jax, tensorflow, tensorflow_datasets, orbax.checkpoint, flax, optax\n"
        "before = dict(os.environ)\n"
        "import depthsense_jax\n"
        "for m in pkgutil.walk_packages(depthsense_jax.__path__, 'depthsense_jax.'):\n"
        "    if not m.name.endswith(('torch_depthnet', 'torch_losses', '__main__')):\n"
        "        importlib.import_module(m.name)\n"
        "from depthsense_jax import losses, metrics, sampling\n"
        "print(json.dumps(sorted(k for k in set(before) | set(os.environ) "
        "if before.get(k) != os.environ.get(k))))")
    assert json.loads(changed) == []


def test_configure_sets_what_the_cli_runs_with():
    if runtime._jaxlib_version() not in runtime.MEASURED_JAXLIB:
        pytest.skip("jaxlib outside the measured versions: the flag is not added")
    got = json.loads(_child(
        "import json, depthsense_jax\nprint(json.dumps(depthsense_jax.configure()))"))
    assert got == {"XLA_FLAGS": runtime.FLAG, runtime.GCS_STAT_CACHE: "0"}


def test_the_cli_gets_the_faster_cpu_convolutions_before_jax_starts():
    """The entry point configures the process before a command touches JAX: JAX's backend
    has not started when the flag is in XLA_FLAGS, so the backend starts with it (and an
    XLA that did not know the flag would abort here)."""
    if runtime._jaxlib_version() not in runtime.MEASURED_JAXLIB:
        pytest.skip("jaxlib outside the measured versions: the flag is not added")
    line = _child(
        "import json, os\nfrom depthsense_jax import cli\n"
        "from jax._src import xla_bridge\n"
        "assert not xla_bridge.backends_are_initialized()\n"
        "code = cli.main(['model-summary', '--config', 'synthetic'])\n"
        "flags = os.environ.get('XLA_FLAGS', '')\n"
        "assert not xla_bridge.backends_are_initialized()\n"
        "import jax.numpy as jnp; jnp.ones(3).block_until_ready()\n"
        "print(json.dumps([code, flags, xla_bridge.backends_are_initialized()]))")
    code, flags, started = json.loads(line)
    assert code == 0 and started
    assert runtime.FLAG in flags.split()


@pytest.mark.parametrize("flags,enabled", [
    ("", True),
    ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution", False),
    ("--xla_cpu_experimental_ynn_fusion_type=", False),
    ("--xla_cpu_experimental_ynn_fusion_type=individual_dot,individual_convolution", True),
    ("--xla_cpu_experimental_ynn_fusion_type=-reduce", True),
])
def test_reading_the_ynn_flag(flags, enabled, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", flags)
    assert runtime.ynn_convolution_enabled() is enabled


def test_the_flag_is_added_once_and_never_over_the_users(monkeypatch):
    monkeypatch.setattr(runtime, "_jaxlib_version", lambda: (0, 10))
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    monkeypatch.delenv(runtime.OPT_OUT, raising=False)
    assert runtime.apply_cpu_flag()
    import os

    assert os.environ["XLA_FLAGS"] == ("--xla_force_host_platform_device_count=8 "
                                       + runtime.FLAG)
    assert not runtime.apply_cpu_flag()  # already there
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    assert not runtime.apply_cpu_flag()
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv(runtime.OPT_OUT, "1")
    assert not runtime.apply_cpu_flag()
    monkeypatch.delenv(runtime.OPT_OUT)
    monkeypatch.setattr(runtime, "_jaxlib_version", lambda: (0, 13))  # not measured
    assert not runtime.apply_cpu_flag()


def test_the_flag_is_in_effect_in_this_process():
    """conftest configured the process before JAX's CPU backend started."""
    if runtime._jaxlib_version() not in runtime.MEASURED_JAXLIB:
        pytest.skip("jaxlib outside the measured versions: the flag is not added")
    assert not runtime.ynn_convolution_enabled()

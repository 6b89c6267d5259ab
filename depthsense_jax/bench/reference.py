"""The plain-PyTorch references of `--compare`, loaded from the repository's
tests/reference/ (they are not part of the installed package)."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "reference")


def load(name: str) -> ModuleType:
    """tests/reference/NAME.py as a module; a ValueError that says what is missing when
    torch is not installed or the package runs from outside a source checkout."""
    try:
        import torch

        torch.set_num_threads(_threads())
    except ImportError as err:
        raise ValueError(f"--compare needs torch ({err}); pip install -e '.[compare]'") from None
    path = os.path.join(REFERENCE_DIR, name + ".py")
    if not os.path.isfile(path):
        raise ValueError(f"--compare uses the PyTorch references in the repository's "
                         f"tests/reference/ ({path} is not there): run it from a source "
                         "checkout installed with pip install -e '.[compare]'")
    module_name = f"depthsense_reference_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _threads() -> int:
    from depthsense_jax.bench.timing import cpu_count

    return cpu_count()

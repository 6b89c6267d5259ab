"""Shared test settings: CPU, float32 by default, torch limited to the 2 CI cores."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass


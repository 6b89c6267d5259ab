"""The Depth Anything modules on their own (no torch): shapes and input checks, the position
embedding interpolation against a float64 loop reference of PyTorch's bicubic, bf16, and
finite outputs and gradients on constant and extreme images."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from depthsense_jax.losses import scale_shift_invariant_loss
from depthsense_jax.models import depth_anything_io, registry
from depthsense_jax.models.resize import bicubic_matrix
from depthsense_jax.models.vit import interpolate_pos_embed

TINY = dict(embed_dim=32, depth=4, num_heads=2, features=16, out_channels=[8, 16, 32, 32],
            layers=[0, 1, 2, 3], pos_grid=4)


def _config(dtype="float32", mode="dinov2"):
    config = depth_anything_io.model_config_for(**TINY, pos_interpolation=mode)
    config.dtype = dtype
    return config


@pytest.fixture(scope="module")
def tiny(healthy_depth_anything):
    config = _config()
    return registry.build(config), healthy_depth_anything(config)


def _infer(module, variables, x):
    return jax.jit(lambda v, x: registry.infer(module, v, x))(variables, x)


def _torch_bicubic_1d(values: np.ndarray, out: int, ratio: float) -> np.ndarray:
    """PyTorch's upsample_bicubic2d along one axis, written out per output sample in float64:
    source x = (o + 0.5) ratio - 0.5, taps floor(x) - 1 .. floor(x) + 2 clamped to the
    borders, Keys' kernel with A = -0.75."""
    a = -0.75

    def kernel(t):
        t = abs(t)
        if t <= 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        if t < 2:
            return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
        return 0.0

    n = values.shape[0]
    result = np.zeros((out, *values.shape[1:]))
    for o in range(out):
        x = (o + 0.5) * ratio - 0.5
        base = math.floor(x)
        for k in range(-1, 3):
            result[o] += kernel(x - (base + k)) * values[min(max(base + k, 0), n - 1)]
    return result


@pytest.mark.parametrize("mode,offset", [("dinov2", 0.1), ("transformers", 0.0)])
@pytest.mark.parametrize("grid", [(3, 7), (9, 5), (6, 6)])
def test_position_embeddings_interpolate_as_pytorch_bicubic(mode, offset, grid):
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(1, 1 + 36, 5))
    h, w = grid
    got = np.asarray(interpolate_pos_embed(jnp.asarray(pos, jnp.float32), h, w, mode))
    patches = pos[0, 1:].reshape(6, 6, 5)
    if (h, w) == (6, 6):
        want = patches  # the references skip interpolation at their own grid
    else:
        rows = _torch_bicubic_1d(patches, h, 6 / (h + offset))
        want = _torch_bicubic_1d(rows.transpose(1, 0, 2), w, 6 / (w + offset)).transpose(
            1, 0, 2)
    np.testing.assert_allclose(got[0, 0], pos[0, 0], rtol=1e-6)
    np.testing.assert_allclose(got[0, 1:].reshape(h, w, 5), want, atol=2e-5)


def test_bicubic_rows_sum_to_one():
    weights = np.asarray(bicubic_matrix(37, 23, 37 / 23.1))
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-6)


def test_shapes_and_a_clear_error_for_sides_off_the_patch(tiny):
    module, variables = tiny
    x = jnp.zeros((2, 42, 70, 3))
    assert _infer(module, variables, x).shape == (2, 42, 70)
    with pytest.raises(ValueError, match="multiples of 14.*e.g. 42x70"):
        registry.infer(module, variables, jnp.zeros((1, 40, 64, 3)))


def test_bfloat16_follows_float32(tiny):
    module, variables = tiny
    x = jax.random.uniform(jax.random.PRNGKey(2), (1, 56, 84, 3))
    f32 = np.asarray(_infer(module, variables, x))
    bf16 = np.asarray(_infer(registry.build(_config("bfloat16")), variables, x))
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    assert np.corrcoef(f32.ravel(), bf16.ravel())[0, 1] > 0.99


def test_constant_and_extreme_images_give_finite_outputs_and_gradients(tiny):
    module, variables = tiny
    depth = jnp.ones((2, 42, 56))  # constant depth too
    mask = jnp.ones((2, 42, 56), bool)

    @jax.jit
    def loss_and_grads(params, images):
        def loss(params):
            pred = module.apply({"params": params}, images, train=True)
            return scale_shift_invariant_loss(pred, depth, mask)

        return jax.value_and_grad(loss)(params)

    for value in (0.0, 1.0, 1e6):
        loss, grads = loss_and_grads(variables["params"], jnp.full((2, 42, 56, 3), value))
        assert np.isfinite(float(loss)), value
        assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads)), value

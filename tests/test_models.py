"""DepthNet and its blocks: shapes, dtypes, BatchNorm modes, bf16, gradients, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from depthsense_jax.models import DepthNet, ResNet, stage_channels
from depthsense_jax.models.resize import _upsample_matmul, upsample_align_corners

TINY = {"width": 8, "fusion_channels": 16}


def _init(model, shape, seed=0):
    # Jitted: one program to compile, not each of init's operations on its own.
    return jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros(shape, jnp.float32))


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_encoder_stage_shapes(depth):
    model = ResNet(depth=depth, width=8)
    x = jnp.zeros((1, 64, 96, 3))
    feats = jax.eval_shape(lambda: model.apply(_init(model, x.shape), x))
    channels = stage_channels(depth, 8)
    for feat, stride, c in zip(feats, (4, 8, 16, 32), channels, strict=True):
        assert feat.shape == (1, 64 // stride, 96 // stride, c)


@pytest.mark.parametrize("depth", [18, pytest.param(50, marks=pytest.mark.slow)])
@pytest.mark.parametrize("shape", [(1, 64, 64, 3), (3, 96, 128, 3)])
def test_depthnet_output_shape_and_dtype(depth, shape):
    model = DepthNet(encoder_depth=depth, **TINY)
    variables = _init(model, shape)
    images = jax.random.uniform(jax.random.PRNGKey(1), shape)
    out = jax.jit(model.apply)(variables, images)
    assert out.shape == shape[:3] and out.dtype == jnp.float32
    assert np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
@pytest.mark.parametrize("shape", [(1, 64, 64, 3), (3, 96, 160, 3), (1, 384, 512, 3)])
def test_depthnet_shapes_every_depth(depth, shape):
    # Shapes only (traced, not run): every depth at sizes from 64x64 to 384x512.
    model = DepthNet(encoder_depth=depth, width=4, fusion_channels=8)
    out = jax.eval_shape(lambda: model.apply(_init(model, (1, 64, 64, 3)), jnp.zeros(shape)))
    assert out.shape == shape[:3] and out.dtype == jnp.float32


def test_parameter_counts_match_the_architecture():
    # Encoder: torchvision ResNet without fc (ResNet-50: 23,508,032). Decoder with F = 256:
    # FTB(c_in -> m) = conv3x3(c_in, m) + 2 conv3x3(m, m) (with biases) + BN(m).
    def conv(cin, cout, k=3, bias=True):
        return cin * cout * k * k + (cout if bias else 0)

    def ftb(cin, m):
        return conv(cin, m) + 2 * conv(m, m) + 2 * m

    f = 256
    c2, c3, c4, c5 = stage_channels(50)
    decoder = ftb(c5, 2 * f) + conv(2 * f, f)
    decoder += sum(ftb(c, f) + ftb(f, f) for c in (c4, c3, c2))
    decoder += conv(f, f // 2) + 2 * (f // 2) + conv(f // 2, 1)
    model = DepthNet(encoder_depth=50)
    shapes = jax.eval_shape(lambda: _init(model, (1, 64, 64, 3)))
    encoder = sum(x.size for x in jax.tree.leaves(shapes["params"]["encoder"]))
    decoder_count = sum(x.size for x in jax.tree.leaves(shapes["params"]["decoder"]))
    assert (encoder, decoder_count) == (23_508_032, decoder) == (23_508_032, 28_618_497)
    assert encoder + decoder_count == 52_126_529


def test_train_mode_updates_batch_stats_and_eval_uses_them():
    """Training mode normalises with the batch's statistics and moves every running
    statistic; eval mode normalises with the running ones: its output for an image does not
    depend on the rest of the batch (train mode's does), and it changes when the running
    statistics change."""
    model = DepthNet(encoder_depth=18, **TINY)
    images = jax.random.uniform(jax.random.PRNGKey(2), (2, 64, 64, 3))
    variables = _init(model, images.shape)
    apply = jax.jit(model.apply, static_argnames=("train", "mutable"))
    _, updates = apply(variables, images, train=True, mutable=("batch_stats",))
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updates["batch_stats"])
    changed = [not np.allclose(a, b) for a, b in zip(before, after, strict=True)]
    assert all(changed), f"{changed.count(False)} of {len(changed)} statistics did not move"
    alone = np.asarray(apply(variables, images[:1]))[0]
    in_batch = np.asarray(apply(variables, images))[0]
    np.testing.assert_allclose(alone, in_batch, rtol=1e-5, atol=1e-6)
    train_alone, _ = apply(variables, images[:1], train=True, mutable=("batch_stats",))
    train_batch, _ = apply(variables, images, train=True, mutable=("batch_stats",))
    assert not np.allclose(np.asarray(train_alone)[0], np.asarray(train_batch)[0])
    moved = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    assert not np.allclose(np.asarray(apply(moved, images)), np.asarray(
        apply(variables, images)))


@pytest.mark.slow
def test_bfloat16_compute_is_close_to_float32():
    images = jax.random.uniform(jax.random.PRNGKey(3), (2, 64, 64, 3))
    f32 = DepthNet(encoder_depth=18, width=16, fusion_channels=32)
    bf16 = DepthNet(encoder_depth=18, width=16, fusion_channels=32, dtype=jnp.bfloat16)
    variables = _init(f32, images.shape)
    ref = np.asarray(jax.jit(f32.apply)(variables, images))
    out = jax.jit(bf16.apply)(variables, images)
    assert out.dtype == jnp.float32
    for leaf in jax.tree.leaves(_init(bf16, images.shape)["params"]):
        assert leaf.dtype == jnp.float32
    rel = np.linalg.norm(np.asarray(out) - ref) / np.linalg.norm(ref)
    assert rel < 2e-2, rel


@pytest.mark.slow
def test_every_parameter_gets_a_gradient_and_the_gradient_is_the_slope():
    """Every parameter leaf gets a nonzero gradient, and the gradient is the loss's slope:
    along the normalised gradient d, (L(p + e d) - L(p - e d)) / 2e is |grad| (a central
    difference), and a small step against it lowers the loss."""
    model = DepthNet(encoder_depth=18, **TINY)
    images = jax.random.uniform(jax.random.PRNGKey(4), (2, 64, 64, 3))
    target = jax.random.uniform(jax.random.PRNGKey(5), (2, 64, 64))
    variables = _init(model, images.shape)

    def loss(params):
        out, _ = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]}, images, train=True,
            mutable=["batch_stats"],
        )
        return jnp.mean((out - target) ** 2)

    loss = jax.jit(loss)  # one program rather than every operation compiled on its own
    params = variables["params"]
    grads = jax.jit(jax.grad(loss))(params)
    zero = [jax.tree_util.keystr(p) for p, g in jax.tree_util.tree_leaves_with_path(grads)
            if not np.any(np.asarray(g))]
    assert not zero, f"zero gradient for {zero}"
    norm = float(jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads))))
    direction = jax.tree.map(lambda g: g / norm, grads)
    step = 1e-2

    def moved(sign):
        return float(loss(jax.tree.map(lambda p, d: p + sign * step * d, params, direction)))

    slope = (moved(1) - moved(-1)) / (2 * step)
    assert slope == pytest.approx(norm, rel=0.05)
    assert moved(-1) < float(loss(params))


@pytest.mark.parametrize("shape", [(1, 60, 64, 3), (1, 64, 33, 3), (1, 64, 64), (1, 64, 64, 4)])
def test_bad_image_shapes_raise(shape):
    model = DepthNet(encoder_depth=18, **TINY)
    with pytest.raises(ValueError, match="images"):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def test_unknown_depth_raises():
    model = ResNet(depth=42)
    with pytest.raises(ValueError, match="depth"):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))


def _numpy_align_corners(x: np.ndarray, factor: int) -> np.ndarray:
    """float64 bilinear resize with align_corners=True, written out per axis."""
    def axis_resize(a, axis):
        n = a.shape[axis]
        m = n * factor
        pos = np.arange(m) * (n - 1) / (m - 1) if n > 1 else np.zeros(m)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        frac = pos - lo
        shape = [1] * a.ndim
        shape[axis] = m
        frac = frac.reshape(shape)
        return np.take(a, lo, axis=axis) * (1 - frac) + np.take(a, hi, axis=axis) * frac

    return axis_resize(axis_resize(x.astype(np.float64), 1), 2)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 8, 8, 1), (1, 1, 4, 2)])
def test_upsample_matches_align_corners_reference(shape):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    out = np.asarray(upsample_align_corners(jnp.asarray(x)))
    np.testing.assert_allclose(out, _numpy_align_corners(x, 2), atol=1e-5)


def test_upsample_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).random((2, 6, 7, 3)).astype(np.float32)
    ref = torch.nn.functional.interpolate(
        torch.tensor(x).permute(0, 3, 1, 2), scale_factor=2, mode="bilinear", align_corners=True
    ).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(upsample_align_corners(jnp.asarray(x))), ref, atol=1e-5)


def test_upsample_gradient_is_the_matrix_forms(rng):
    x = jnp.asarray(rng.standard_normal((2, 5, 7, 3)), jnp.float32)
    weights = jnp.asarray(rng.standard_normal((2, 10, 14, 3)), jnp.float32)
    np.testing.assert_allclose(upsample_align_corners(x), _upsample_matmul(x, 2), atol=1e-6)

    def loss(fn):
        return jax.grad(lambda v: jnp.sum(jnp.sin(fn(v)) * weights))(x)

    np.testing.assert_allclose(loss(upsample_align_corners),
                               loss(lambda v: _upsample_matmul(v, 2)), atol=1e-6)

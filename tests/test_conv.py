"""The convolution's switchable weight gradient (models.conv), the XLA:CPU flag that turns
YNNPACK's convolutions off (_cpu_flags), and the upsampling's custom gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from depthsense_jax import _cpu_flags
from depthsense_jax.models import DepthNet
from depthsense_jax.models import conv as conv_lib
from depthsense_jax.models.fusion import _upsample_matmul, upsample_align_corners

CASES = [  # (batch, size, cin, cout, kernel, stride, padding)
    (2, 9, 3, 5, 3, 1, ((1, 1), (1, 1))),
    (2, 10, 4, 6, 3, 2, ((1, 1), (1, 1))),
    (1, 11, 2, 3, 7, 2, ((3, 3), (3, 3))),
    (2, 8, 3, 4, 3, 1, ((0, 0), (0, 0))),
    (2, 8, 3, 4, 1, 2, ((0, 0), (0, 0))),
    (1, 7, 2, 2, 3, 1, ((2, 0), (1, 2))),  # asymmetric
    (2, 9, 3, 4, 3, 1, "SAME"),
    (2, 9, 3, 4, 3, 2, "VALID"),
]


def _grads(impl, x, w, stride, padding):
    conv = conv_lib.conv_for(impl)

    def loss(x, w):
        y = conv(x, w, (stride, stride), padding, dimension_numbers=conv_lib.NHWC)
        return jnp.sum(jnp.sin(y.astype(jnp.float32)))

    return jax.value_and_grad(loss, argnums=(0, 1))(x, w)


@pytest.mark.parametrize("case", CASES, ids=[str(c[:6]) for c in CASES])
def test_gemm_weight_gradient_equals_xla_float32(case, rng):
    b, n, cin, cout, k, stride, padding = case
    x = jnp.asarray(rng.standard_normal((b, n, n, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)
    value, (dx, dw) = _grads("gemm", x, w, stride, padding)
    want_value, (want_dx, want_dw) = _grads("xla", x, w, stride, padding)
    assert value == want_value
    np.testing.assert_array_equal(dx, want_dx)  # the input gradient is XLA's own
    np.testing.assert_allclose(dw, want_dw, rtol=1e-5, atol=1e-5 * float(jnp.abs(want_dw).max()))


def test_gemm_weight_gradient_equals_a_float64_sum(rng):
    """dw[i, j, c, o] = sum over (b, h, w) of x_padded[b, h*s + i, w*s + j, c] dy[b, h, w, o],
    summed in NumPy float64."""
    x = rng.standard_normal((2, 7, 6, 3))
    dy = rng.standard_normal((2, 4, 3, 5))
    pads = ((1, 1), (1, 1))
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    want = np.zeros((3, 3, 3, 5))
    for i in range(3):
        for j in range(3):
            window = xp[:, i:i + 7:2, j:j + 6:2, :][:, :4, :3]
            want[i, j] = np.einsum("bhwc,bhwo->co", window, dy)
    got = conv_lib.tap_gemm_weight_grad(jnp.asarray(x, jnp.float32),
                                        jnp.asarray(dy, jnp.float32), (3, 3, 3, 5), (2, 2),
                                        pads)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_gemm_weight_gradient_bfloat16(rng):
    x = jnp.asarray(rng.standard_normal((2, 12, 12, 8)), jnp.bfloat16)
    w = jnp.asarray(rng.standard_normal((3, 3, 8, 6)) * 0.3, jnp.bfloat16)
    _, (dx, dw) = _grads("gemm", x, w, 1, ((1, 1), (1, 1)))
    _, (want_dx, want_dw) = _grads("xla", x, w, 1, ((1, 1), (1, 1)))
    assert dw.dtype == jnp.bfloat16 and dx.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(dx, np.float32), np.asarray(want_dx, np.float32))
    # Both accumulate in float32 and round once to bfloat16 (8 bits of mantissa).
    scale = float(jnp.abs(want_dw.astype(jnp.float32)).max())
    np.testing.assert_allclose(np.asarray(dw, np.float32), np.asarray(want_dw, np.float32),
                               rtol=2 ** -7, atol=2 ** -7 * scale)


def test_the_model_switch_changes_only_how_the_gradient_is_computed(rng):
    images = jnp.asarray(rng.random((2, 64, 64, 3)), jnp.float32)
    grads = {}
    for impl in ("xla", "gemm", "auto"):
        model = DepthNet(encoder_depth=18, width=8, fusion_channels=16, conv_impl=impl)
        variables = model.init(jax.random.PRNGKey(0), images)

        def loss(params, model=model, variables=variables):
            out, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                 images, train=True, mutable=["batch_stats"])
            return jnp.mean(out ** 2)

        grads[impl] = jax.grad(loss)(variables["params"])
    for impl in ("gemm", "auto"):
        for got, want in zip(jax.tree.leaves(grads[impl]), jax.tree.leaves(grads["xla"]),
                             strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4,
                                       atol=1e-5 * float(jnp.abs(want).max()) + 1e-12)
    with pytest.raises(ValueError, match="conv_impl"):
        conv_lib.conv_for("fast")


def test_auto_uses_the_gemm_gradient_only_where_ynnpack_convolves(monkeypatch):
    big, small = (4, 96, 96, 256), (8, 32, 32, 256)
    kernel, thin = (3, 3, 256, 256), (3, 3, 128, 1)
    monkeypatch.setenv("XLA_FLAGS", _cpu_flags.FLAG)
    assert not conv_lib._uses_tap_gemm("auto", big, kernel)  # YNNPACK convolutions off
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    assert conv_lib._uses_tap_gemm("auto", big, kernel)
    assert not conv_lib._uses_tap_gemm("auto", small, kernel)
    assert not conv_lib._uses_tap_gemm("auto", big, thin)
    assert not conv_lib._uses_tap_gemm("auto", big, (1, 1, 256, 256))
    assert not conv_lib._uses_tap_gemm("xla", big, kernel)
    assert conv_lib._uses_tap_gemm("gemm", small, thin)


@pytest.mark.parametrize("flags,enabled", [
    ("", True),
    ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution", False),
    ("--xla_cpu_experimental_ynn_fusion_type=", False),
    ("--xla_cpu_experimental_ynn_fusion_type=individual_dot,individual_convolution", True),
    ("--xla_cpu_experimental_ynn_fusion_type=-reduce", True),
])
def test_reading_the_ynn_flag(flags, enabled, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", flags)
    assert _cpu_flags.ynn_convolution_enabled() is enabled


def test_the_flag_is_added_once_and_never_over_the_users(monkeypatch):
    monkeypatch.setattr(_cpu_flags, "_jaxlib_version", lambda: (0, 10))
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    monkeypatch.delenv(_cpu_flags.OPT_OUT, raising=False)
    assert _cpu_flags.apply()
    import os

    assert os.environ["XLA_FLAGS"] == ("--xla_force_host_platform_device_count=8 "
                                       + _cpu_flags.FLAG)
    assert not _cpu_flags.apply()  # already there
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    assert not _cpu_flags.apply()
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv(_cpu_flags.OPT_OUT, "1")
    assert not _cpu_flags.apply()
    monkeypatch.delenv(_cpu_flags.OPT_OUT)
    monkeypatch.setattr(_cpu_flags, "_jaxlib_version", lambda: (0, 13))  # not measured
    assert not _cpu_flags.apply()


def test_the_flag_is_in_effect_in_this_process():
    """The package added it before JAX's CPU backend started (conftest imports it first)."""
    if _cpu_flags._jaxlib_version() not in _cpu_flags.MEASURED_JAXLIB:
        pytest.skip("jaxlib outside the measured versions: the flag is not added")
    assert not _cpu_flags.ynn_convolution_enabled()


def test_upsample_gradient_is_the_matrix_forms(rng):
    x = jnp.asarray(rng.standard_normal((2, 5, 7, 3)), jnp.float32)
    weights = jnp.asarray(rng.standard_normal((2, 10, 14, 3)), jnp.float32)
    np.testing.assert_allclose(upsample_align_corners(x), _upsample_matmul(x, 2), atol=1e-6)

    def loss(fn):
        return jax.grad(lambda v: jnp.sum(jnp.sin(fn(v)) * weights))(x)

    np.testing.assert_allclose(loss(upsample_align_corners),
                               loss(lambda v: _upsample_matmul(v, 2)), atol=1e-6)

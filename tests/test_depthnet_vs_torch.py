"""The whole DepthNet (encoder and decoder) against the plain-PyTorch reference model with
copied weights, in eval mode (running statistics) and in train mode (batch statistics and
their running-average updates)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from depthsense_jax.models import DepthNet

torch = pytest.importorskip("torch")

from depthsense_jax.models.torch_depthnet import TorchDepthNet, load_flax_variables  # noqa: E402

SHAPE = (2, 64, 96, 3)


def _variables(model, seed):
    """Initialised variables with non-trivial BatchNorm statistics and decoder biases, like a
    trained model's (zero biases and unit variances would hide mistakes)."""
    variables = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1, 64, 64, 3)))
    rng = np.random.default_rng(seed)

    def perturb(path, x):
        name = path[-1].key
        x = np.asarray(x, np.float32)
        if name == "var":
            return (x * rng.uniform(0.5, 2.0, x.shape)).astype(np.float32)
        if name in ("mean", "bias"):
            return (x + rng.normal(0, 0.05, x.shape)).astype(np.float32)
        return x

    return jax.tree_util.tree_map_with_path(perturb, jax.device_get(variables))


def _torch_model(depth, width, features, variables):
    net = TorchDepthNet(depth, width, features)
    load_flax_variables(net, variables)
    return net


def _images(seed=0):
    return np.random.default_rng(seed).random(SHAPE, dtype=np.float32)


def _nchw(images):
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _close(ours, theirs, rtol=1e-4):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    scale = np.abs(theirs).max()
    assert scale > 1e-3  # a real output, not zeros
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("depth, width, features", [
    (18, 8, 16), pytest.param(50, 8, 32, marks=pytest.mark.slow)])
def test_eval_mode_matches_pytorch(depth, width, features):
    model = DepthNet(encoder_depth=depth, width=width, fusion_channels=features)
    variables = _variables(model, seed=depth)
    net = _torch_model(depth, width, features, variables).eval()
    images = _images()
    ours = jax.jit(model.apply)(variables, jnp.asarray(images))  # one program, not op by op
    with torch.no_grad():
        theirs = net(_nchw(images)).numpy()
    assert ours.shape == theirs.shape == SHAPE[:3]
    _close(ours, theirs)


@pytest.mark.parametrize("depth, width, features", [
    (18, 8, 16), pytest.param(50, 8, 32, marks=pytest.mark.slow)])
def test_train_mode_matches_pytorch(depth, width, features):
    """Batch statistics in the forward pass, and the running statistics after one step:
    means as PyTorch's (momentum 0.1 there is 0.9 here); variances differ only by PyTorch's
    unbiased n / (n - 1) in the running average, which is undone here per layer."""
    model = DepthNet(encoder_depth=depth, width=width, fusion_channels=features)
    variables = _variables(model, seed=depth + 1)
    net = _torch_model(depth, width, features, variables).train()
    counts = {}
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.register_forward_hook(
                lambda m, inputs, out, name=name: counts.__setitem__(
                    name, inputs[0].shape[0] * inputs[0].shape[2] * inputs[0].shape[3]))
    images = _images(1)
    ours, updates = jax.jit(model.apply, static_argnames=("train", "mutable"))(
        variables, jnp.asarray(images), train=True, mutable=("batch_stats",))
    with torch.no_grad():
        theirs = net(_nchw(images)).numpy()
    _close(ours, theirs)
    state = net.state_dict()
    flat = jax.tree_util.tree_flatten_with_path(jax.device_get(updates["batch_stats"]))[0]
    old = dict(jax.tree_util.tree_flatten_with_path(variables["batch_stats"])[0])
    checked = 0
    for path, new in flat:
        names = [p.key for p in path]
        module = ".".join(names[:-1])
        module = module.replace("downsample_conv", "downsample.0").replace(
            "downsample_bn", "downsample.1")
        module = ".".join(part.replace("_", ".", 1) if part.startswith("layer") else part
                          for part in module.split("."))
        new = np.asarray(new, np.float64)
        if names[-1] == "mean":
            np.testing.assert_allclose(new, state[f"{module}.running_mean"].numpy(),
                                       rtol=1e-4, atol=1e-5)
        else:
            n = counts[module]
            before = np.asarray(old[path], np.float64)
            biased = (new - 0.9 * before) / 0.1
            want = 0.9 * before + 0.1 * biased * n / (n - 1)
            np.testing.assert_allclose(want, state[f"{module}.running_var"].numpy(),
                                       rtol=1e-4, atol=1e-5)
        checked += 1
    assert checked == 2 * len(counts) > 0

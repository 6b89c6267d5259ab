"""Config files, command-line overrides, and building the model (with pretrained weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from depthsense_jax.config import create_variables, load_config, model_from_config

DEFAULT = "configs/default.py"


def test_default_config_fields():
    config = load_config(DEFAULT)
    assert config.model.encoder_depth == 50 and config.model.pretrained == ""
    assert config.image_size % 32 == 0


def test_overrides_keep_types():
    config = load_config(DEFAULT, [
        "--config.model.encoder_depth=18", "config.model.dtype=bfloat16",
        "--config.loss.weights.ssim=0.5", "--config.model.pretrained=/tmp/x.npz",
    ])
    assert config.model.encoder_depth == 18 and isinstance(config.model.encoder_depth, int)
    assert config.model.dtype == "bfloat16"
    assert config.loss.weights.ssim == 0.5
    assert config.model.pretrained == "/tmp/x.npz"


@pytest.mark.parametrize("override, message", [
    ("--config.model.nope=1", "no config field"),
    ("--config.nope.width=1", "no config field"),
    ("--config.model.width=wide", "is int"),
    ("--config.model.width", "KEY=VALUE"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(DEFAULT, [override])


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_config("configs/nope.py")


def test_unknown_dtype():
    config = load_config(DEFAULT, ["--config.model.dtype=float16"])
    with pytest.raises(ValueError, match="model.dtype"):
        model_from_config(config.model)


def test_create_variables_loads_pretrained_encoder(tmp_path):
    torch_resnet = pytest.importorskip("torch_resnet")
    net = torch_resnet.make_resnet(18, 8, seed=0)
    path = tmp_path / "r18.npz"
    np.savez(path, **{k: v.numpy() for k, v in net.state_dict().items()})
    config = load_config(DEFAULT, [
        "--config.model.encoder_depth=18", "--config.model.width=8",
        "--config.model.fusion_channels=16", f"--config.model.pretrained={path}",
    ])
    model, variables = create_variables(config.model, jax.random.PRNGKey(0))
    conv1 = np.asarray(variables["params"]["encoder"]["conv1"]["kernel"])
    np.testing.assert_array_equal(conv1, net.conv1.weight.detach().numpy().transpose(2, 3, 1, 0))
    mean = np.asarray(variables["batch_stats"]["encoder"]["layer1_0"]["bn1"]["mean"])
    np.testing.assert_array_equal(mean, net.layer1[0].bn1.running_mean.numpy())
    out = model.apply(variables, jnp.zeros((1, 64, 64, 3)))
    assert out.shape == (1, 64, 64)

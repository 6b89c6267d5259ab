"""Config files, command-line overrides, and building the model (with pretrained weights)."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from depthsense_jax import cli, losses
from depthsense_jax.config import load_config, shipped_names
from depthsense_jax.models import build, registry
from depthsense_jax.train import steps
from depthsense_jax.train.state import initial_variables

DEFAULT = "configs/base.py"


@pytest.mark.parametrize("name", shipped_names())
def test_every_shipped_config_is_a_valid_run(name):
    """Each shipped config names a known model family with every field it needs, passes the
    checks a run makes before compiling, and takes its loss options from the library's
    defaults unless it sets them (one place for them: losses.LossOptions)."""
    config = load_config(name)
    family = registry.family_of(config.model)
    family.config_dict(config.model)  # every field the family rebuilds from
    steps.validate(config, 1)
    defaults = dataclasses.asdict(losses.LossOptions())
    assert set(config.loss.options) == set(defaults)
    assert set(config.loss.weights) == set(losses.LOSS_NAMES)


def test_the_base_configs_loss_options_are_the_librarys():
    assert losses.LossOptions.from_mapping(dict(load_config(DEFAULT).loss.options)) == \
        losses.LossOptions()


def test_overrides_parse_values_of_each_type():
    config = load_config(DEFAULT, [
        "--config.model.encoder_depth=18", "config.model.dtype=bfloat16",
        "--config.loss.weights.ssim=0.5", "--config.model.pretrained=/tmp/x.npz",
        "--config.optimizer.learning_rate=1",  # an int where a float is: widened
        "--config.data.flip=false", "--config.data.keep_sky=True", "--config.data.name=123",
    ])
    assert config.model.encoder_depth == 18 and isinstance(config.model.encoder_depth, int)
    assert config.model.dtype == "bfloat16"
    assert config.loss.weights.ssim == 0.5
    assert config.model.pretrained == "/tmp/x.npz"
    assert config.optimizer.learning_rate == 1.0
    assert isinstance(config.optimizer.learning_rate, float)
    assert config.data.flip is False and config.data.keep_sky is True
    assert config.data.name == "123"  # a str field keeps the text


@pytest.mark.parametrize("override, message", [
    ("--config.model.nope=1", "no field 'model.nope'"),
    ("--config.nope.width=1", "no field 'nope.width'"),
    ("--config.model.widht=3", "did you mean model.width"),
    ("--config.model.width=wide", "model.width is int, got 'wide'"),
    # Used to become 12 silently (int(12.5)).
    ("--config.batch_size=12.5", "batch_size is int, got '12.5'"),
    ("--config.batch_size=True", "batch_size is int"),
    ("--config.optimizer.learning_rate=fast", "learning_rate is float"),
    ("--config.data.flip=1", "flip is bool"),
    ("--config.model=3", "is a section"),
    ("--config.model.width", "KEY=VALUE"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(DEFAULT, [override])


def test_config_is_locked_after_overrides():
    config = load_config(DEFAULT)
    config.batch_size = 4  # existing fields can still be set
    with pytest.raises(AttributeError):
        config.batch_sise = 4


def test_bad_override_on_the_command_line_is_one_clear_error(capsys):
    assert cli.main(["model-summary", "--config.batch_size=12.5"]) == cli.EXIT_ERROR
    assert "batch_size is int, got '12.5'" in capsys.readouterr().err


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_config("configs/nope.py")
    with pytest.raises(FileNotFoundError, match="shipped configs: base, "):
        load_config("nonexistent")


def test_shipped_configs_load_by_name_from_any_folder(tmp_path):
    """`--config synthetic` works outside the repository, and no top-level `configs`
    package is installed (it would clash with any other project's)."""
    script = ("import importlib.util, json\n"
              "from depthsense_jax.config import load_config\n"
              "print(json.dumps([load_config(n).to_dict() for n in ('synthetic', 'redweb')]))\n"
              "print(importlib.util.find_spec('configs'))\n")
    env = dict(os.environ, PYTHONPATH="")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded, spec = proc.stdout.strip().splitlines()[-2:]
    here = [json.loads(load_config(n).to_json()) for n in ("synthetic", "redweb")]
    assert json.loads(loaded) == here and spec == "None"


def test_unknown_dtype_and_family():
    config = load_config(DEFAULT, ["--config.model.dtype=float16"])
    with pytest.raises(ValueError, match="model.dtype"):
        build(config.model)
    config = load_config(DEFAULT, ["--config.model.name=vit"])
    with pytest.raises(ValueError, match="unknown model family 'vit'.*depthnet"):
        build(config.model)


def test_the_old_name_of_the_base_config_still_loads():
    assert load_config("default").to_dict() == load_config("base").to_dict()


def test_initial_variables_load_the_pretrained_encoder(tmp_path):
    pytest.importorskip("torch")
    from depthsense_jax.models.torch_depthnet import make_resnet

    net = make_resnet(18, 8, seed=0)
    path = tmp_path / "r18.npz"
    np.savez(path, **{k: v.numpy() for k, v in net.state_dict().items()})
    config = load_config(DEFAULT, [
        "--config.model.encoder_depth=18", "--config.model.width=8",
        "--config.model.fusion_channels=16", f"--config.model.pretrained={path}",
    ])
    model, variables = initial_variables(config)
    conv1 = np.asarray(variables["params"]["encoder"]["conv1"]["kernel"])
    np.testing.assert_array_equal(conv1, net.conv1.weight.detach().numpy().transpose(2, 3, 1, 0))
    mean = np.asarray(variables["batch_stats"]["encoder"]["layer1_0"]["bn1"]["mean"])
    np.testing.assert_array_equal(mean, net.layer1[0].bn1.running_mean.numpy())
    out = jax.jit(model.apply)(variables, jnp.zeros((1, 64, 64, 3)))
    assert out.shape == (1, 64, 64)


@pytest.mark.slow
def test_convert_weights_output_loads_as_model_pretrained(tmp_path, capsys):
    """A plain-PyTorch torchvision-layout state dict -> `depthsense convert-weights` ->
    .msgpack -> model.pretrained: the same encoder as loading the .pth itself (the
    .msgpack used to be rejected there, while the command said to load it there)."""
    torch = pytest.importorskip("torch")
    from depthsense_jax.models.torch_depthnet import make_resnet

    net = make_resnet(18, 8, seed=3)
    pth = tmp_path / "r18.pth"
    torch.save(net.state_dict(), pth)
    converted = tmp_path / "encoder.msgpack"
    assert cli.main(["convert-weights", str(pth), str(converted), "--depth", "18",
                     "--width", "8"]) == 0
    assert f"--config.model.pretrained={converted}" in capsys.readouterr().out
    model_overrides = ["--config.model.encoder_depth=18", "--config.model.width=8",
                       "--config.model.fusion_channels=16"]
    loaded = {}
    for name, path in (("msgpack", converted), ("pth", pth)):
        config = load_config(DEFAULT, [*model_overrides, f"--config.model.pretrained={path}"])
        _, variables = initial_variables(config)
        loaded[name] = variables
    for collection in ("params", "batch_stats"):
        a = jax.tree.leaves(loaded["msgpack"][collection]["encoder"])
        b = jax.tree.leaves(loaded["pth"][collection]["encoder"])
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # The msgpack of another encoder is a clear error naming the mismatches.
    config = load_config(DEFAULT, ["--config.model.encoder_depth=34", "--config.model.width=8",
                                   f"--config.model.pretrained={converted}"])
    with pytest.raises(ValueError, match="does not fit this ResNet encoder"):
        initial_variables(config)


def test_shipped_configs_load_from_an_uninstalled_source_tree(monkeypatch):
    """The device scripts run the repository on PYTHONPATH without installing it: there is no
    `depthsense_jax.configs` package then, and the configs come from the tree's configs/."""
    from depthsense_jax import config as config_module

    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(config_module.resources, "files", missing)
    assert config_module.shipped_names() == sorted(
        p.stem for p in (pathlib.Path(__file__).parents[1] / "configs").glob("[!_]*.py"))
    assert load_config("redweb_tpu").batch_size == 256

"""A second model family, defined here and nowhere in the package, goes through every
command with no change outside this file: training steps, validation, predict, export
(msgpack, jax), the zero-shot benchmark, model-summary, and loading through the one weights
loader (a foreign checkpoint format its family reads, as `--params` and `init.from`)."""

from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from depthsense_jax import cli, export, inference, params_io
from depthsense_jax.config import load_config
from depthsense_jax.models import registry
from depthsense_jax.models.preprocessing import check_images, normalize_imagenet
from depthsense_jax.train import loop, validation
from depthsense_jax.train.state import initial_variables

STRIDE = 8
TOY_SUFFIX = ".toy.npz"  # the toy's "foreign" checkpoint: flat arrays named a.b.c


class ToyEncoder(nn.Module):
    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i in range(3):  # three stride-2 convolutions: stride 8
            x = nn.relu(nn.Conv(self.features, (3, 3), strides=(2, 2), dtype=self.dtype,
                                name=f"conv{i}")(x))
        return x


class ToyNet(nn.Module):
    """(B, H, W, 3) in [0, 1], H and W multiples of 8 -> (B, H, W) float32; no BatchNorm."""

    features: int = 8
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False):
        check_images(images, STRIDE)
        x = ToyEncoder(self.features, self.dtype, name="encoder")(normalize_imagenet(images))
        y = nn.Conv(1, (3, 3), dtype=self.dtype, name="head")(x)
        # Nearest upsampling by repetition: traces with symbolic sizes (jax.export).
        y = jnp.repeat(jnp.repeat(y, STRIDE, axis=1), STRIDE, axis=2)
        return y[..., 0].astype(jnp.float32)


def _read_toy(path: str):
    with np.load(path) as data:
        flat = {tuple(k.split(".")): data[k] for k in data.files if k != "features"}
        features = int(data["features"])
    from flax import traverse_util

    config = ml_collections.ConfigDict({"features": features, "dtype": "float32"})
    return config, traverse_util.unflatten_dict(flat)


TOY = registry.ModelFamily(
    name="toy", build=lambda m: ToyNet(m.features, registry.dtype_of(m)),
    config_keys=("features", "dtype"), stride=STRIDE, default_size=64, encoder=("encoder",),
    readers=(registry.CheckpointReader("toy checkpoint", lambda p: p.endswith(TOY_SUFFIX),
                                       _read_toy),))


@pytest.fixture
def toy():
    registry.register(TOY)
    yield TOY
    registry.unregister(TOY.name)


def _config(tiny_overrides, *extra):
    config = load_config("base", [*tiny_overrides, "--config.num_epochs=1",
                                  "--config.steps_per_epoch=3", *extra])
    with config.unlocked():
        config.model = ml_collections.ConfigDict(
            {"name": "toy", "features": 8, "dtype": "float32", "pretrained": ""})
    return config


def _write_toy_checkpoint(path, variables, features=8):
    flat = {".".join(key.key for key in keys): np.asarray(leaf)
            for keys, leaf in jax.tree_util.tree_leaves_with_path(variables)}
    np.savez(path, features=np.asarray(features), **flat)


def test_a_toy_family_trains_validates_predicts_exports_and_is_benchmarked(
        toy, tiny_overrides, tmp_path, capsys):
    config = _config(tiny_overrides)
    workdir = str(tmp_path / "run")
    lines = []
    state = loop.train_and_evaluate(config, workdir, log=lines.append)
    assert int(state.step) == 3 and state.batch_stats == {}
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["step"] for r in records if r["split"] == "validation"] == [3]
    assert os.path.exists(os.path.join(workdir, "predictions.png"))

    # Validation of the workdir's checkpoint, params only, as `depthsense validate` does.
    record = validation.validate_checkpoint(workdir, log=lines.append)
    assert record["step"] == 3
    assert all(np.isfinite(record[name]) for name in validation.EVAL_KEYS)

    # Predict photos of any size: the model sees multiples of its stride 8.
    model = inference.load_model(workdir=workdir)
    assert model.family is toy and model.image_size == 64
    predictor = inference.Predictor(model)
    assert predictor.model_size(50, 70) == (64, 88)
    rng = np.random.default_rng(0)
    photos = [rng.random((50, 70, 3), dtype=np.float32), rng.random((9, 5, 3), np.float32)]
    depths = predictor.predict(photos)
    assert [d.shape for d in depths] == [(50, 70), (9, 5)]
    assert all(np.isfinite(d).all() and d.std() > 0 for d in depths[:1])

    # Export msgpack and jax; the folder loads back as the toy; ONNX is a clear error.
    out = str(tmp_path / "exported")
    export.export_all(out, model, formats=("msgpack", "jax"), log=lines.append)
    assert json.loads(open(os.path.join(out, "model.json")).read()) == {
        "name": "toy", "features": 8, "dtype": "float32", "image_size": 64}
    exported = inference.load_model(params=out)
    x = rng.random((2, 24, 40, 3), dtype=np.float32)  # a size the export's check did not use
    want = inference.Predictor(exported)(x)
    np.testing.assert_allclose(np.asarray(export.load_jax(
        os.path.join(out, "model.jax")).call(x)), want, atol=1e-5)
    with pytest.raises(ValueError, match="toy model family has no ONNX writer"):
        export.export_all(str(tmp_path / "onnx"), model, formats=("onnx",))

    # The zero-shot benchmark on NYU's layout, through the command line.
    from test_zero_shot import write_nyu

    write_nyu(tmp_path / "nyu", rng)
    assert cli.main(["zero-shot", "nyu", "--data-dir", str(tmp_path / "nyu"), "--params", out,
                     "--json", str(tmp_path / "nyu.json")]) == 0
    summary = json.loads((tmp_path / "nyu.json").read_text())["summary"]
    assert summary["images"] == 2 and 0 < summary["abs_rel"] < 10

    # model-summary: the parts of the toy, no BatchNorm column.
    lines = registry.summary(config.model).splitlines()
    assert lines[0] == "toy(features=8, dtype=float32)"
    assert lines[2].split()[0] == "encoder" and "batch_stats" not in lines[1]


def test_the_one_loader_reads_the_familys_own_checkpoint_format(toy, tiny_overrides, tmp_path):
    """A foreign checkpoint that the family's reader recognises loads through `--params`,
    `init.from` and `convert-weights` alike, and predicts what the same variables do."""
    config = _config(tiny_overrides)
    _, variables = initial_variables(config)
    variables = jax.tree.map(lambda v: np.asarray(v) + 0.01, variables)
    path = str(tmp_path / f"release{TOY_SUFFIX}")
    _write_toy_checkpoint(path, variables)
    loaded = params_io.load(path)
    assert loaded.source == "toy checkpoint" and dict(loaded.model_config) == {
        "name": "toy", "features": 8, "dtype": "float32"}
    x = np.random.default_rng(1).random((1, 32, 48, 3), dtype=np.float32)
    np.testing.assert_allclose(inference.Predictor(inference.load_model(params=path))(x),
                               inference.Predictor(inference.LoadedModel(
                                   loaded.model_config, variables))(x), atol=1e-6)
    with_init = _config(tiny_overrides, f"--config.init.from={path}")
    _, started = initial_variables(with_init)
    for a, b in zip(jax.tree.leaves(started), jax.tree.leaves(variables), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    folder = str(tmp_path / "converted")
    params_io.convert_weights(path, folder, config.model, log=lambda s: None)
    assert dict(params_io.load(folder).model_config) == dict(loaded.model_config)
    # A checkpoint of another family is named as such.
    other = load_config("base", [*tiny_overrides, f"--config.init.from={path}"])
    with pytest.raises(ValueError, match="is a toy model; config.model.name is 'depthnet'"):
        initial_variables(other)

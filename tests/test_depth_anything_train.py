"""configs/depth_anything_finetune.py trains: a tiny Depth Anything (a random Hugging Face
folder as init.from) takes three steps of the config's recipe (scale-and-shift-invariant +
gradient matching, the encoder at a tenth of the decoder's rate with layer decay) through
`train.loop.train_and_evaluate` on the tiny synthetic scenes: finite losses, a validation
before and after, a checkpoint that restores, the encoder moved less than the head."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from depthsense_jax import params_io
from depthsense_jax.config import load_config
from depthsense_jax.models import depth_anything_io
from depthsense_jax.train import loop

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

STEPS = 3
# Width 32, 4 blocks, 2 heads, all four blocks to the head, a 4x4 position grid (56 px).
TINY_MODEL = dict(embed_dim=32, depth=4, num_heads=2, features=16, out_channels=[8, 16, 32, 32],
                  layers=[0, 1, 2, 3], pos_grid=4, pos_interpolation="transformers")
# DepthNet's fields in the shared tiny overrides: this family has none of them.
DEPTHNET_KEYS = ("--config.model.encoder_depth=", "--config.model.width=",
                 "--config.model.fusion_channels=")


@pytest.fixture(scope="module")
def tiny_hf_folder(tmp_path_factory):
    from test_depth_anything import _healthy_hf_init_

    from depthsense_jax.models.torch_depth_anything import hf_config

    # At a trained model's scale: transformers' own init gives a near-constant map, which
    # the head's final ReLU can zero within a few steps (no gradient after that).
    config = depth_anything_io.model_config_for(**TINY_MODEL)
    model = _healthy_hf_init_(transformers.DepthAnythingForDepthEstimation(hf_config(config)))
    folder = tmp_path_factory.mktemp("hf") / "tiny-depth-anything-hf"
    model.eval().save_pretrained(folder)
    return folder


def test_the_finetune_recipe_trains_a_tiny_depth_anything(tiny_hf_folder, tiny_overrides,
                                                          tmp_path):
    overrides = [o for o in tiny_overrides if not o.startswith(DEPTHNET_KEYS)]
    # The tiny overrides' losses are DepthNet's (ranking + SSIM): back to the recipe's.
    overrides = [o for o in overrides if not o.startswith("--config.loss.weights.")]
    config = load_config("depth_anything_finetune", [
        *overrides, "--config.image_size=56", "--config.num_epochs=1",
        f"--config.steps_per_epoch={STEPS}", f"--config.checkpoint.every={STEPS}",
        f"--config.init.from={tiny_hf_folder}", "--config.optimizer.warmup_steps=1",
        "--config.optimizer.learning_rate=1e-3"])
    with config.unlocked():
        for key, value in TINY_MODEL.items():
            config.model[key] = value
    weights = {k: v for k, v in config.loss.weights.items() if v}
    assert weights == {"scale_shift": 1.0, "gradient_matching": 2.0}
    assert config.optimizer.encoder_lr_multiplier == 0.1 and config.optimizer.layer_decay < 1

    start = params_io.load_variables(str(tiny_hf_folder), config.model)["params"]
    workdir = str(tmp_path / "run")
    lines = []
    state = loop.train_and_evaluate(config, workdir, log=lines.append)
    assert int(state.step) == STEPS
    assert any("before training, the model of init.from" in line for line in lines)

    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    train = [r for r in records if r["split"] == "train"]
    assert train and all(np.isfinite(r["loss"]) for r in train)
    validation = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [0, STEPS]
    assert all(np.isfinite(r["whdr"]) for r in validation)

    model_config, restored, step = params_io.restore_params(workdir)
    assert step == STEPS
    assert {k: model_config[k] for k in TINY_MODEL} == TINY_MODEL
    for got, want in zip(jax.tree.leaves(restored["params"]), jax.tree.leaves(state.params),
                         strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))

    def moved(part):
        return max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(
            jax.tree.leaves(state.params[part]), jax.tree.leaves(start[part]), strict=True))

    # AdamW moves each weight by about its rate: the encoder's at most 0.1x the head's.
    assert 0 < moved("encoder") < 0.3 * moved("head")

"""The training loop on the tiny synthetic dataset: it learns, checkpoints, resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from depthsense_jax.config import load_config
from depthsense_jax.train import loop

pytest.importorskip("tensorflow_datasets")

TINY = [
    "--config.data.name=synthetic_scenes/tiny", "--config.image_size=64",
    "--config.batch_size=4", "--config.model.encoder_depth=18", "--config.model.width=8",
    "--config.model.fusion_channels=16", "--config.optimizer.warmup_steps=2",
    "--config.optimizer.learning_rate=1e-3", "--config.log_every=1",
    "--config.checkpoint.every=2", "--config.eval.num_pairs=100", "--config.eval.train_batches=1",
    "--config.loss.weights.edge_guided_ranking=0.0", "--config.loss.weights.smoothness=0.0",
]


def _config(data_dir, *extra):
    return load_config("configs/default.py", [*TINY, f"--config.data.data_dir={data_dir}",
                                              *extra])


def _records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_short_run_logs_checkpoints_and_resumes(tmp_path):
    data_dir = tmp_path / "data"
    workdir = str(tmp_path / "run")
    config = _config(data_dir, "--config.num_epochs=1", "--config.steps_per_epoch=4")
    lines = []
    loop.train_and_evaluate(config, workdir, log=lines.append)
    text = "\n".join(lines)
    assert "step 4/4" in text and "epoch 1" in text and "validation" in text
    records = _records(workdir)
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
    val = [r for r in records if r["split"] == "validation"][0]
    assert 0 <= val["whdr"] <= 1 and np.isfinite(val["loss"])
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    assert manager.latest_step() == 4
    # A second call finds the final checkpoint and has nothing left to do.
    lines.clear()
    loop.train_and_evaluate(config, workdir, log=lines.append)
    assert "resumed from the checkpoint of step 4" in "\n".join(lines)


def test_bad_configs_stop_before_compiling(tmp_path):
    for extra, message in [
        (["--config.image_size=40"], "multiple of 32"),
        (["--config.loss.weights.ssim=0.0", "--config.loss.weights.ranking=0.0"],
         "no loss a positive weight"),
    ]:
        with pytest.raises(ValueError, match=message):
            loop.validate(_config(tmp_path, *extra), jax.device_count())
    config = _config(tmp_path)
    config.loss.weights["nonsense"] = 1.0
    with pytest.raises(ValueError, match="nonsense"):
        loop.validate(config, jax.device_count())
    with pytest.raises(ValueError, match="not divisible"):
        loop.validate(_config(tmp_path, "--config.batch_size=4"), 3)


def _train_cmd(workdir, data_dir):
    return [sys.executable, "-m", "depthsense_jax.cli", "train", "--config", "configs/default.py",
            "--workdir", str(workdir), *TINY, f"--config.data.data_dir={data_dir}",
            "--config.num_epochs=1", "--config.steps_per_epoch=8"]


def _final_params(workdir):
    manager = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")))
    restored = manager.restore(manager.latest_step())
    return manager.latest_step(), restored["params"]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path):
    data_dir = tmp_path / "data"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(straight, data_dir), env=env, check=True, capture_output=True,
                   timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(killed, data_dir), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline:
        path = killed / "metrics.jsonl"
        if path.exists() and any(r.get("step", 0) >= 5 for r in _records(str(killed))):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    interrupted_at, _ = _final_params(killed)
    assert interrupted_at < 8
    subprocess.run(_train_cmd(killed, data_dir), env=env, check=True, capture_output=True,
                   timeout=600)
    step_a, params_a = _final_params(straight)
    step_b, params_b = _final_params(killed)
    assert step_a == step_b == 8
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    data_dir = tmp_path / "data"
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(_config(data_dir, "--config.num_epochs=1",
                                    "--config.steps_per_epoch=2"), workdir, log=lambda s: None)
    wider = _config(data_dir, "--config.num_epochs=1", "--config.steps_per_epoch=2",
                    "--config.model.width=16")
    with pytest.raises(ValueError, match="fits this config"):
        loop.train_and_evaluate(wider, workdir, log=lambda s: None)


def test_half_written_latest_checkpoint_falls_back(tmp_path):
    data_dir = tmp_path / "data"
    workdir = str(tmp_path / "run")
    config = _config(data_dir, "--config.num_epochs=1", "--config.steps_per_epoch=4")
    loop.train_and_evaluate(config, workdir, log=lambda s: None)
    # Damage every data file of the latest checkpoint (step 4); step 2 stays intact.
    latest = os.path.join(workdir, "checkpoints", "4")
    for root, _, files in os.walk(latest):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    lines = []
    loop.train_and_evaluate(config, workdir, log=lines.append)
    text = "\n".join(lines)
    assert "checkpoint 4 cannot be read" in text
    assert "resumed from the checkpoint of step 2" in text
    assert "step 4/4" in text  # steps 3 and 4 ran again

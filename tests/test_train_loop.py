"""The training loop on the tiny synthetic dataset: it learns, checkpoints, resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
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


@pytest.mark.slow
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
    events = os.listdir(os.path.join(workdir, "tensorboard"))
    assert any(name.startswith("events.out.tfevents") for name in events)
    picture = cv2.imread(os.path.join(workdir, "predictions.png"))
    assert picture.shape == (4 * 66, 3 * 66, 3)  # 4 validation images x (input|truth|pred)
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


@pytest.mark.slow
def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    data_dir = tmp_path / "data"
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(_config(data_dir, "--config.num_epochs=1",
                                    "--config.steps_per_epoch=2"), workdir, log=lambda s: None)
    wider = _config(data_dir, "--config.num_epochs=1", "--config.steps_per_epoch=2",
                    "--config.model.width=16")
    with pytest.raises(ValueError, match="fits this config"):
        loop.train_and_evaluate(wider, workdir, log=lambda s: None)


@pytest.mark.slow
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


def _scalars(workdir):
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    del tf
    acc = event_accumulator.EventAccumulator(os.path.join(workdir, "tensorboard"))
    acc.Reload()
    return acc


@pytest.mark.slow
def test_best_checkpoint_tensorboard_and_eval_command(tmp_path, capsys):
    from depthsense_jax import cli

    data_dir = tmp_path / "data"
    workdir = str(tmp_path / "run")
    config = _config(data_dir, "--config.num_epochs=3", "--config.steps_per_epoch=2")
    loop.train_and_evaluate(config, workdir, log=lambda s: None)
    val = {r["step"]: r["whdr"] for r in _records(workdir) if r["split"] == "validation"}
    assert sorted(val) == [2, 4, 6]
    # DIR/best keeps exactly the evaluated step with the lowest validation WHDR.
    _, best = loop.checkpoint_managers(workdir, keep=3)
    assert best.all_steps() == [min(val, key=val.get)]
    tags = _scalars(workdir).Tags()["tensors"]
    assert {"train/loss", "train/grad_norm", "validation/whdr", "train_eval/ssim"} <= set(tags)

    capsys.readouterr()
    assert cli.main(["eval", "--workdir", workdir, "--checkpoint", "best"]) == 0
    out = capsys.readouterr().out
    best_step = min(val, key=val.get)
    assert f"checkpoint of step {best_step} (best)" in out and "whdr" in out
    with open(os.path.join(workdir, "eval", f"validation_step{best_step}.json")) as f:
        record = json.load(f)
    # The same checkpoint on the same split gives the same WHDR as during training.
    assert record["whdr"] == pytest.approx(val[best_step], abs=1e-6)
    assert cli.main(["eval", "--workdir", workdir, "--split", "train", "--max-batches", "1",
                     "--checkpoint", "6"]) == 0
    assert os.path.exists(os.path.join(workdir, "eval", "train_step6.json"))
    assert cli.main(["eval", "--workdir", workdir, "--checkpoint", "5"]) == 2
    assert "no checkpoint of step 5" in capsys.readouterr().err
    assert cli.main(["eval", "--workdir", str(tmp_path / "nothing")]) == 2
    assert "training workdir" in capsys.readouterr().err


def test_workdir_url_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="file-system path"):
        loop.train_and_evaluate(_config(tmp_path), "gs://bucket/run", log=lambda s: None)


def test_distributed_initialisation_follows_the_environment(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    for name in ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES", "SLURM_NTASKS",
                 "OMPI_COMM_WORLD_SIZE", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    assert not loop.maybe_initialize_distributed()
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t1k-0")  # a single-host TPU VM
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert not loop.maybe_initialize_distributed() and not calls
    assert loop.maybe_initialize_distributed("10.0.0.1:1234", 2, 1)
    assert calls[-1] == dict(coordinator_address="10.0.0.1:1234", num_processes=2,
                             process_id=1)
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t1k-0,t1k-1,t1k-2,t1k-3")
    assert loop.maybe_initialize_distributed()
    assert calls[-1] == dict(coordinator_address=None, num_processes=None, process_id=None)
    monkeypatch.delenv("TPU_WORKER_HOSTNAMES")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "h:1")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert loop.maybe_initialize_distributed()
    assert calls[-1] == dict(coordinator_address=None, num_processes=4, process_id=3)


def test_bench_train_reports_the_split_of_a_step(tmp_path, capsys):
    from depthsense_jax import cli

    path = tmp_path / "bench.json"
    args = ["bench", "train", "--config", "default", *TINY,
            f"--config.data.data_dir={tmp_path / 'data'}", "--steps", "3", "--warmup", "1",
            "--json", str(path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "input wait" in out and "images/s" in out and "device" in out
    with open(path) as f:
        result = json.load(f)["result"]
    assert result["images_per_s"] > 0 and 0 <= result["input_wait_fraction"] < 1
    assert result["step_ms"] == pytest.approx(
        result["input_wait_ms"] + result["host_ms"] + result["device_ms"])


def test_shipped_configs_load_by_name_and_validate():
    import dataclasses

    from depthsense_jax import losses

    option_names = {f.name for f in dataclasses.fields(losses.LossOptions)}
    for name in ("default", "synthetic", "redweb", "redweb_tpu"):
        config = load_config(name)
        loop.validate(config, 1)
        # Every loss and option is listed, so that any can be set from the command line.
        assert set(config.loss.weights) == set(losses.LOSS_NAMES)
        assert set(config.loss.options) == option_names
    assert losses.LossOptions.from_mapping(dict(load_config("default").loss.options)) == \
        losses.LossOptions()
    assert load_config("synthetic").image_size <= 160  # small, for a 2-core CPU
    tpu = load_config("redweb_tpu", ["--config.batch_size=512"])
    assert tpu.model.dtype == "bfloat16" and tpu.batch_size == 512
    assert load_config("configs/redweb.py").data.name == "redweb"
    with pytest.raises(FileNotFoundError, match="shipped configs"):
        load_config("nonexistent")


def test_redweb_not_built_stops_before_compiling(tmp_path):
    config = load_config("redweb", [f"--config.data.data_dir={tmp_path}"])
    with pytest.raises(ValueError, match="depthsense data build redweb"):
        loop.train_and_evaluate(config, str(tmp_path / "run"), log=lambda s: None)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


@pytest.mark.slow
def test_the_synthetic_default_learns(tmp_path):
    """The synthetic default config, shortened (tiny scenes at 64 px, 240 steps): validation
    WHDR falls from near chance to well below it. The full default run is in
    docs/results.md (about 47% -> 14.4%)."""
    from depthsense_jax.data import pipeline
    from depthsense_jax.train import sharding, steps

    config = load_config("synthetic", [
        "--config.data.name=synthetic_scenes/tiny", f"--config.data.data_dir={tmp_path}/data",
        "--config.image_size=64", "--config.num_epochs=4", "--config.steps_per_epoch=60",
        "--config.optimizer.warmup_steps=20", "--config.eval.train_batches=1",
        "--config.checkpoint.every=1000"])
    mesh = sharding.make_data_mesh()
    model, state = loop.build_state(config, 240)
    eval_step = steps.make_eval_step(model, config.loss.weights, config.loss.options,
                                          mesh, num_pairs=config.eval.num_pairs)
    pipeline.builder_for(config.data)
    untrained = loop.evaluate(config, eval_step, jax.device_put(
        state, sharding.replicated(mesh)), mesh, "validation")["whdr"]
    assert untrained > 0.4
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(config, workdir, log=lambda s: None)
    whdr = [r["whdr"] for r in _records(workdir) if r["split"] == "validation"]
    assert len(whdr) == 4
    assert whdr[-1] < 0.3, whdr


@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    data_dir = tmp_path / "data"
    workdir = str(tmp_path / "run")
    # An absurd learning rate: the first update sends the params to ~1e35 and the second
    # step's loss overflows.
    config = _config(data_dir, "--config.num_epochs=1", "--config.steps_per_epoch=6",
                     "--config.checkpoint.every=1", "--config.optimizer.warmup_steps=0",
                     "--config.optimizer.learning_rate=1e35")
    with pytest.raises(loop.NonFiniteLoss, match="non-finite loss at step 2") as info:
        loop.train_and_evaluate(config, workdir, log=lambda s: None)
    assert "the last good checkpoint (step 1) is kept" in str(info.value)
    manager = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")))
    assert manager.all_steps() == [1]
    assert loop.main_train(config, str(tmp_path / "again")) == 1
    assert "error: non-finite loss" in capsys.readouterr().err

"""The training loop on the tiny synthetic dataset: it logs, checkpoints, keeps the best
checkpoint, resumes exactly, and stops clearly."""

import json
import os
import uuid

import cv2
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from depthsense_jax import cli, params_io, storage
from depthsense_jax import workdir as workdir_lib
from depthsense_jax.config import load_config
from depthsense_jax.data import registry
from depthsense_jax.train import checkpoints, loop, sharding, steps, validation
from depthsense_jax.train import state as state_lib


def _records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_a_run_logs_evaluates_checkpoints_and_draws(trained):
    text = trained.log
    assert "step 6/6" in text and "epoch 3" in text and "validation" in text
    records = _records(trained.workdir)
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    val = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in val] == [2, 4, 6]
    for r in val:
        assert 0 <= r["whdr"] <= 1 and np.isfinite(r["loss"])
    manager = ocp.CheckpointManager(os.path.join(trained.workdir, "checkpoints"))
    assert manager.all_steps() == [2, 4, 6]  # every 2 steps, the last 3 kept
    events = os.listdir(os.path.join(trained.workdir, "tensorboard"))
    assert any(name.startswith("events.out.tfevents") for name in events)
    picture = cv2.imread(os.path.join(trained.workdir, "predictions.png"))
    assert picture.shape == (4 * 66, 3 * 66, 3)  # 4 validation images x (input|truth|pred)


def test_a_finished_run_resumes_with_nothing_to_do(trained, tmp_path):
    workdir = trained.copy(tmp_path / "run")
    lines = []
    loop.train_and_evaluate(load_config("base", trained.overrides), workdir,
                            log=lines.append)
    assert "resumed from the checkpoint of step 6" in "\n".join(lines)
    assert len(_records(workdir)) == len(_records(trained.workdir))


def test_bad_configs_stop_before_compiling(tiny_config):
    for extra, message in [
        (["--config.image_size=40"], "multiple of the model.s stride 32"),
        (["--config.loss.weights.ssim=0.0", "--config.loss.weights.ranking=0.0"],
         "no loss a positive weight"),
    ]:
        with pytest.raises(ValueError, match=message):
            steps.validate(tiny_config(*extra), jax.device_count())
    config = tiny_config()
    with config.unlocked():
        config.loss.weights["nonsense"] = 1.0
    with pytest.raises(ValueError, match="nonsense"):
        steps.validate(config, jax.device_count())
    with pytest.raises(ValueError, match="not divisible"):
        steps.validate(tiny_config("--config.batch_size=4"), 3)


def _final_params(workdir):
    manager = ocp.CheckpointManager(workdir_lib.path(workdir, "checkpoints"))
    restored = manager.restore(manager.latest_step())
    return manager.latest_step(), restored["params"]


def test_checkpoint_of_another_model_is_a_clear_error(trained, tmp_path):
    workdir = trained.copy(tmp_path / "run")
    wider = load_config("base", [*trained.overrides, "--config.model.width=16"])
    # Named from the checkpoint's metadata before any array is read.
    with pytest.raises(ValueError, match=r"fits this config(.|\n)*step 6: ValueError: "
                       r"params\.\S+\.kernel has shape \(3, 3, 8, 16\) in the checkpoint and "
                       r"\(3, 3, 16, 16\) in this config"):
        loop.train_and_evaluate(wider, workdir, log=lambda s: None)


@pytest.mark.cost(17)
@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "bucket"])
def test_half_written_latest_checkpoint_falls_back(trained, tmp_path, where, request):
    """On disk, and in a bucket of conftest's GCS emulator (`gcs`), where moving the
    damaged checkpoint aside is a copy and a delete and TensorBoard's events are uploaded."""
    if where == "local":
        workdir = trained.copy(tmp_path / "run")
    else:
        bucket = request.getfixturevalue("gcs").bucket(f"run-{uuid.uuid4().hex[:12]}")
        workdir = bucket + "/run"
        storage.copy_tree(trained.workdir, workdir)
    storage.rmtree(storage.join(workdir, "tensorboard"))
    # Damage every data file of the latest checkpoint (step 6); step 4 stays intact.
    for name in storage.walk_files(storage.join(workdir, "checkpoints", "6")):
        storage.write_bytes(name, b"garbage")
    lines = []
    loop.train_and_evaluate(load_config("base", trained.overrides), workdir,
                            log=lines.append)
    text = "\n".join(lines)
    assert "checkpoint 6 cannot be read" in text
    assert "resumed from the checkpoint of step 4" in text
    assert "step 6/6" in text  # steps 5 and 6 ran again
    moved = storage.join(workdir, "checkpoints", "6.unreadable")
    assert f"moved the unreadable checkpoint 6 to {moved}" in text
    assert storage.isdir(moved)
    # ... and saved step 6 again, with the same params as the run that was never damaged.
    _, again = _final_params(workdir)
    _, first = _final_params(trained.workdir)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(first), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    events = str(tmp_path / "events")  # TensorBoard reads what the run wrote
    storage.copy_tree(storage.join(workdir, "tensorboard"), events)
    tags = _scalars(events, "").Tags()["tensors"]
    assert {"train/loss", "validation/whdr", "train_eval/ssim"} <= set(tags)


def test_best_keeps_the_lowest_whdr_not_the_latest(tiny_config, tmp_path):
    """Checkpoints with validation WHDR 0.3, 0.1, 0.2 at steps 2, 4, 6: best/ holds step 4,
    the latest is 6, and 'best' restores step 4's params (in training's restore and in the
    params-only restore of params_io)."""
    config = tiny_config()
    workdir = str(tmp_path / "run")
    from depthsense_jax import workdir as workdir_lib

    os.makedirs(workdir)
    workdir_lib.write_config(workdir, config)
    _, fresh = state_lib.build_state(config, 10)
    latest, best = checkpoints.managers(workdir, keep=3)
    saved = {}
    for step, whdr in ((2, 0.3), (4, 0.1), (6, 0.2)):
        train_state = fresh.replace(
            step=step, params=jax.tree.map(lambda x, s=step: x + s, fresh.params))
        checkpoints.save(latest, step, train_state)
        checkpoints.save(best, step, train_state, metrics={"whdr": whdr})
        saved[step] = train_state
    for m in (latest, best):
        m.wait_until_finished()
        m.close()
    _, best = checkpoints.managers(workdir, keep=3)
    assert best.all_steps() == [4]
    latest, _ = checkpoints.managers(workdir, keep=3)
    resumed, step = checkpoints.restore(latest, fresh, print, workdir)  # the whole state
    latest.close()
    assert step == 6 and int(resumed.step) == 6
    for a, b in zip(jax.tree.leaves(resumed.opt_state), jax.tree.leaves(saved[6].opt_state),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert params_io.restore_params(workdir, "latest")[2] == 6
    _, variables, step = params_io.restore_params(workdir, "best")
    assert step == 4
    for a, b in zip(jax.tree.leaves(variables["params"]), jax.tree.leaves(saved[4].params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _scalars(workdir, folder="tensorboard"):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(os.path.join(workdir, folder))
    acc.Reload()
    return acc


def test_best_checkpoint_tensorboard_and_eval_command(trained, tmp_path, capsys):
    workdir = trained.copy(tmp_path / "run")
    val = {r["step"]: r["whdr"] for r in _records(workdir) if r["split"] == "validation"}
    assert sorted(val) == [2, 4, 6]
    # DIR/best keeps exactly the evaluated step with the lowest validation WHDR.
    _, best = checkpoints.managers(workdir, keep=3)
    assert best.all_steps() == [min(val, key=val.get)]
    tags = _scalars(workdir).Tags()["tensors"]
    assert {"train/loss", "train/grad_norm", "validation/whdr", "train_eval/ssim"} <= set(tags)

    capsys.readouterr()
    assert cli.main(["validate", "--workdir", workdir, "--checkpoint", "best"]) == 0
    out = capsys.readouterr().out
    best_step = min(val, key=val.get)
    assert f"checkpoint of step {best_step} (best)" in out and "whdr" in out
    with open(os.path.join(workdir, "eval", f"validation_step{best_step}.json")) as f:
        record = json.load(f)
    # The same checkpoint on the same split gives the same WHDR as during training.
    assert record["whdr"] == pytest.approx(val[best_step], abs=1e-6)
    assert cli.main(["validate", "--workdir", workdir, "--split", "train", "--max-batches", "1",
                     "--checkpoint", "6"]) == 0
    assert os.path.exists(os.path.join(workdir, "eval", "train_step6.json"))
    assert cli.main(["validate", "--workdir", workdir, "--checkpoint", "5"]) == 2
    assert "no checkpoint of step 5" in capsys.readouterr().err
    assert cli.main(["validate", "--workdir", str(tmp_path / "nothing")]) == 2
    assert "training workdir" in capsys.readouterr().err


def test_distributed_initialisation_follows_the_environment(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    for name in ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES", "SLURM_NTASKS",
                 "OMPI_COMM_WORLD_SIZE", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    init = sharding.maybe_initialize_distributed
    assert not init()
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t1k-0")  # a single-host TPU VM
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert not init() and not calls
    assert init("10.0.0.1:1234", 2, 1)
    assert calls[-1] == dict(coordinator_address="10.0.0.1:1234", num_processes=2,
                             process_id=1)
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t1k-0,t1k-1,t1k-2,t1k-3")
    assert init()
    assert calls[-1] == dict(coordinator_address=None, num_processes=None, process_id=None)
    monkeypatch.delenv("TPU_WORKER_HOSTNAMES")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "h:1")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert init()
    assert calls[-1] == dict(coordinator_address=None, num_processes=4, process_id=3)


def test_redweb_not_built_stops_before_compiling(tmp_path):
    config = load_config("redweb", [f"--config.data.data_dir={tmp_path}"])
    with pytest.raises(ValueError, match="depthsense data build redweb"):
        loop.train_and_evaluate(config, str(tmp_path / "run"), log=lambda s: None)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


@pytest.mark.cost(35)
@pytest.mark.slow
def test_the_synthetic_default_learns(tiny_data_dir, tmp_path):
    """The synthetic default config, shortened (tiny scenes at 64 px, 120 steps): validation
    WHDR falls from near chance to well below it (measured: 25.2% at 120 steps, 24.1% at
    240). The full default run is in docs/results.md."""
    config = load_config("synthetic", [
        "--config.data.name=synthetic_scenes/tiny", f"--config.data.data_dir={tiny_data_dir}",
        "--config.image_size=64", "--config.num_epochs=2", "--config.steps_per_epoch=60",
        "--config.optimizer.warmup_steps=10", "--config.eval.train_batches=1",
        "--config.checkpoint.every=1000"])
    mesh = sharding.make_data_mesh()
    model, variables = state_lib.initial_variables(config)
    registry.prepared_builder(config.data)
    untrained = validation.split_evaluator(config, model, mesh, "validation").run(
        jax.device_put(variables, sharding.replicated(mesh))).means["whdr"]
    assert untrained > 0.4
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(config, workdir, log=lambda s: None)
    whdr = [r["whdr"] for r in _records(workdir) if r["split"] == "validation"]
    assert len(whdr) == 2
    assert whdr[-1] < 0.3, whdr


@pytest.mark.cost(15)
@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
        tiny_overrides, tmp_path, capsys, monkeypatch):
    # An absurd learning rate: the first update sends the params to ~1e35 and the second
    # step's loss overflows.
    overrides = [*tiny_overrides, "--config.num_epochs=1", "--config.steps_per_epoch=6",
                 "--config.checkpoint.every=1", "--config.optimizer.warmup_steps=0",
                 "--config.optimizer.learning_rate=1e35"]
    workdir = str(tmp_path / "run")
    with pytest.raises(loop.NonFiniteLoss, match="non-finite loss at step 2") as info:
        loop.train_and_evaluate(load_config("base", overrides), workdir,
                                log=lambda s: None)
    assert "the last good checkpoint (step 1) is kept" in str(info.value)
    manager = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")))
    assert manager.all_steps() == [1]
    # The command line reports it as an error, without a traceback (the same error, not a
    # second run to the same overflow).
    def stop(*args, **kwargs):
        raise info.value

    monkeypatch.setattr(loop, "train_and_evaluate", stop)
    assert cli.main(["train", "--config", "base", "--workdir", str(tmp_path / "again"),
                     *overrides]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "error: non-finite loss at step 2" in err and "Traceback" not in err

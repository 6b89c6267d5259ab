"""A training workdir in a bucket (`--workdir gs://bucket/run`) against a GCS API on
localhost (conftest's `gcs` emulator): a run stopped by SIGTERM, then killed, resumes to the
same params as the uninterrupted local run; best/, eval, predict, export and init.from work
on the bucket; a missing bucket or object is one error naming the URL. (The
damaged-checkpoint fallback and TensorBoard in a bucket: test_train_loop.py.)"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import cv2
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from depthsense_jax import cli, params_io, storage
from depthsense_jax import workdir as workdir_lib
from depthsense_jax.config import load_config


def _bucket(gcs) -> str:
    return gcs.bucket(f"run-{uuid.uuid4().hex[:12]}")


def _records(workdir: str) -> list[dict]:
    text = storage.read_text(storage.join(workdir, "metrics.jsonl"))
    return [json.loads(line) for line in text.splitlines()]


def _final_params(workdir: str):
    manager = ocp.CheckpointManager(storage.join(workdir, "checkpoints"))
    step = manager.latest_step()
    params = manager.restore(step)["params"]
    manager.close()
    return step, params


def _assert_same_params(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _train_cmd(workdir, overrides):
    return [sys.executable, "-m", "depthsense_jax.cli", "train", "--config", "base",
            "--workdir", workdir, *overrides]


def _run_until(workdir, overrides, env, step, sig):
    """Start a training run in `workdir`, send it `sig` once metrics.jsonl shows `step`;
    returns (return code, output)."""
    proc = subprocess.Popen(_train_cmd(workdir, overrides), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if storage.exists(storage.join(workdir, "metrics.jsonl")) and any(
                r["step"] >= step for r in _records(workdir)):
            break
        time.sleep(0.1)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


@pytest.mark.cost(70)
@pytest.mark.slow
def test_sigterm_then_sigkill_on_a_bucket_then_resume_matches_the_local_run(trained, gcs):
    """The shared local run is the uninterrupted one (6 steps, a checkpoint every 2); the
    same config in gs://.../run gets SIGTERM after step 3 (it saves that step's checkpoint
    in the bucket and stops), resumes and is killed (SIGKILL: nothing saved on the way out,
    maybe half an upload) after step 4, and a third start finishes the run."""
    workdir = _bucket(gcs) + "/run"
    env = {**os.environ, **gcs.env}
    overrides = trained.overrides
    code, out = _run_until(workdir, overrides, env, 3, signal.SIGTERM)
    assert code == 0, out
    assert "SIGTERM: saved the checkpoint of step" in out, out
    stopped_at, _ = _final_params(workdir)
    assert 3 <= stopped_at < 6
    code, out = _run_until(workdir, overrides, env, stopped_at + 1, signal.SIGKILL)
    assert code == -signal.SIGKILL, out  # killed mid-run, not finished
    assert f"resumed from the checkpoint of step {stopped_at} in {workdir}" in out
    killed_at, _ = _final_params(workdir)
    assert stopped_at <= killed_at < 6
    again = subprocess.run(_train_cmd(workdir, overrides), env=env, text=True,
                           capture_output=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resumed from the checkpoint of step {killed_at} in {workdir}" in again.stdout
    step_local, params_local = _final_params(trained.workdir)
    step_bucket, params_bucket = _final_params(workdir)
    assert step_local == step_bucket == 6
    _assert_same_params(params_local, params_bucket)
    records = _records(workdir)
    # Every step logged (the killed run's steps past its checkpoint twice).
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert sorted(set(train_steps)) == [1, 2, 3, 4, 5, 6] and train_steps[-1] == 6
    # best/ holds the evaluated step with the lowest validation WHDR.
    val = {r["step"]: r["whdr"] for r in records if r["split"] == "validation"}
    assert 6 in val
    assert workdir_lib.checkpoint_steps(storage.join(workdir, "best")) == [
        min(val, key=val.get)]
    picture = cv2.imdecode(np.frombuffer(storage.read_bytes(
        storage.join(workdir, "predictions.png")), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (4 * 66, 3 * 66, 3)
    assert json.loads(storage.read_text(storage.join(workdir, "config.json")))[
        "batch_size"] == 4


def test_a_dataset_in_a_bucket_reads_through_tensorflows_client(gcs, tiny_data_dir,
                                                                  monkeypatch):
    """config.data.data_dir in a bucket, read the way a TPU VM reads it: TFDS's files
    through epath's default client and the records through tf.data, both TensorFlow's GCS
    client (reaching the emulator through tests/gcs_tls_proxy.py). The examples are the
    ones on disk."""
    import tensorflow_datasets as tfds
    from etils.epath import gpath

    from depthsense_jax.data import registry

    data_dir = _bucket(gcs) + "/tfds"
    storage.copy_tree(str(tiny_data_dir), data_dir)
    monkeypatch.setenv("EPATH_USE_TF", "true")
    gpath._is_tf_installed.cache_clear()  # epath caches its choice per process
    try:
        examples = {}
        for where, folder in (("disk", str(tiny_data_dir)), ("bucket", data_dir)):
            data = load_config("base", ["--config.data.name=synthetic_scenes/tiny",
                                           f"--config.data.data_dir={folder}"]).data
            builder = registry.prepared_builder(data)
            assert str(builder.data_dir).startswith(folder)
            examples[where] = list(tfds.as_numpy(builder.as_dataset(split="validation",
                                                                    shuffle_files=False)))
    finally:
        gpath._is_tf_installed.cache_clear()
    assert len(examples["bucket"]) == len(examples["disk"]) == 16
    for a, b in zip(examples["disk"], examples["bucket"], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.cost(35)
@pytest.mark.slow
def test_eval_predict_export_and_init_from_a_bucket(trained, gcs, tmp_path, capsys):
    bucket = _bucket(gcs)
    workdir = bucket + "/run"
    storage.copy_tree(trained.workdir, workdir)

    # eval: the same WHDR as on disk, its record written into the bucket.
    assert cli.main(["eval", "--workdir", workdir, "--checkpoint", "6"]) == 0
    assert cli.main(["eval", "--workdir", trained.workdir, "--checkpoint", "6"]) == 0
    capsys.readouterr()
    on_bucket = json.loads(storage.read_text(f"{workdir}/eval/validation_step6.json"))
    local = json.loads(storage.read_text(f"{trained.workdir}/eval/validation_step6.json"))
    assert on_bucket["whdr"] == pytest.approx(local["whdr"], abs=1e-7)

    # predict: photos read from the bucket, outputs written to it, equal to a local run.
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(photos / name), rng.integers(0, 256, (40, 70, 3), dtype=np.uint8))
    storage.copy_tree(str(photos), f"{bucket}/photos")
    formats = ["--format", "png16,npy"]
    assert cli.main(["predict", f"{bucket}/photos", "--workdir", workdir,
                     "--out", f"{bucket}/pred", *formats]) == 0
    assert cli.main(["predict", str(photos), "--workdir", trained.workdir,
                     "--out", str(tmp_path / "pred"), *formats]) == 0
    names = ["a.npy", "a_depth.png", "b.npy", "b_depth.png"]
    assert storage.listdir(f"{bucket}/pred") == names
    for name in names:
        assert storage.read_bytes(f"{bucket}/pred/{name}") == (
            tmp_path / "pred" / name).read_bytes()

    # export to the bucket (every file reloaded and checked from there), predict from it.
    assert cli.main(["export", "--workdir", workdir, "--out", f"{bucket}/export",
                     "--formats", "msgpack,jax,savedmodel"]) == 0
    out = capsys.readouterr().out
    assert out.count("max |diff|") == 2 and "bit-identical" in out
    assert {"model.json", "params.msgpack", "model.jax", "saved_model"} == set(
        storage.listdir(f"{bucket}/export"))
    assert storage.exists(f"{bucket}/export/saved_model/saved_model.pb")
    assert cli.main(["predict", f"{bucket}/photos/a.png", "--params", f"{bucket}/export",
                     "--out", f"{bucket}/pred2", *formats]) == 0
    assert storage.read_bytes(f"{bucket}/pred2/a.npy") == storage.read_bytes(
        f"{bucket}/pred/a.npy")

    # init.from a workdir or an export folder in a bucket.
    config = load_config("base", trained.overrides)
    for source in (workdir, f"{bucket}/export"):
        variables = params_io.load_variables(source, config.model)
        _assert_same_params(variables["params"], _final_params(trained.workdir)[1])


def test_a_missing_bucket_or_object_is_one_clear_error(gcs, tiny_overrides, capsys):
    missing = f"gs://no-bucket-{uuid.uuid4().hex[:8]}/run"
    assert cli.main(["train", "--config", "base", "--workdir", missing,
                     *tiny_overrides]) == 2
    err = capsys.readouterr().err
    assert missing in err and "does not exist" in err and "Traceback" not in err
    assert not storage.bucket_exists(missing)  # and nothing created it
    for argv in (["eval", "--workdir", missing],
                 ["predict", f"{missing}/photo.png", "--params", f"{missing}/export",
                  "--out", "/tmp/unused"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert missing in err and "bucket" in err and "does not exist" in err
    bucket = _bucket(gcs)
    assert cli.main(["eval", "--workdir", f"{bucket}/nothing"]) == 2
    assert f"{bucket}/nothing/config.json does not exist" in capsys.readouterr().err
    assert cli.main(["predict", f"{bucket}/photo.png", "--params", f"{bucket}/export",
                     "--out", "/tmp/unused"]) == 2
    assert f"{bucket}/photo.png" in capsys.readouterr().err

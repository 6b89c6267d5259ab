"""`predict_files` over many photos: reading and writing overlap with the model, memory is
bounded, failures are counted, an interrupted run resumes (`--skip-existing`)."""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import uuid

import cv2
import numpy as np
import pytest

from depthsense_jax import cli, inference
from depthsense_jax.data.synthetic import render_scene

FAMILIES = ["depthnet", "depth_anything"]
SIZE = {"depthnet": 64, "depth_anything": 56}  # the tiny models' own sizes
FORMATS = ("png16", "npy")
# Three model sizes per family (landscape, portrait, square), so batches of one size wait
# for the others' photos and the pipeline's bounds are reached.
SHAPES = [(60, 90), (90, 60), (60, 90), (60, 60), (60, 90), (90, 60), (60, 60)]


def _photos(folder: pathlib.Path, count: int = len(SHAPES), bad: bool = True) -> list[str]:
    """`count` rendered scenes as PNGs (some in a subfolder) and, with `bad`, one file that
    is not an image; returns the names of the good ones, relative to `folder`."""
    names = []
    for i in range(count):
        name = f"sub/p{i}.png" if i % 3 == 2 else f"p{i}.png"
        image = render_scene(1, i, size=SHAPES[i % len(SHAPES)])["image"]
        image = np.asarray(image if image.dtype == np.uint8 else np.round(image * 255),
                           np.uint8)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        names.append(name)
    if bad:
        (folder / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    return names


def _files(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def predictors(tiny_models):
    """One Predictor per family for the module: each shape compiles once."""
    return {f: inference.Predictor(tiny_models.loaded(f)) for f in FAMILIES}


def _run(predictors, family, photos, out, **kwargs) -> inference.Summary:
    lines = []
    kwargs = {"formats": FORMATS, "batch_size": 4, **kwargs}
    summary = inference.predict_files(predictors[family].loaded, [str(photos)], str(out),
                                      size=SIZE[family], log=lines.append,
                                      predictor=predictors[family], **kwargs)
    summary.line = lines[-1]
    return summary


def test_output_paths_name_each_format():
    assert inference.output_paths("out/sub/a", ["png16", "color", "npy", "side"]) == [
        "out/sub/a_depth.png", "out/sub/a_color.png", "out/sub/a.npy", "out/sub/a_side.png"]
    assert inference.output_paths("b", ["npy"]) == ["b.npy"]
    with pytest.raises(ValueError, match="'jpeg'.*choose from"):
        inference.output_paths("b", ["npy", "jpeg"])


@pytest.mark.parametrize("family", FAMILIES)
def test_the_pipeline_writes_what_the_plain_loop_and_predict_do(family, predictors, tmp_path,
                                                                monkeypatch, capsys):
    """Threads, bounds of one photo each (every bound reached: part-full batches flushed
    early) and the plain loop (workers=0) write the same bytes; each depth is the one
    `Predictor.predict` gives that photo; the unreadable file is named and counted."""
    photos = tmp_path / "photos"
    names = _photos(photos)
    plain = _run(predictors, family, photos, tmp_path / "plain", workers=0)
    threaded = _run(predictors, family, photos, tmp_path / "threaded", workers=2)
    monkeypatch.setattr(inference, "_bounds", lambda batch_size, workers: (1, 1, 1))
    tight = _run(predictors, family, photos, tmp_path / "tight", workers=3)
    want = {f"{os.path.splitext(n)[0]}{s}" for n in names for s in ("_depth.png", ".npy")}
    reference = _files(tmp_path / "plain")
    assert set(reference) == want  # nothing else: no partial files or folders left
    assert _files(tmp_path / "threaded") == reference
    assert _files(tmp_path / "tight") == reference
    for summary in (plain, threaded, tight):
        assert summary.written == [str(photos / n) for n in sorted(names)]
        assert summary.existing == []
        assert [p for p, _ in summary.failed] == [str(photos / "sub" / "broken.png")]
        assert (f"for {len(names)} photo(s)" in summary.line and "0 skipped as existing; "
                "1 failed (skipped 1 unreadable file(s))" in summary.line)
    assert capsys.readouterr().err.count("broken.png: not a readable image") == 3
    for name in names:
        photo = inference.read_photo(str(photos / name))
        depth = np.load(tmp_path / "plain" / (os.path.splitext(name)[0] + ".npy"))
        alone = predictors[family].predict([photo], size=SIZE[family], batch_size=4)[0]
        np.testing.assert_array_equal(depth, alone)
        assert depth.shape == photo.shape[:2] and np.isfinite(depth).all() and depth.std() > 0


class _Killed(BaseException):
    """Stands for the process dying: nothing catches it."""


@pytest.mark.parametrize("family", FAMILIES)
def test_an_interrupted_run_resumes_to_the_same_outputs(family, predictors, tmp_path,
                                                        monkeypatch):
    """The run dies while writing the 4th photo's first file (half of it written); no file
    under an output's name is incomplete, and --skip-existing finishes the run to the same
    bytes as an uninterrupted one, without reading or writing the finished photos again."""
    photos = tmp_path / "photos"
    names = _photos(photos, bad=False)
    _run(predictors, family, photos, tmp_path / "whole", workers=2)
    reference = _files(tmp_path / "whole")
    real_write, calls, lock = inference.write_outputs, [], threading.Lock()

    def dying(stem, photo, depth, formats, *args, **kwargs):
        with lock:  # writer threads
            calls.append(stem)
            call = len(calls)
        if call == 4:
            first = inference.output_paths(stem, formats)[0]
            os.makedirs(os.path.dirname(first), exist_ok=True)
            with open(first, "wb") as f:
                f.write(b"\x89PNG half a file")
            raise _Killed
        return real_write(stem, photo, depth, formats, *args, **kwargs)

    monkeypatch.setattr(inference, "write_outputs", dying)
    out = tmp_path / "out"
    with pytest.raises(_Killed):
        _run(predictors, family, photos, out, workers=2)
    left = _files(out)
    assert set(left) <= set(reference)  # no partial file or folder left behind
    assert all(reference[name] == data for name, data in left.items())
    finished = {n for n in names if all(f"{os.path.splitext(n)[0]}{s}" in left
                                        for s in ("_depth.png", ".npy"))}
    assert 3 <= len(finished) < len(names)

    read, written = [], []
    real_read = inference.read_photo
    monkeypatch.setattr(inference, "read_photo", lambda path: read.append(path) or real_read(
        path))
    monkeypatch.setattr(inference, "write_outputs",
                        lambda stem, *a, **k: written.append(stem) or real_write(stem, *a, **k))
    resumed = _run(predictors, family, photos, out, workers=2, skip_existing=True)
    assert sorted(resumed.existing) == sorted(str(photos / n) for n in finished)
    assert sorted(resumed.written) == sorted(str(photos / n) for n in set(names) - finished)
    # The finished photos are neither read nor written again.
    assert sorted(read) == sorted(resumed.written) and len(written) == len(resumed.written)
    assert (f"for {len(resumed.written)} photo(s)" in resumed.line
            and f"{len(finished)} skipped as existing; 0 failed" in resumed.line)
    assert _files(out) == reference


def test_photos_in_flight_are_bounded_however_many_there_are(predictors, tmp_path,
                                                             monkeypatch):
    """From read to written, at most a few photos are held at once (here with bounds of
    one each: the batch being predicted, one read ahead, one waiting, one being written)."""
    photos = tmp_path / "photos"
    names = _photos(photos, count=3 * len(SHAPES), bad=False)
    live, peak, lock = [0], [0], threading.Lock()
    real_read, real_write = inference.read_photo, inference.write_outputs

    def read(path):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        return real_read(path)

    def write(*args, **kwargs):
        real_write(*args, **kwargs)
        with lock:
            live[0] -= 1

    monkeypatch.setattr(inference, "read_photo", read)
    monkeypatch.setattr(inference, "write_outputs", write)
    monkeypatch.setattr(inference, "_bounds", lambda batch_size, workers: (1, 1, 1))
    summary = _run(predictors, "depthnet", photos, tmp_path / "out", workers=1)
    assert len(summary.written) == len(names) == 21 and live[0] == 0
    assert peak[0] <= 4 + 4  # a batch of 4, the one read ahead, waiting, being written


def test_the_cli_counts_written_existing_and_failed(tiny_models, tmp_path, monkeypatch,
                                                    capsys):
    """A photo whose outputs cannot be written fails alone; --skip-existing then writes only
    it; the exit status is an error only when nothing was written or found existing."""
    photos = tmp_path / "photos"
    _photos(photos, count=3)
    out = tmp_path / "out"
    argv = ["predict", str(photos), "--params", tiny_models.paths["depthnet"], "--out",
            str(out), "--size", "64", "--format", "png16", "--workers", "2"]
    real_write = inference.write_outputs

    def refuse_p1(stem, *args, **kwargs):
        if os.path.basename(stem) == "p1":
            raise ValueError(f"{stem}: disk full")
        real_write(stem, *args, **kwargs)

    monkeypatch.setattr(inference, "write_outputs", refuse_p1)
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert ("for 2 photo(s)" in captured.out and "0 skipped as existing; 2 failed (skipped 1 "
            "unreadable file(s), 1 not written)" in captured.out)
    assert "failed " + str(photos / "p1.png") in captured.err and "disk full" in captured.err
    assert "failed " + str(photos / "sub" / "broken.png") in captured.err
    assert sorted(os.listdir(out)) == ["p0_depth.png", "sub"]
    monkeypatch.setattr(inference, "write_outputs", real_write)
    assert cli.main([*argv, "--skip-existing"]) == 0
    assert ("for 1 photo(s)" in (text := capsys.readouterr().out)
            and "2 skipped as existing; 1 failed" in text)
    assert sorted(os.listdir(out)) == ["p0_depth.png", "p1_depth.png", "sub"]
    assert cli.main([*argv, "--skip-existing"]) == 0  # all there: nothing to do is success
    assert "for 0 photo(s)" in capsys.readouterr().out
    argv[1] = str(photos / "sub" / "broken.png")
    assert cli.main(argv) == cli.EXIT_ERROR
    assert "none of the 1 input file(s) could be read and written" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's error, before any model is loaded
        cli.main([*argv, "--workers", "-1"])
    assert "--workers: expected an integer >= 0, got '-1'" in capsys.readouterr().err


_SLOW_WRITER = """
import sys, time
import depthsense_jax
depthsense_jax.configure()
from depthsense_jax import cli, inference
real = inference.write_outputs
def slow(*args, **kwargs):
    real(*args, **kwargs)
    time.sleep(0.3)  # so that the parent kills it part-way
inference.write_outputs = slow
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_killed_process_resumes_to_the_same_outputs(tiny_models, predictors, tmp_path):
    """SIGKILL part-way (no cleanup of any kind runs), then --skip-existing: the same files
    as an uninterrupted run, the finished photos counted as existing."""
    photos = tmp_path / "photos"
    names = _photos(photos, count=2 * len(SHAPES), bad=False)
    _run(predictors, "depthnet", photos, tmp_path / "whole", workers=2)
    reference = _files(tmp_path / "whole")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, "predict", str(photos), "--params",
         tiny_models.paths["depthnet"], "--out", str(out), "--size", "64",
         "--format", ",".join(FORMATS), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finished() -> set[str]:
        return {n for n in names if all((out / f"{os.path.splitext(n)[0]}{s}").exists()
                                        for s in ("_depth.png", ".npy"))}

    deadline = time.time() + 120
    while len(finished()) < 3 and process.poll() is None:
        assert time.time() < deadline, "the predict subprocess wrote nothing"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    done = finished()
    assert 3 <= len(done) < len(names)
    for name, data in _files(out).items():
        if inference.PARTIAL not in name.split(os.sep):  # a killed write's own folder
            assert reference[name] == data, name
    resumed = _run(predictors, "depthnet", photos, out, workers=2, skip_existing=True)
    assert sorted(resumed.existing) == sorted(str(photos / n) for n in done)
    assert len(resumed.written) == len(names) - len(done)
    assert _files(out) == reference


@pytest.mark.slow
def test_skip_existing_on_a_bucket(predictors, gcs, tmp_path):
    """Outputs in a bucket (written whole by the object store: nothing staged): a resumed
    run finds the finished photos by one listing and writes only the missing one."""
    from depthsense_jax import storage

    photos = tmp_path / "photos"
    names = _photos(photos, count=3, bad=False)
    bucket = gcs.bucket(f"predict-{uuid.uuid4().hex[:12]}")
    out = f"{bucket}/depth"
    first = _run(predictors, "depthnet", photos, out, workers=2)
    assert len(first.written) == 3
    listed = storage.walk_files(out)
    assert sorted(storage.relpath(f, out) for f in listed) == sorted(
        f"{os.path.splitext(n)[0]}{s}" for n in names for s in ("_depth.png", ".npy"))
    _run(predictors, "depthnet", photos, tmp_path / "local", workers=0)
    for f in listed:
        assert storage.read_bytes(f) == (tmp_path / "local" / storage.relpath(f, out)
                                         ).read_bytes()
    storage.remove(f"{out}/p1.npy")
    resumed = _run(predictors, "depthnet", photos, out, workers=2, skip_existing=True)
    assert resumed.written == [str(photos / "p1.png")] and len(resumed.existing) == 2
    assert storage.exists(f"{out}/p1.npy")

"""Videos: the stabiliser against known per-frame scales and shifts, the flicker measure,
the moving-camera sequences, and `depthsense predict` on video files."""

import os

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from depthsense_jax import cli, inference, params_io, video
from depthsense_jax.data.synthetic import render_scene, render_sequence
from depthsense_jax.models import create_variables

TINY_MODEL = ml_collections.ConfigDict(
    {"encoder_depth": 18, "width": 8, "fusion_channels": 16, "dtype": "float32",
     "pretrained": ""})


def _run(preds, greys, batch=4, smoothing=0.2):
    """Stabilise (T, h, w) frames `batch` at a time, as predict_video does."""
    state = video.init_state(*preds.shape[1:])
    out = []
    for start in range(0, len(preds), batch):
        p, g = preds[start:start + batch], greys[start:start + batch]
        count = len(p)
        pad = ((0, batch - count), (0, 0), (0, 0))
        state, aligned, _ = video.stabilize(state, np.pad(p, pad), np.pad(g, pad), count,
                                            smoothing)
        out.append(np.asarray(aligned)[:count])
    return np.concatenate(out)


def test_stabilize_undoes_per_frame_scale_and_shift(rng):
    base = rng.random((24, 32)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, 10).astype(np.float32)
    shifts = rng.uniform(-1.0, 1.0, 10).astype(np.float32)
    preds = scales[:, None, None] * base + shifts[:, None, None]
    greys = np.repeat(base[None], 10, axis=0)  # a static scene
    aligned = _run(preds, greys)
    np.testing.assert_allclose(aligned, np.repeat(preds[:1], 10, axis=0), atol=2e-4)
    assert video.flicker(aligned) < 1e-4 < video.flicker(preds)


def test_stabilize_ignores_changed_and_outlying_pixels(rng):
    base = rng.random((32, 32)).astype(np.float32)
    preds = np.stack([base, 3.0 * base + 1.0]).astype(np.float32)
    # A region that moved between the frames (brightness changed) predicts nonsense, and a
    # few static pixels are wild outliers: neither may pull the fit.
    preds[1, :8] = 50.0
    preds[1, 20, 5:8] = -40.0
    greys = np.stack([base, base])
    greys[1, :8] += 0.5
    aligned = _run(preds, greys)
    np.testing.assert_allclose(aligned[1, 8:20], base[8:20], atol=1e-3)


def test_stabilize_never_flips_or_breaks(rng):
    base = rng.random((16, 16)).astype(np.float32)
    greys = np.repeat(base[None], 3, axis=0)
    flipped = np.stack([base, -base, np.full_like(base, 7.0)])
    aligned = _run(flipped, greys)
    assert np.all(np.isfinite(aligned))
    # The anti-correlated frame is matched in mean and spread, not turned around.
    assert np.corrcoef(aligned[1].ravel(), -base.ravel())[0, 1] > 0.999
    np.testing.assert_allclose(aligned[1].std(), base.std(), rtol=1e-3)
    assert np.ptp(aligned[2]) == 0  # a constant frame stays constant and finite
    assert np.all(np.isfinite(_run(np.zeros((3, 8, 8), np.float32), np.zeros((3, 8, 8),
                                                                              np.float32))))


def test_padding_frames_do_not_change_the_state(rng):
    preds = rng.random((6, 12, 12)).astype(np.float32)
    greys = rng.random((6, 12, 12)).astype(np.float32) * 0.02
    np.testing.assert_allclose(_run(preds, greys, batch=4), _run(preds, greys, batch=6),
                               atol=1e-6)


def test_robust_fit_is_least_squares_without_outliers(rng):
    p = rng.random((20, 20))
    r = 2.5 * p - 0.3 + rng.normal(0, 0.01, p.shape)
    w = (rng.random(p.shape) > 0.3).astype(np.float64)
    design = np.stack([p[w > 0], np.ones(int(w.sum()))], axis=1)
    want = np.linalg.lstsq(design, r[w > 0], rcond=None)[0]
    a, b = video.robust_scale_shift(jnp.asarray(p, jnp.float32), jnp.asarray(r, jnp.float32),
                                    jnp.asarray(w, jnp.float32), steps=0)
    np.testing.assert_allclose([float(a), float(b)], want, rtol=1e-4, atol=1e-5)
    a3, _ = video.robust_scale_shift(jnp.asarray(p, jnp.float32), jnp.asarray(r, jnp.float32),
                                     jnp.asarray(w, jnp.float32))
    assert abs(float(a3) - 2.5) < 0.01


def test_flicker_by_hand():
    # Values 0, 1 | 1, 2 | 1, 2: median 1, mean |deviation| 3/6; the changes 1, 1 | 0, 0
    # become 2, 2 | 0, 0 normalised, mean 1.
    frames = np.asarray([[[0.0, 1.0]], [[1.0, 2.0]], [[1.0, 2.0]]])
    assert video.flicker(frames) == pytest.approx(1.0)
    assert video.flicker(5.0 * frames + 3.0) == pytest.approx(video.flicker(frames))
    mask = np.ones(frames.shape, bool)
    mask[1, 0, 0] = False  # only pixel 1 counts between frames 0-1 and 1-2
    assert video.flicker(frames, mask) > 0
    assert video.flicker(np.ones((4, 3, 3))) == 0.0


def test_render_sequence_is_the_scene_seen_moving():
    seq = render_sequence(3, 1, num_frames=3, size=(40, 56))
    assert seq["image"].shape == (3, 40, 56, 3) and seq["inverse_depth"].shape == (3, 40, 56)
    still = render_scene(3, 1, (40, 56))
    np.testing.assert_array_equal(seq["image"][0], still["image"])
    first = seq["inverse_depth"][0]
    np.testing.assert_allclose(first / first.max(), still["depth"], rtol=1e-5)
    assert not np.array_equal(seq["image"][0], seq["image"][2])  # the camera moved
    again = render_sequence(3, 1, num_frames=3, size=(40, 56))
    np.testing.assert_array_equal(again["inverse_depth"], seq["inverse_depth"])


@pytest.fixture(scope="module")
def params_dir(tmp_path_factory, like_trained):
    _, variables = create_variables(TINY_MODEL, jax.random.PRNGKey(0))
    variables = like_trained(variables, seed=1)
    out = tmp_path_factory.mktemp("params")
    params_io.write_model_json(str(out), TINY_MODEL, 64)
    params_io.save_msgpack(str(out), variables)
    return str(out)


def _write(path, frames, fourcc="mp4v"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10,
                             frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _decode(path):
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return np.stack(frames)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def test_predict_video_writes_each_format(params_dir, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    _write(clip, render_sequence(0, 2, num_frames=7, size=(48, 80))["image"])
    out = tmp_path / "out"
    assert cli.main(["predict", str(clip), "--params", params_dir, "--out", str(out),
                     "--format", "side,npy,png16", "--batch", "3"]) == 0
    assert "7 frame(s) at 80x48" in capsys.readouterr().out
    side = _decode(out / "clip_depth.mp4")
    assert side.shape == (7, 48, 160, 3)
    raw = np.load(out / "clip_depth.npy")
    assert raw.shape == (7, 48, 80) and raw.dtype == np.float32
    # Each frame is what the photo path predicts for the same decoded frame.
    want = inference.predict(inference.load_model(params=params_dir), list(_decode(clip)),
                             batch_size=3)
    np.testing.assert_allclose(raw, np.stack(want), atol=1e-5)
    pngs = sorted(os.listdir(out / "clip_depth"))
    assert pngs[0] == "000000.png" and len(pngs) == 7
    np.testing.assert_array_equal(
        cv2.imread(str(out / "clip_depth" / "000003.png"), cv2.IMREAD_UNCHANGED),
        inference.to_png16(raw[3]))
    assert cli.main(["predict", str(clip), "--params", params_dir, "--out", str(out),
                     "--format", "npy", "--stabilize", "--smoothing", "0.5"]) == 0
    steady = np.load(out / "clip_depth.npy")
    np.testing.assert_allclose(steady[0], raw[0], atol=1e-5)  # the first frame is the anchor
    for t in range(1, 7):  # later ones are the same map up to a positive scale and a shift
        assert np.corrcoef(steady[t].ravel(), raw[t].ravel())[0, 1] > 0.9999


def test_predict_video_from_and_to_a_bucket(params_dir, tmp_path, gcs, capsys):
    """A video and a model in a bucket (conftest's GCS emulator), outputs written to it:
    the same files as on disk, and the log names the URLs, not the local copies."""
    import uuid

    from depthsense_jax import storage

    clip = tmp_path / "clip.mp4"
    _write(clip, render_sequence(0, 2, num_frames=5, size=(48, 80))["image"])
    bucket = gcs.bucket(f"video-{uuid.uuid4().hex[:12]}")
    storage.copy_file(str(clip), f"{bucket}/in/clip.mp4")
    storage.copy_tree(params_dir, f"{bucket}/model")
    formats = ["--format", "npy,png16", "--batch", "2"]
    assert cli.main(["predict", f"{bucket}/in/clip.mp4", "--params", f"{bucket}/model",
                     "--out", f"{bucket}/out", *formats]) == 0
    log = capsys.readouterr().out
    assert f"{bucket}/in/clip.mp4: 5 frame(s)" in log and f"{bucket}/out/clip_depth.npy" in log
    assert cli.main(["predict", str(clip), "--params", params_dir, "--out",
                     str(tmp_path / "out"), *formats]) == 0
    assert storage.read_bytes(f"{bucket}/out/clip_depth.npy") == (
        tmp_path / "out" / "clip_depth.npy").read_bytes()
    assert storage.listdir(f"{bucket}/out/clip_depth") == [f"{i:06d}.png" for i in range(5)]


def test_bad_videos(params_dir, tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4000))
    assert cli.main(["predict", str(junk), "--params", params_dir, "--out",
                     str(tmp_path / "o")]) == 2
    assert "junk.mp4: not a readable video" in capsys.readouterr().err
    # An AVI cut in half: the container announces 10 frames, 5 or so can be decoded.
    frames = np.random.default_rng(0).integers(0, 256, (10, 32, 64, 3), dtype=np.uint8)
    full = tmp_path / "full.avi"
    _write(full, frames, "MJPG")
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    out = tmp_path / "out"
    assert cli.main(["predict", str(cut), "--params", params_dir, "--out", str(out),
                     "--format", "color,npy"]) == 0
    text = capsys.readouterr().out
    kept = np.load(out / "cut_depth.npy")
    assert 0 < len(kept) < 10
    assert f"stopped after {len(kept)} of the 10" in text
    assert len(_decode(out / "cut_depth.mp4")) == len(kept)
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), frames[0])
    assert cli.main(["predict", str(photo), "--params", params_dir, "--out", str(out),
                     "--stabilize"]) == 2
    assert "--stabilize is for videos" in capsys.readouterr().err
    assert cli.main(["predict", str(full), "--params", params_dir, "--out", str(out),
                     "--format", "color,side"]) == 2
    assert "color or side" in capsys.readouterr().err

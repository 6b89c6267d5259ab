"""Metric depth from known points (`depthsense_jax.metric`, `predict --metric-from`) and the
robust scale-and-shift fit it shares with video stabilisation and the zero-shot protocol,
against a float64 NumPy IRLS written here from its description."""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest
import scipy.ndimage

from depthsense_jax import cli, metric
from depthsense_jax.data.synthetic import render_scene
from depthsense_jax.evaluation import protocol
from depthsense_jax.losses.scale_shift import fit_scale_shift, robust_fit_scale_shift

SIZES = {"depthnet": 64, "depth_anything": 56}


def irls_reference(pred, target, weights, steps=10):
    """Cauchy IRLS in float64: weighted least squares of target on [pred, 1] (solved by
    lstsq on sqrt-weighted rows), reweighted `steps` times by w / (1 + (r / (2.385
    sigma))^2), sigma = 1.4826 median |r| over the points with weight."""
    p, y, w0 = (np.asarray(a, np.float64).ravel() for a in (pred, target, weights))
    keep = w0 > 0
    p, y, w0 = p[keep], y[keep], w0[keep]
    w = w0
    for step in range(steps + 1):
        root = np.sqrt(w)
        (s, t), *_ = np.linalg.lstsq(np.stack([p * root, root], 1), y * root, rcond=None)
        if step == steps:
            return s, t
        r = s * p + t - y
        sigma = 1.4826 * np.median(np.abs(r))
        w = w0 / (1 + (r / (2.385 * sigma)) ** 2)


def test_robust_fit_equals_a_numpy_irls(rng):
    pred = rng.random((3, 12, 15))
    target = 2.0 * pred - 0.4 + rng.normal(0, 0.02, pred.shape)
    wrong = rng.random(pred.shape) < 0.15
    target[wrong] += rng.normal(0, 3.0, wrong.sum())
    weights = np.stack([np.ones((12, 15)), rng.random((12, 15)) > 0.4,
                        rng.uniform(0, 1, (12, 15)) * (rng.random((12, 15)) > 0.2)])
    s, t = robust_fit_scale_shift(pred.astype(np.float32), target.astype(np.float32),
                                  weights.astype(np.float32))
    for i in range(3):
        want = irls_reference(pred[i], target[i], weights[i])
        np.testing.assert_allclose([s[i], t[i]], want, rtol=2e-4, atol=2e-5)
    # Any trailing shape: (B, N) points give the same fit as (B, H, W) pixels.
    flat = robust_fit_scale_shift(pred.reshape(3, -1), target.reshape(3, -1),
                                  weights.reshape(3, -1) > 0)
    full = robust_fit_scale_shift(pred, target, weights > 0)
    np.testing.assert_allclose(np.asarray(flat), np.asarray(full), rtol=1e-5)
    # steps=0 is the least-squares fit.
    np.testing.assert_allclose(
        np.asarray(robust_fit_scale_shift(pred, target, weights > 0, steps=0)),
        np.asarray(fit_scale_shift(pred, target, weights > 0)), rtol=1e-6)


def test_outliers_barely_move_the_robust_fit_but_move_least_squares(rng):
    pred = rng.uniform(0.1, 1.0, (2, 1, 200))
    target = 3.0 * pred + 0.5
    for i, (low, high) in enumerate([(5.0, 20.0), (-10.0, 0.0)]):
        wrong = rng.permutation(200)[:40]  # 20% wildly wrong targets (known depths)
        target[i, 0, wrong] = rng.uniform(low, high, 40)
    mask = np.ones(pred.shape, bool)
    s, t = robust_fit_scale_shift(pred, target, mask)
    s_ls, t_ls = fit_scale_shift(pred, target, mask)
    np.testing.assert_allclose(s, 3.0, rtol=5e-3)
    np.testing.assert_allclose(t, 0.5, atol=5e-3)
    assert np.all((np.abs(s_ls - 3.0) > 0.5) | (np.abs(t_ls - 0.5) > 0.5))


def test_robust_fit_degenerate_inputs_stay_finite():
    const = np.ones((2, 4, 4), np.float32)
    target = np.full((2, 4, 4), np.nan, np.float32)
    target[0] = 2.0
    mask = np.zeros((2, 4, 4), bool)
    mask[0] = True
    s, t = robust_fit_scale_shift(const, target, mask)  # constant pred; empty mask
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(t))
    assert float(s[0]) == 0.0 and float(t[0]) == pytest.approx(2.0)
    exact = np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4)
    s, t = robust_fit_scale_shift(exact, 4 * exact + 1, np.ones_like(exact, bool))
    assert float(s[0]) == pytest.approx(4.0, rel=1e-5)
    assert float(t[0]) == pytest.approx(1.0, rel=1e-5)


def _wrong_pixels(rng, shape):
    """Depth in [1, 10] with 20% of the ground-truth pixels wildly wrong (20-70 m), and a
    prediction affine in the right inverse depth; the share of right pixels."""
    depth = rng.uniform(1.0, 10.0, shape).astype(np.float32)
    pred = (2.0 / depth + 0.1).astype(np.float32)
    wrong = rng.random(shape) < 0.2
    depth[wrong] = rng.uniform(20.0, 70.0, wrong.sum())
    return depth, pred, 1.0 - wrong.mean()


def test_zero_shot_fit_option(rng):
    depth, pred, right = _wrong_pixels(rng, (1, 20, 24))
    valid = np.ones(depth.shape, bool)
    low, high = np.float32([1e-3]), np.float32([72.0])
    lstsq = protocol.score_depth(pred, depth, valid, low, high)
    same = protocol.score_depth(pred, depth, valid, low, high, fit="lstsq")
    assert {k: float(v[0]) for k, v in same.items()} == {k: float(v[0])
                                                        for k, v in lstsq.items()}
    robust = protocol.score_depth(pred, depth, valid, low, high, fit="robust")
    # The NumPy protocol with the reference IRLS: aligned disparity, clamped, inverted.
    s, t = irls_reference(pred, 1.0 / depth, valid)
    estimate = 1.0 / np.clip(s * pred.astype(np.float64) + t, 1 / 72.0, 1e3)
    want = np.mean(np.abs(estimate - depth) / depth)
    assert float(robust["abs_rel"][0]) == pytest.approx(want, rel=1e-3)
    # Every right pixel is right after the robust fit: its errors are the wrong pixels'.
    assert float(robust["delta1"][0]) == pytest.approx(right, abs=1e-3)
    assert float(robust["abs_rel"][0]) < 0.6 * float(lstsq["abs_rel"][0])
    with pytest.raises(ValueError, match="--fit robust"):
        protocol.check_alignment("scale", "disparity", "depth", "robust")
    with pytest.raises(ValueError, match="--fit must be one of"):
        protocol.check_alignment("disparity", "disparity", "depth", "huber")


def _sintel(root, rng, depth, pred):
    """A one-frame Sintel folder (training/final/s/f.png, training/depth/s/f.dpt: float32
    little-endian after the tag 202021.25 and width, height) and its saved prediction."""
    (root / "sintel/training/final/s").mkdir(parents=True)
    (root / "sintel/training/depth/s").mkdir(parents=True)
    image = rng.integers(0, 255, (*depth.shape, 3), dtype=np.uint8)
    assert cv2.imwrite(str(root / "sintel/training/final/s/f.png"), image)
    with open(root / "sintel/training/depth/s/f.dpt", "wb") as f:
        f.write(struct.pack("<fii", 202021.25, depth.shape[1], depth.shape[0]))
        f.write(np.ascontiguousarray(depth, "<f4").tobytes())
    (root / "preds").mkdir()
    np.save(root / "preds/f.npy", pred)


def test_zero_shot_cli_fit_robust(tmp_path, rng):
    depth, pred, right = _wrong_pixels(rng, (24, 32))
    _sintel(tmp_path, rng, depth, pred)
    results = {}
    for fit in ("lstsq", "robust", None):
        out = tmp_path / f"{fit}.json"
        args = ["zero-shot", "sintel", "--data-dir", str(tmp_path / "sintel"),
                "--predictions", str(tmp_path / "preds"), "--json", str(out)]
        assert cli.main(args + (["--fit", fit] if fit else [])) == 0
        results[fit] = json.loads(out.read_text())
    assert results["robust"]["settings"]["fit"] == "robust"
    for r in results.values():
        r["summary"].pop("images_per_s")
    assert results[None]["summary"] == results["lstsq"]["summary"]  # the default: unchanged
    assert results["robust"]["summary"]["delta1"] == pytest.approx(right, abs=1e-3)
    assert results["robust"]["summary"]["abs_rel"] < 0.6 * results["lstsq"]["summary"][
        "abs_rel"]


# Known points ------------------------------------------------------------------------------


def test_known_csv_is_read_and_matched_by_name_or_relative_path(tmp_path):
    csv = tmp_path / "known.csv"
    csv.write_text("\ufeffimage,x,y,depth_m,note\n"
                   "a.jpg,1,2,3.5,x\n"
                   "./a.jpg,3,4,5.0,\n"       # the same name
                   "sub/b.jpg,0,0,1.0,\n"
                   "sub/b.jpg,4.5,1.25,2.0,\n"
                   "c.jpg,1,1,1.0,\n"          # names two photos: their own error
                   "gone.jpg,1,1,1.0,\n")      # names none: a warning
    photos = [str(tmp_path / p) for p in ("in/a.jpg", "in/sub/b.jpg", "in/x/c.jpg",
                                          "in/y/c.jpg", "in/d.jpg")]
    lines = []
    known = metric.load_known(str(csv), photos, log=lines.append)
    a = known.for_photo(photos[0])
    assert (a.x.tolist(), a.y.tolist(), a.depth.tolist()) == ([1, 3], [2, 4], [3.5, 5])
    b = known.for_photo(photos[1])
    assert b.x.tolist() == [0.0, 4.5] and b.depth.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="names 2 photos"):
        known.for_photo(photos[2])
    with pytest.raises(ValueError, match=r"d\.jpg: no known depths"):
        known.for_photo(photos[4])
    assert any("gone.jpg" in line for line in lines)
    assert any("no known depths" in line and "d.jpg" in line for line in lines)


@pytest.mark.parametrize("text, message", [
    ("image,x,depth\na.jpg,1,2\n", "needs the header image,x,y,depth_m"),
    ("image,x,y,depth_m\na.jpg,1,2,-1\n", "line 2: depth_m must be > 0"),
    ("image,x,y,depth_m\na.jpg,1,two,3\n", "line 2: y must be a number"),
    ("image,x,y,depth_m\na.jpg,1,2,nan\n", "line 2: depth_m must be finite"),
    ("image,x,y,depth_m\na.jpg,1,2\n", "line 2: expected the 4 columns"),
    ("image,x,y,depth_m\n", "no known depths"),
])
def test_a_bad_csv_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "k.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        metric.read_known_csv(str(path))
    assert str(path) in str(err.value)


def test_sparse_maps_in_millimetres_and_metres(tmp_path):
    folder = tmp_path / "sparse"
    (folder / "sub").mkdir(parents=True)
    mm = np.zeros((4, 5), np.uint16)
    mm[1, 2], mm[3, 0] = 1500, 65535
    assert cv2.imwrite(str(folder / "sub" / "a.png"), mm)
    metres = np.zeros((4, 5), np.float32)
    metres[0, 4], metres[2, 2] = 2.25, np.nan  # NaN = unknown
    np.save(folder / "b.npy", metres)
    photos = [str(tmp_path / "in/sub/a.jpg"), str(tmp_path / "in/b.png")]
    known = metric.load_known(str(folder), photos, log=lambda s: None)
    a = known.for_photo(photos[0])
    assert sorted(zip(a.x, a.y, a.depth, strict=True)) == [(0, 3, 65.535), (2, 1, 1.5)]
    b = known.for_photo(photos[1])
    assert (b.x.tolist(), b.y.tolist(), b.depth.tolist(), b.size) == ([4], [0], [2.25],
                                                                      (4, 5))
    with pytest.raises(ValueError, match="sparse depth map .* is 5x4, the photo 6x4"):
        metric.fit_known(np.zeros((4, 6)), b, "in/b.png")
    cv2.imwrite(str(folder / "bad.png"), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="bad.png: a sparse depth PNG must be 16-bit"):
        metric.read_sparse_map(str(folder / "bad.png"))
    np.save(folder / "b2.npy", -metres)
    with pytest.raises(ValueError, match="b2.npy: negative depths"):
        metric.read_sparse_map(str(folder / "b2.npy"))
    (folder / "sub" / "a.npy").write_bytes((folder / "b.npy").read_bytes())
    with pytest.raises(ValueError, match="two sparse depth maps for 'sub/a'"):
        metric.load_known(str(folder), photos, log=lambda s: None)


def test_fit_recovers_an_affine_inverse_depth_and_caps(rng):
    pred = rng.uniform(0.0, 1.0, (30, 40)).astype(np.float32)
    scale, shift = 0.8, 0.05  # 1 / depth = scale * pred + shift
    xs, ys = rng.uniform(0, 39, 25), rng.uniform(0, 29, 25)
    ref = scipy.ndimage.map_coordinates(pred.astype(np.float64), [ys, xs], order=1)
    points = metric.KnownPoints(xs, ys, 1.0 / (scale * ref + shift), "k.csv")
    fit = metric.fit_known(pred, points, "p.jpg")
    assert fit.scale == pytest.approx(scale, rel=1e-3)
    assert fit.shift == pytest.approx(shift, abs=1e-4)
    assert fit.abs_rel < 1e-4 and fit.delta1 == 1.0 and fit.points == 25
    assert fit.max_depth == pytest.approx(metric.MAX_DEPTH_FACTOR * points.depth.max())
    metres = metric.to_metric(pred, fit)
    np.testing.assert_allclose(metres, 1.0 / (scale * pred + shift), rtol=1e-3)
    # Past the cap, or a fitted inverse depth <= 0: 0 = unknown.
    far = np.array([[-1.0, 0.0, 1.0]], np.float32)
    capped = metric.to_metric(far, metric.MetricFit(1.0, 0.0, 2, 5.0, 0, 0, 1))
    assert capped.tolist() == [[0.0, 0.0, 1.0]]
    wide = metric.fit_known(pred, points, "p.jpg", max_depth=2.0)
    assert wide.max_depth == 2.0 and metric.to_metric(pred, wide).max() <= 2.0


def test_fit_failures_name_the_photo(rng):
    pred = rng.uniform(0, 1, (10, 10)).astype(np.float32)
    one = metric.KnownPoints(np.array([1.0, 5.0]), np.array([1.0, 5.0]), np.array([2.0, 2.0]),
                             "k.csv")
    with pytest.raises(ValueError, match="p.jpg: 2 known point.* 1 distinct depth"):
        metric.fit_known(pred, one, "p.jpg")
    xs = np.array([1.0, 2.0, 3.0, 4.0])
    backwards = metric.KnownPoints(xs, xs, 1.0 / (0.1 + pred[xs.astype(int), xs.astype(int)]),
                                   "k.csv")
    flipped = np.float32(1.0) - pred  # nearer where the known points are farther
    with pytest.raises(ValueError, match="p.jpg: the metric fit .* scale -"):
        metric.fit_known(flipped, backwards, "p.jpg")
    with pytest.raises(ValueError, match="same at every known point"):
        metric.fit_known(np.zeros((10, 10)), backwards, "p.jpg")
    outside = metric.KnownPoints(np.array([1.0, 10.0]), np.array([1.0, 2.0]),
                                 np.array([1.0, 2.0]), "k.csv")
    with pytest.raises(ValueError, match="p.jpg: 1 known point.* outside its 10x10 pixels"):
        metric.fit_known(pred, outside, "p.jpg")


def test_png_in_millimetres():
    metres = np.array([[0.0, 0.0004, 1.2344, 65.535, 65.6]], np.float32)
    assert metric.to_png_mm(metres).tolist() == [[0, 1, 1234, 65535, 0]]


# The command, for each family ----------------------------------------------------------------


@pytest.mark.parametrize("family", ["depthnet", "depth_anything"])
def test_predict_metric_from_csv(family, tiny_models, tmp_path, capsys):
    """Known depths made from the model's own prediction (1 / depth = 2 pred + 0.5 at 12
    pixels) come back exactly; a photo without rows and one with a single distinct depth
    fail alone, named; the point cloud is in the same metres."""
    from depthsense_jax import inference

    size = SIZES[family]
    photos = tmp_path / "photos"
    photos.mkdir()
    images = [render_scene(5, i, size=(60, 90))["image"] for i in range(3)]
    for i, image in enumerate(images):
        assert cv2.imwrite(str(photos / f"p{i}.png"), image[..., ::-1])
    model = tiny_models.loaded(family)
    pred = inference.Predictor(model).predict(
        [inference.read_photo(str(photos / "p0.png"))], size=size, batch_size=4)[0]
    rng = np.random.default_rng(1)
    xs, ys = rng.integers(0, 90, 12), rng.integers(0, 60, 12)
    inverse = 2.0 * pred[ys, xs].astype(np.float64) + 0.5
    rows = [f"p0.png,{x},{y},{float(1 / v)!r}" for x, y, v in zip(xs, ys, inverse, strict=True)]
    rows += ["photos/p1.png,3,4,2.0", "photos/p1.png,5,6,2.0"]  # one distinct depth
    (tmp_path / "known.csv").write_text("image,x,y,depth_m\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    code = cli.main(["predict", str(photos), "--params", tiny_models.paths[family],
                     "--out", str(out), "--size", str(size), "--metric-from",
                     str(tmp_path / "known.csv"), "--format", "metric_npy,metric_png16,npz",
                     "--fov", "70"])
    assert code == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "p1.png" in text and "1 distinct depth" in text
    assert "p2.png" in text and "no known depths" in text
    assert not (out / "p1_metric.npy").exists() and not (out / "p2_metric.json").exists()
    report = json.loads((out / "p0_metric.json").read_text())
    assert report["points"] == 12 and report["known_from"] == str(tmp_path / "known.csv")
    assert report["scale"] == pytest.approx(2.0, rel=1e-3)
    assert report["shift"] == pytest.approx(0.5, rel=1e-3, abs=1e-3)
    assert report["abs_rel"] < 1e-4
    metres = np.load(out / "p0_metric.npy")
    assert metres.shape == (60, 90) and np.all(np.isfinite(metres))
    expect = 1.0 / (2.0 * pred.astype(np.float64) + 0.5)
    known = expect <= report["max_depth"]
    np.testing.assert_allclose(metres[known], expect[known], rtol=2e-3)
    assert np.all(metres[~known] == 0)
    mm = cv2.imread(str(out / "p0_metric_mm.png"), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, metric.to_png_mm(metres))
    cloud = np.load(out / "p0_points.npz")
    assert str(cloud["depth_kind"]) == "metric"
    np.testing.assert_array_equal(np.sort(cloud["xyz"][:, 2]), np.sort(metres[metres > 0]))
    # Every file written is one output_paths names (what --skip-existing checks), and no more.
    names = inference.output_paths("p0", ["metric_npy", "metric_png16", "npz", "metric_json"])
    assert sorted(p.name for p in out.iterdir()) == sorted(names)


def test_predict_option_errors_come_before_the_model(tmp_path, capsys):
    photo = tmp_path / "p.png"
    assert cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    base = ["predict", str(photo), "--params", str(tmp_path / "no-model"), "--out",
            str(tmp_path / "out")]
    for extra, message in [
            (["--format", "metric_npy"], "needs known depths: --metric-from"),
            (["--fov", "60"], "--fov and --intrinsics are for point clouds"),
            (["--format", "ply", "--intrinsics", "1,2,3"], "--intrinsics '1,2,3'"),
            (["--max-depth", "50"], "--max-depth caps metric depth"),
            (["--metric-from", str(tmp_path / "none.csv")], "no such file or folder")]:
        assert cli.main(base + extra) == cli.EXIT_ERROR
        assert message in capsys.readouterr().err

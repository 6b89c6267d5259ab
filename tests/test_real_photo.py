"""The real-photo check (depthsense_jax.evaluation.real_photo, printed by
scripts/real_photo_check.py) on Debian opencv-doc's Middlebury "Aloe" pair: its scene folder
reads through the zero-shot benchmark's Middlebury reader, the "lower is nearer" prior
scores what was measured, and a model is scored on the photo it is given."""

import os

import cv2
import numpy as np
import pytest

from depthsense_jax.evaluation import real_photo as check

DATA = check.OPENCV_DATA

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(DATA, "aloeGT.png")),
    reason="Debian's opencv-doc is not installed (apt-get install opencv-doc)")


def test_the_scene_reads_as_middlebury_2006(tmp_path):
    from depthsense_jax.data import registry

    check.aloe_scene(str(tmp_path))
    spec, items = registry.benchmark("middlebury", str(tmp_path))
    assert [item.name for item in items] == ["aloe/view1"]
    sample = items[0].load()
    truth = cv2.imread(os.path.join(DATA, "aloeGT.png"), cv2.IMREAD_UNCHANGED)
    assert sample.kind == "disparity" and sample.image.shape[:2] == truth.shape
    np.testing.assert_array_equal(sample.mask, truth > 0)
    assert 0.9 < sample.mask.mean() < 1.0  # 3.5% of the pixels have no disparity


def test_the_vertical_prior_scores_about_30_percent():
    truth = cv2.imread(os.path.join(DATA, "aloeGT.png"), cv2.IMREAD_UNCHANGED)
    truth = truth.astype(np.float32)
    prior = check.dense_whdr(check.vertical_prior(*truth.shape), truth)
    upside_down = check.dense_whdr(-check.vertical_prior(*truth.shape), truth)
    assert len(prior) == 3 and all(27 < w < 33 for w in prior)
    assert all(u > 60 for u in upside_down)  # the flipped prior is clamped to a constant
    # the ground truth itself is perfect
    assert check.dense_whdr(truth, truth) == [0.0, 0.0, 0.0]


def test_a_model_is_scored_on_the_photo_beside_the_prior(trained, tmp_path):
    """Each row is the score of the prediction of the Aloe photo: the dense WHDR is that of
    `inference.predict` on the photo as read from the scene, the benchmark's (3,000 pairs)
    lies within a few points of it, and the prior's rows are the prior's."""
    from depthsense_jax import inference

    model = inference.load_model(workdir=trained.workdir, checkpoint="best")
    results = check.check({"run": model}, str(tmp_path))
    assert list(results) == [check.PRIOR, "run"]
    truth = cv2.imread(os.path.join(DATA, "aloeGT.png"), cv2.IMREAD_UNCHANGED)
    truth = truth.astype(np.float32)
    photo = inference.read_photo(str(tmp_path / "aloe" / "view1.png"))
    assert photo.shape[:2] == truth.shape
    pred = inference.predict(model, [photo])[0]
    assert results["run"]["dense_whdr"] == check.dense_whdr(pred, truth)
    prior = results[check.PRIOR]
    assert prior["dense_whdr"] == check.dense_whdr(check.vertical_prior(*truth.shape), truth)
    for row in results.values():  # 3,000 pairs against 50,000: the same image, close
        assert abs(row["benchmark_whdr"] - np.mean(row["dense_whdr"])) < 4
    # The untrained-like tiny run and the prior are different predictions.
    assert results["run"]["dense_whdr"] != prior["dense_whdr"]

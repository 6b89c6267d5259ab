"""The real-photo check (scripts/real_photo_check.py) on Debian opencv-doc's Middlebury
"Aloe" pair: its scene folder reads through the benchmark's Middlebury reader, the
"lower is nearer" prior scores what was measured, and the script runs end to end."""

import importlib.util
import os
import pathlib

import cv2
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = "/usr/share/doc/opencv-doc/examples/data"

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(DATA, "aloeGT.png")),
    reason="Debian's opencv-doc is not installed (apt-get install opencv-doc)")


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location(
        "real_photo_check", ROOT / "scripts" / "real_photo_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scene_reads_as_middlebury_2006(check, tmp_path):
    from depthsense_jax.data import registry

    check.aloe_scene(str(tmp_path))
    spec, items = registry.benchmark("middlebury", str(tmp_path))
    assert [item.name for item in items] == ["aloe/view1"]
    sample = items[0].load()
    truth = cv2.imread(os.path.join(DATA, "aloeGT.png"), cv2.IMREAD_UNCHANGED)
    assert sample.kind == "disparity" and sample.image.shape[:2] == truth.shape
    np.testing.assert_array_equal(sample.mask, truth > 0)
    assert 0.9 < sample.mask.mean() < 1.0  # 3.5% of the pixels have no disparity


def test_the_vertical_prior_scores_about_30_percent(check):
    truth = cv2.imread(os.path.join(DATA, "aloeGT.png"), cv2.IMREAD_UNCHANGED)
    truth = truth.astype(np.float32)
    prior = check.dense_whdr(check.vertical_prior(*truth.shape), truth)
    upside_down = check.dense_whdr(-check.vertical_prior(*truth.shape), truth)
    assert len(prior) == 3 and all(27 < w < 33 for w in prior)
    assert all(u > 60 for u in upside_down)  # the flipped prior is clamped to a constant
    # the ground truth itself is perfect
    assert check.dense_whdr(truth, truth) == [0.0, 0.0, 0.0]


def test_the_script_scores_a_model_and_the_prior(check, trained, tmp_path, capsys):
    out = tmp_path / "aloe.json"
    assert check.main([trained.workdir, "--json", str(out)]) == 0
    import json

    results = json.loads(out.read_text())
    assert set(results) == {"vertical prior", trained.workdir}
    for row in results.values():
        assert 0 <= row["benchmark_whdr"] <= 100 and len(row["dense_whdr"]) == 3
    assert "vertical prior" in capsys.readouterr().out

"""The real-photo check: models on the Middlebury "Aloe" photo with ground-truth disparity that
Debian's opencv-doc package ships, beside the "lower is nearer" prior
(`scripts/real_photo_check.py` prints it; `scripts/ablation_scenes.py` uses it).

The pair is laid out as a Middlebury 2006 scene (view1.png, disp1.png: 8-bit disparity, 0 =
unknown) in a folder and scored twice:

- by the zero-shot benchmark's Middlebury reader and protocol (its 3,000 pairs per image),
  the models and the prior (given as saved predictions) alike;
- by the aligned WHDR (`metrics.whdr`) over PAIRS random valid pairs for each of SEEDS,
  which is steadier on one image.

Nothing is downloaded; without opencv-doc (`apt-get install opencv-doc`) it says so.
"""

from __future__ import annotations

import os

import cv2
import jax
import numpy as np

from depthsense_jax import inference, metrics, sampling
from depthsense_jax.evaluation import zero_shot

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"
PAIRS = 50_000
SEEDS = (0, 1, 2)
PRIOR = "vertical prior"


def aloe_scene(folder: str, data: str = OPENCV_DATA) -> str:
    """Write the Aloe left view and its disparity as the Middlebury 2006 scene
    FOLDER/aloe; FileNotFoundError naming the missing file without opencv-doc."""
    photo, truth = os.path.join(data, "aloeL.jpg"), os.path.join(data, "aloeGT.png")
    for path in (photo, truth):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: install Debian's opencv-doc "
                                    "(apt-get install opencv-doc)")
    scene = os.path.join(folder, "aloe")
    os.makedirs(scene, exist_ok=True)
    cv2.imwrite(os.path.join(scene, "view1.png"), cv2.imread(photo, cv2.IMREAD_COLOR))
    cv2.imwrite(os.path.join(scene, "disp1.png"), cv2.imread(truth, cv2.IMREAD_UNCHANGED))
    return scene


def vertical_prior(height: int, width: int) -> np.ndarray:
    """Lower in the picture = nearer: the row index, (H, W) float32, larger = nearer."""
    return np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)


def dense_whdr(pred: np.ndarray, disparity: np.ndarray) -> list[float]:
    """Aligned WHDR in % of `pred` (larger = nearer) over PAIRS valid pairs, per seed."""
    mask = disparity > 0
    out = []
    for seed in SEEDS:
        pairs = sampling.random_pairs(jax.random.PRNGKey(seed), mask[None], PAIRS)
        out.append(100 * float(metrics.whdr(pred[None], disparity[None], pairs,
                                            mask=mask[None])[0]))
    return out


def check(models: dict[str, inference.LoadedModel], folder: str,
          data: str = OPENCV_DATA) -> dict[str, dict]:
    """{name: {"benchmark_whdr": %, "dense_whdr": [% per seed]}} of the prior (PRIOR) and of
    each model, the scene written under `folder`."""
    scene = aloe_scene(folder, data)
    disparity = cv2.imread(os.path.join(scene, "disp1.png"),
                           cv2.IMREAD_UNCHANGED).astype(np.float32)
    photo = inference.read_photo(os.path.join(scene, "view1.png"))
    prior_dir = os.path.join(folder, "prior")
    os.makedirs(os.path.join(prior_dir, "aloe"), exist_ok=True)
    prior = vertical_prior(*disparity.shape)
    np.save(os.path.join(prior_dir, "aloe", "view1.npy"), prior)
    report = zero_shot.run("middlebury", folder, predictions_dir=prior_dir, progress=False)
    results = {PRIOR: {"benchmark_whdr": 100 * report.summary()["whdr"],
                       "dense_whdr": dense_whdr(prior, disparity)}}
    for name, model in models.items():
        report = zero_shot.run("middlebury", folder, model=model, progress=False)
        pred = inference.predict(model, [photo])[0]
        results[name] = {"benchmark_whdr": 100 * report.summary()["whdr"],
                         "dense_whdr": dense_whdr(pred, disparity)}
    return results

"""`depthsense benchmark`: score a model, or another tool's saved predictions, on a benchmark
dataset read from the user's folder, with the zero-shot protocol (`protocol`).

Reading runs ahead of the model on a thread; the model predicts a chunk of images at a time,
batched and jitted per input shape (`inference.predict`); each image is then resized to its
ground truth (bilinear) and scored by a function jitted per ground-truth shape. Broken
files, missing predictions and images with nothing to score are named, skipped and counted.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Callable

import cv2
import jax
import numpy as np

from depthsense_jax import __version__, metrics, storage
from depthsense_jax.data import registry
from depthsense_jax.data.formats import FormatError
from depthsense_jax.data.samples import Protocol, Sample
from depthsense_jax.evaluation import predictions, protocol
from depthsense_jax.inference import LoadedModel, Predictor, predict
from depthsense_jax.train.steps import per_image_pairs

CHUNK = 8  # images read and predicted together (one chunk is read ahead)
WHDR_PAIRS = 3000  # random pairs per image for WHDR on a relative ground truth


@dataclasses.dataclass
class Report:
    dataset: str
    metric: str  # "depth", "whdr" or "ordinal"
    settings: dict
    rows: list[dict] = dataclasses.field(default_factory=list)  # one per scored image
    skipped: list[dict] = dataclasses.field(default_factory=list)  # name, reason, message
    seconds: float = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return (*metrics.DEPTH_ERRORS, "whdr") if self.metric == "depth" else ("whdr",)

    def summary(self) -> dict:
        """Means over the scored images, their count, and the skipped count per reason."""
        out = {"images": len(self.rows)}
        for name in self.names:
            out[name] = (float(np.mean([r[name] for r in self.rows])) if self.rows
                         else float("nan"))
        if self.metric == "depth":
            out["bad"] = 100.0 * (1.0 - out["delta1"])  # MiDaS's "% of pixels, delta > 1.25"
        out["skipped"] = dict(Counter(s["reason"] for s in self.skipped))
        out["images_per_s"] = len(self.rows) / self.seconds if self.seconds else 0.0
        return out


def _resized(pred: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    if pred.shape == (height, width):
        return np.asarray(pred, np.float32)
    return cv2.resize(np.asarray(pred, np.float32), (width, height),
                      interpolation=cv2.INTER_LINEAR)


def _depth_truth(sample: Sample) -> np.ndarray:
    """The sample's ground truth as depth; a disparity truth becomes 1 / disparity (depth up
    to the unknown scale, which scale-invariant errors do not see)."""
    if sample.kind == "depth":
        return sample.target
    safe = np.where(sample.mask, sample.target, 1.0)
    return np.where(sample.mask, 1.0 / safe, 0.0).astype(np.float32)


def _pair_whdr(pred, target, mask, index: int, prediction_kind: str) -> float:
    """WHDR of `pred` against `target` (larger = nearer) on WHDR_PAIRS random pairs of
    `mask`, the pairs fixed by the image's index."""
    if prediction_kind == "depth":
        pred = -pred  # larger = nearer, as the target
    key = jax.random.fold_in(jax.random.PRNGKey(0), index)
    pairs = per_image_pairs(key, mask[None], WHDR_PAIRS)
    return float(metrics.whdr(pred[None], target[None], pairs, mask=mask[None])[0])


def _score_depth(sample, pred, proto: Protocol, crop, options, index: int) -> dict:
    truth = _depth_truth(sample)
    valid = sample.mask & protocol.crop_mask(crop, *truth.shape) & (truth > 0)
    if proto.min_depth is not None:
        valid &= truth > proto.min_depth
    if proto.max_depth is not None:
        valid &= truth < proto.max_depth
    if valid.sum() < 2:
        raise FormatError(f"{sample.name}: no valid ground truth after the crop and cap",
                          reason="no valid pixel")
    # Without a cap, the clamp keeps the estimate inside the image's own depth range.
    low = proto.min_depth if proto.min_depth is not None else float(truth[valid].min())
    high = proto.max_depth if proto.max_depth is not None else float(truth[valid].max())
    errors = protocol.score_depth(pred[None], truth[None], valid[None], np.float32([low]),
                                  np.float32([high]), **options)
    # WHDR beside the depth errors: the ordinal score the training log reports.
    inverse = np.where(valid, 1.0 / np.where(valid, truth, 1.0), 0.0).astype(np.float32)
    whdr = _pair_whdr(pred, inverse, valid, index, options["prediction_kind"])
    return {name: float(value[0]) for name, value in errors.items()} | {
        "whdr": whdr, "pixels": int(valid.sum())}


def _score_whdr(sample, pred, index: int, prediction_kind: str) -> dict:
    mask = sample.mask
    if mask.sum() < 2:
        raise FormatError(f"{sample.name}: fewer than two valid pixels", reason="no valid pixel")
    return {"whdr": _pair_whdr(pred, sample.target, mask, index, prediction_kind),
            "pixels": int(mask.sum())}


def run(dataset: str, data_dir: str | None, *, model: LoadedModel | None = None,
        predictions_dir: str | None = None, prediction_kind: str = "disparity",
        size: int | None = None, align: str = "disparity", space: str = "depth",
        crop: str | None = None, limit: int | None = None, split_file: str | None = None,
        batch_size: int = 4, progress: bool = True,
        log: Callable[[str], None] = print) -> Report:
    """Score `model` (or the saved predictions in `predictions_dir`) on `dataset`.

    crop: the dataset's evaluation crop (default: its protocol's; "none" for no crop).
    size: the short side the model sees (default: its training image_size). limit: the
    first N images only. See `protocol` for align, space and prediction_kind.
    """
    if (model is None) == (predictions_dir is None):
        raise ValueError("give exactly one of a model (--workdir / --params) or --predictions")
    if model is not None:
        prediction_kind = "disparity"  # our models predict relative inverse depth
    protocol.check_alignment(align, prediction_kind, space)
    spec, items = registry.benchmark(dataset, data_dir, split_file)
    proto = spec.protocol
    if crop is None:
        crop = proto.crop
    elif crop == "none":
        crop = None
    elif crop not in proto.crops:
        raise ValueError(f"--crop {crop!r}: {spec.name} takes {list(proto.crops) or 'none'}")
    items = items[:limit] if limit else items
    settings = {
        "dataset": spec.name, "data_dir": data_dir, "metric": proto.metric, "crop": crop,
        "min_depth": proto.min_depth, "max_depth": proto.max_depth, "align": align,
        "space": space, "prediction_kind": prediction_kind,
        "source": predictions_dir or "model", "size": size or (model and model.image_size),
        "version": __version__, "items": len(items),
    }
    report = Report(spec.name, proto.metric, settings)
    predictor = Predictor(model.model_config, model.variables) if model is not None else None
    options = {"align": align, "prediction_kind": prediction_kind, "space": space}
    from tqdm import tqdm

    bar = tqdm(total=len(items), unit="image", desc=spec.name, file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()))

    def load(item):
        try:
            sample = item.load()
            if predictions_dir is None:
                return sample, None, None
            path = predictions.find(predictions_dir, sample.name)
            pred = predictions.read(path)
            predictions.check_size(path, pred, sample.size)
            return sample, pred, None
        except (FormatError, ValueError, OSError) as err:
            return None, None, err

    def skip(name, err):
        reason = getattr(err, "reason", "unreadable")
        report.skipped.append({"name": name, "reason": reason, "message": str(err)})
        tqdm.write(f"skipped {name}: {err}", file=sys.stderr)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
        pending = pool.map(load, chunks[0]) if chunks else iter(())
        for number, chunk in enumerate(chunks):
            loaded = list(pending)
            if number + 1 < len(chunks):  # read the next chunk while this one is scored
                pending = pool.map(load, chunks[number + 1])
            ready = []
            for item, (sample, pred, err) in zip(chunk, loaded, strict=True):
                if err is not None:
                    skip(item.name, err)
                    bar.update(1)
                else:
                    ready.append((sample, pred))
            if predictor is not None and ready:
                preds = predict(predictor, [s.image for s, _ in ready],
                                size=size or model.image_size, batch_size=batch_size)
                ready = [(s, p) for (s, _), p in zip(ready, preds, strict=True)]
            for sample, pred in ready:
                index = len(report.rows) + len(report.skipped)
                pred = _resized(pred, sample.size)
                try:
                    if proto.metric == "depth":
                        row = _score_depth(sample, pred, proto, crop, options, index)
                    elif proto.metric == "whdr":
                        row = _score_whdr(sample, pred, index, prediction_kind)
                    else:
                        row = {"whdr": 0.0 if protocol.ordinal_correct(
                            pred, sample.pair, prediction_kind) else 1.0}
                except FormatError as err:
                    skip(sample.name, err)
                else:
                    report.rows.append({"name": sample.name, **row})
                bar.update(1)
    bar.close()
    report.seconds = time.perf_counter() - start
    return report


def format_table(report: Report) -> str:
    s = report.summary()
    st = report.settings
    lines = [f"{report.dataset}: {s['images']} images scored"
             + (f", {sum(s['skipped'].values())} skipped "
                f"({', '.join(f'{n} {r}' for r, n in s['skipped'].items())})"
                if s["skipped"] else "")
             + f"; {s['images_per_s']:.1f} images/s"]
    if report.metric == "depth":
        lines.append(f"protocol: align {st['align']}, errors in {st['space']}, crop "
                     f"{st['crop'] or 'none'}, cap {st['min_depth']}..{st['max_depth']}")
        header = f"{'dataset':<12}{'images':>8}{'AbsRel':>9}{'delta1':>9}{'delta2':>9}" \
                 f"{'delta3':>9}{'RMSE':>9}{'%bad':>8}{'WHDR':>9}"
        row = (f"{report.dataset:<12}{s['images']:>8}{s['abs_rel']:>9.4f}{s['delta1']:>9.4f}"
               f"{s['delta2']:>9.4f}{s['delta3']:>9.4f}{s['rmse']:>9.4f}{s['bad']:>8.2f}"
               f"{100 * s['whdr']:>8.2f}%")
    else:
        header = f"{'dataset':<12}{'images':>8}{'WHDR':>9}"
        row = f"{report.dataset:<12}{s['images']:>8}{100 * s['whdr']:>8.2f}%"
    return "\n".join([*lines, header, row])


def write_json(path: str, report: Report) -> None:
    """{"summary", "settings", "rows" (per image), "skipped" (name, reason, message)} as JSON
    at `path`, a local file or a URL (gs://...)."""
    payload = {"summary": report.summary(), "settings": report.settings, "rows": report.rows,
               "skipped": report.skipped}
    storage.write_text(path, json.dumps(payload, indent=2))

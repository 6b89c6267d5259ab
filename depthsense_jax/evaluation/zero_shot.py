"""`depthsense zero-shot`: score a model, or another tool's saved predictions, on a benchmark
dataset read from the user's folder, with the zero-shot protocol (`protocol`).

An `evaluator.Evaluator` of small pieces: `chunks` reads the images (and saved predictions)
a chunk at a time, one chunk ahead of the model on a thread; `model_predictions` runs the
model on a chunk (batched and jitted per input shape, `inference.Predictor`) and resizes
each prediction to its ground truth (bilinear); `score_sample` scores one image with a
function jitted per ground-truth shape. Broken files, missing predictions and images with
nothing to score are named, skipped and counted.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import cv2
import jax
import numpy as np

from depthsense_jax import __version__, evaluator, metrics, sampling, storage
from depthsense_jax.data import registry
from depthsense_jax.data.formats import FormatError
from depthsense_jax.data.samples import Item, Sample, Scoring
from depthsense_jax.evaluation import predictions, protocol
from depthsense_jax.inference import LoadedModel, Predictor

CHUNK = 8  # images read and predicted together (one chunk is read ahead)
WHDR_PAIRS = 3000  # random pairs per image for WHDR on a relative ground truth


@dataclasses.dataclass
class Report:
    dataset: str
    metric: str  # "depth", "whdr" or "ordinal"
    settings: dict
    means: dict[str, float]  # over the scored images (NaN when none was)
    rows: list[dict] = dataclasses.field(default_factory=list)  # one per scored image
    skipped: list[dict] = dataclasses.field(default_factory=list)  # name, reason, message
    seconds: float = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return metric_names(self.metric)

    def summary(self) -> dict:
        """Means over the scored images, their count, and the skipped count per reason."""
        out = {"images": len(self.rows), **{name: self.means[name] for name in self.names}}
        if self.metric == "depth":
            out["bad"] = 100.0 * (1.0 - out["delta1"])  # MiDaS's "% of pixels, delta > 1.25"
        out["skipped"] = dict(Counter(s["reason"] for s in self.skipped))
        out["images_per_s"] = len(self.rows) / self.seconds if self.seconds else 0.0
        return out


def metric_names(metric: str) -> tuple[str, ...]:
    return (*metrics.DEPTH_ERRORS, "whdr") if metric == "depth" else ("whdr",)


@dataclasses.dataclass(frozen=True)
class Options:
    """How images are scored: the dataset's `Scoring`, the crop in use, and the alignment
    (`protocol`: align, space, prediction_kind, fit)."""

    scoring: Scoring
    crop: str | None
    align: str = "disparity"
    space: str = "depth"
    prediction_kind: str = "disparity"
    fit: str = "lstsq"


@dataclasses.dataclass
class Chunk:
    """Read images: (position in the dataset, sample, saved prediction or None) each, and
    the items that could not be read."""

    loaded: list[tuple[int, Sample, np.ndarray | None]]
    skipped: list[evaluator.Skipped]


def _skipped(name: str, err: Exception) -> evaluator.Skipped:
    return evaluator.Skipped(name, getattr(err, "reason", "unreadable"), str(err))


def read_item(item: Item, predictions_dir: str | None):
    """(sample, saved prediction or None), or the error that stopped reading it."""
    try:
        sample = item.load()
        if predictions_dir is None:
            return sample, None
        path = predictions.find(predictions_dir, sample.name)
        pred = predictions.read(path)
        predictions.check_size(path, pred, sample.size)
        return sample, pred
    except (FormatError, ValueError, OSError) as err:
        return err


def chunks(items: Sequence[Item], predictions_dir: str | None) -> Iterator[Chunk]:
    """The items in chunks of CHUNK, each read while the one before is predicted."""
    groups = [list(enumerate(items))[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        def submit(group):
            return pool.map(lambda pair: read_item(pair[1], predictions_dir), group)

        pending = submit(groups[0]) if groups else iter(())
        for number, group in enumerate(groups):
            results = list(pending)
            if number + 1 < len(groups):
                pending = submit(groups[number + 1])
            chunk = Chunk([], [])
            for (position, item), result in zip(group, results, strict=True):
                if isinstance(result, Exception):
                    chunk.skipped.append(_skipped(item.name, result))
                else:
                    chunk.loaded.append((position, *result))
            yield chunk


def _at_truth_size(pred: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    if pred.shape == (height, width):
        return np.asarray(pred, np.float32)
    return cv2.resize(np.asarray(pred, np.float32), (width, height),
                      interpolation=cv2.INTER_LINEAR)


def model_predictions(predictor: Predictor, size: int | None,
                      batch_size: int) -> Callable[[object, Chunk], list[np.ndarray]]:
    """predict(variables, chunk): the model's prediction of each read image at its ground
    truth's size (`variables` is unused: the predictor holds the model's)."""
    def predict(variables, chunk: Chunk) -> list[np.ndarray]:
        images = [sample.image for _, sample, _ in chunk.loaded]
        preds = predictor.predict(images, size=size, batch_size=batch_size) if images else []
        return [_at_truth_size(p, sample.size)
                for p, (_, sample, _) in zip(preds, chunk.loaded, strict=True)]

    return predict


def saved_predictions(variables, chunk: Chunk) -> list[np.ndarray]:
    """predict(variables, chunk) for saved predictions: each at its ground truth's size."""
    return [_at_truth_size(pred, sample.size) for _, sample, pred in chunk.loaded]


def _depth_truth(sample: Sample) -> np.ndarray:
    """The sample's ground truth as depth; a disparity truth becomes 1 / disparity (depth up
    to the unknown scale, which scale-invariant errors do not see)."""
    if sample.kind == "depth":
        return sample.target
    safe = np.where(sample.mask, sample.target, 1.0)
    return np.where(sample.mask, 1.0 / safe, 0.0).astype(np.float32)


def _pair_whdr(pred, target, mask, index: int, prediction_kind: str) -> float:
    """WHDR of `pred` against `target` (larger = nearer) on WHDR_PAIRS random pairs of
    `mask`, the pairs fixed by the image's position in the dataset."""
    if prediction_kind == "depth":
        pred = -pred  # larger = nearer, as the target
    key = jax.random.fold_in(jax.random.PRNGKey(0), index)
    pairs = sampling.per_image_pairs(key, mask[None], WHDR_PAIRS)
    return float(metrics.whdr(pred[None], target[None], pairs, mask=mask[None])[0])


def _score_depth(sample: Sample, pred: np.ndarray, options: Options, index: int) -> dict:
    scoring = options.scoring
    truth = _depth_truth(sample)
    valid = sample.mask & protocol.crop_mask(options.crop, *truth.shape) & (truth > 0)
    if scoring.min_depth is not None:
        valid &= truth > scoring.min_depth
    if scoring.max_depth is not None:
        valid &= truth < scoring.max_depth
    if valid.sum() < 2:
        raise FormatError(f"{sample.name}: no valid ground truth after the crop and cap",
                          reason="no valid pixel")
    # Without a cap, the clamp keeps the estimate inside the image's own depth range.
    low = scoring.min_depth if scoring.min_depth is not None else float(truth[valid].min())
    high = scoring.max_depth if scoring.max_depth is not None else float(truth[valid].max())
    errors = protocol.score_depth(pred[None], truth[None], valid[None], np.float32([low]),
                                  np.float32([high]), align=options.align,
                                  prediction_kind=options.prediction_kind, space=options.space,
                                  fit=options.fit)
    # WHDR beside the depth errors: the ordinal score the training log reports.
    inverse = np.where(valid, 1.0 / np.where(valid, truth, 1.0), 0.0).astype(np.float32)
    whdr = _pair_whdr(pred, inverse, valid, index, options.prediction_kind)
    return {name: float(value[0]) for name, value in errors.items()} | {
        "whdr": whdr, "pixels": int(valid.sum())}


def _score_whdr(sample: Sample, pred: np.ndarray, options: Options, index: int) -> dict:
    mask = sample.mask
    if mask.sum() < 2:
        raise FormatError(f"{sample.name}: fewer than two valid pixels", reason="no valid pixel")
    return {"whdr": _pair_whdr(pred, sample.target, mask, index, options.prediction_kind),
            "pixels": int(mask.sum())}


def _score_ordinal(sample: Sample, pred: np.ndarray, options: Options, index: int) -> dict:
    correct = protocol.ordinal_correct(pred, sample.pair, options.prediction_kind)
    return {"whdr": 0.0 if correct else 1.0}


_SCORERS = {"depth": _score_depth, "whdr": _score_whdr, "ordinal": _score_ordinal}


def score_sample(sample: Sample, pred: np.ndarray, options: Options, index: int) -> dict:
    """One image's row (its metrics, and "pixels" scored): pred at the ground truth's size;
    index: the image's position in the dataset (it fixes its WHDR pairs). A FormatError
    when nothing can be scored."""
    return _SCORERS[options.scoring.metric](sample, pred, options, index)


def scorer(options: Options, log: Callable[[str], None]) -> Callable:
    """score(chunk, preds) -> evaluator.Scores: a row per image scored, and the chunk's
    unreadable or unscorable images skipped (each named in `log`)."""
    names = metric_names(options.scoring.metric)

    def score(chunk: Chunk, preds: list[np.ndarray]) -> evaluator.Scores:
        rows, row_names, skipped = [], [], list(chunk.skipped)
        for (index, sample, _), pred in zip(chunk.loaded, preds, strict=True):
            try:
                rows.append(score_sample(sample, pred, options, index))
                row_names.append(sample.name)
            except FormatError as err:
                skipped.append(_skipped(sample.name, err))
        for s in skipped:
            log(f"skipped {s.name}: {s.message}")
        keys = [*names, *(["pixels"] if rows and "pixels" in rows[0] else [])]
        values = {k: np.asarray([r[k] for r in rows]) for k in keys}
        weights = {k: np.ones(len(rows)) for k in names}
        return evaluator.Scores(values, weights, row_names, skipped)

    return score


def resolve_crop(spec: registry.DatasetSpec, crop: str | None) -> str | None:
    """--crop: the dataset's own (None), "none", or one the dataset allows."""
    if crop is None:
        return spec.scoring.crop
    if crop == "none":
        return None
    if crop not in spec.scoring.crops:
        raise ValueError(f"--crop {crop!r}: {spec.name} takes "
                         f"{list(spec.scoring.crops) or 'none'}")
    return crop


def run(dataset: str, data_dir: str | None, *, model: LoadedModel | None = None,
        predictions_dir: str | None = None, prediction_kind: str = "disparity",
        size: int | None = None, align: str = "disparity", space: str = "depth",
        crop: str | None = None, limit: int | None = None, split_file: str | None = None,
        batch_size: int = 4, progress: bool = True, fit: str = "lstsq",
        log: Callable[[str], None] = print) -> Report:
    """Score `model` (or the saved predictions in `predictions_dir`) on `dataset`.

    crop: the dataset's evaluation crop (default: its own; "none" for no crop). size: the
    short side the model sees (default: its training image_size, else its family's
    default). limit: the first N images only. See `protocol` for align, space,
    prediction_kind and fit ("lstsq", the default, or "robust").
    """
    if (model is None) == (predictions_dir is None):
        raise ValueError("give exactly one of a model (--workdir / --params) or --predictions")
    if model is not None:
        prediction_kind = "disparity"  # every model family predicts relative inverse depth
    protocol.check_alignment(align, prediction_kind, space, fit)
    spec, items = registry.benchmark(dataset, data_dir, split_file)
    options = Options(spec.scoring, resolve_crop(spec, crop), align, space, prediction_kind,
                      fit)
    items = items[:limit] if limit else items
    predictor = Predictor(model) if model is not None else None
    scoring = spec.scoring
    settings = {
        "dataset": spec.name, "data_dir": data_dir, "metric": scoring.metric,
        "crop": options.crop, "min_depth": scoring.min_depth, "max_depth": scoring.max_depth,
        "align": align, "fit": fit, "space": space, "prediction_kind": prediction_kind,
        "source": predictions_dir or "model",
        "size": size or (predictor.default_size if predictor else None),
        "version": __version__, "items": len(items),
    }
    from tqdm import tqdm

    bar = tqdm(total=len(items), unit="image", desc=spec.name, file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()))
    evaluation = evaluator.Evaluator(
        predict=(model_predictions(predictor, size, batch_size) if predictor is not None
                 else saved_predictions),
        score=scorer(options, lambda line: tqdm.write(line, file=sys.stderr)),
        dataset=lambda: chunks(items, predictions_dir),
        metric_names=metric_names(scoring.metric),
        on_batch=lambda chunk: bar.update(len(chunk.loaded) + len(chunk.skipped)))
    result = evaluation.run()
    bar.close()
    return Report(spec.name, scoring.metric, settings, result.means, result.rows,
                  [dataclasses.asdict(s) for s in result.skipped], result.seconds)


def format_table(report: Report) -> str:
    s = report.summary()
    st = report.settings
    lines = [f"{report.dataset}: {s['images']} images scored"
             + (f", {sum(s['skipped'].values())} skipped "
                f"({', '.join(f'{n} {r}' for r, n in s['skipped'].items())})"
                if s["skipped"] else "")
             + f"; {s['images_per_s']:.1f} images/s"]
    if report.metric == "depth":
        lines.append(f"protocol: align {st['align']} ({st.get('fit', 'lstsq')} fit), errors "
                     f"in {st['space']}, crop "
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

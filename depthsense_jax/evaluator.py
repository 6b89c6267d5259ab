"""The one evaluator interface (after big_vision's evaluators): built from a predict function,
a dataset and a scoring function; `run(variables)` returns the metrics.

Training's validation (`train.validation`), `depthsense validate` and the zero-shot benchmark
(`evaluation.zero_shot`) are each an `Evaluator`: they differ in their dataset (tf.data
batches of a split, or a benchmark's images read from their folder), their predict function
(a sharded jitted model, or photos resized for the model and back) and their scores, and
share this loop, its weighted means, and the metric code the scores call (`metrics`).

A scoring function returns `Scores` for the images of a batch: per image and per metric a
value and a weight (0 for a padded row or an image that cannot be measured), so that the
weighted sums over batches give exact means over the images that count.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


@dataclasses.dataclass
class Skipped:
    """An image that could not be scored: its name, a short reason, the message."""

    name: str
    reason: str
    message: str


@dataclasses.dataclass
class Scores:
    """Per-image results of one batch: values[name] and weights[name], (n,) each (values
    may hold more than the metrics, e.g. the pixels scored, which go into the rows only);
    names: the images' names when rows are to be kept (None: only the means); skipped: the
    batch's images that could not be read or scored."""

    values: dict[str, Any]
    weights: dict[str, Any]
    names: list[str] | None = None
    skipped: list[Skipped] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Result:
    """What `Evaluator.run` found: weighted means (NaN for a metric no image measured),
    per-image rows (where the scores named their images), skipped images, and the time."""

    means: dict[str, float]
    rows: list[dict] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


class Accumulator:
    """Weighted sums of per-image scores in float64, and the rows of named images."""

    def __init__(self, names: Iterable[str]):
        self.names = tuple(names)
        self.totals = dict.fromkeys(self.names, 0.0)
        self.weights = dict.fromkeys(self.names, 0.0)
        self.rows: list[dict] = []

    def add(self, scores: Scores) -> None:
        values = {k: np.asarray(v).reshape(-1) for k, v in scores.values.items()}
        weights = {k: np.asarray(scores.weights[k], np.float64).reshape(-1)
                   for k in self.names}
        for name in self.names:
            self.weights[name] += float(weights[name].sum())
            self.totals[name] += float((values[name].astype(np.float64) * weights[name]).sum())
        for i, image in enumerate(scores.names or []):
            # A row holds every value of its image (a metric only where it was measured).
            self.rows.append({"name": image, **{
                k: v[i].item() for k, v in values.items() if k not in weights
                or weights[k][i] > 0}})

    def means(self) -> dict[str, float]:
        return {name: self.totals[name] / self.weights[name] if self.weights[name] > 0
                else float("nan") for name in self.names}


@dataclasses.dataclass
class Evaluator:
    """predict(variables, batch) -> predictions; score(batch, predictions) -> Scores;
    dataset() -> an iterable of batches (a fresh pass each call); on_batch(batch): called
    after each (a progress bar)."""

    predict: Callable[[Any, Any], Any]
    score: Callable[[Any, Any], Scores]
    dataset: Callable[[], Iterable[Any]]
    metric_names: tuple[str, ...]
    on_batch: Callable[[Any], None] = lambda batch: None

    def run(self, variables: Any = None, max_batches: int | None = None) -> Result:
        """Score every batch of the dataset (or its first `max_batches`)."""
        start = time.perf_counter()
        total = Accumulator(self.metric_names)
        skipped: list[Skipped] = []
        for index, batch in enumerate(self.dataset()):
            if max_batches is not None and index >= max_batches:
                break
            scores = self.score(batch, self.predict(variables, batch))
            total.add(scores)
            skipped += scores.skipped
            self.on_batch(batch)
        return Result(total.means(), total.rows, skipped, time.perf_counter() - start)

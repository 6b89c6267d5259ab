"""`depthsense speed runtimes`: one trained model in every runtime the package runs it with on
this machine's CPU, in one run: JAX (jit), onnxruntime with our ONNX graph in float32, float16
and INT8, static and dynamic (`quantize`), LiteRT (the TFLite export) and PyTorch with the
same weights (the family's `torch_peer`). Images/s, and what each costs in accuracy against
the float32 JAX model, at the training size and at 384 px (or the sizes asked).

Per size S (square S x S inputs, rounded to the model's stride):
- speed: the median time of one batch of `batch` rendered validation scenes over `repeats`
  runs after `warmup`;
- against float32 (the JAX model's output) on `scenes` rendered validation scenes (the
  synthetic v2 validation split's stream): `quantize.agreement` (max and mean |diff| of
  the range, WHDR against its order);
- against the ground truth, as validation scores: WHDR on 3,000 random pairs per image and
  AbsRel, both after per-image scale-and-shift alignment (`metrics.whdr`,
  `metrics.aligned_errors`), on the same scenes, and on the Middlebury Aloe photo
  (`evaluation.real_photo`: dense WHDR, 50k pairs x 3 seeds, and aligned AbsRel against
  its disparity), the photo predicted with its short side at S as `predict` does.

A runtime that cannot run here (an extra or torch missing, a family without an ONNX writer
or a way to load our weights into its PyTorch peer) is a row saying why.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import sys
import tempfile
from collections.abc import Callable, Sequence

import cv2
import jax
import numpy as np

from depthsense_jax import export, inference, metrics, sampling
from depthsense_jax.params_io import LoadedModel
from depthsense_jax.speed import timing

VALIDATION_PAIRS = 3000  # random pairs per image for WHDR, as `depthsense validate`
REFERENCE = "JAX (jit), float32"


@dataclasses.dataclass
class RuntimeRow:
    """One runtime at one size: images/s, its distance from the float32 JAX output on the
    validation scenes (`quantize.Agreement` fields), and its scores against the ground
    truth (WHDR in [0, 1]; None where not measured). note: why it did not run."""

    size: tuple[int, int]
    runtime: str
    images_per_s: float | None = None
    max_diff: float | None = None
    mean_diff: float | None = None
    whdr_vs_fp32: float | None = None
    val_whdr: float | None = None
    val_abs_rel: float | None = None
    aloe_whdr: float | None = None
    aloe_abs_rel: float | None = None
    note: str = ""


Runner = Callable[[np.ndarray], np.ndarray]  # images (B, h, w, 3) -> (B, h, w) float32


def _torch_runner(model: LoadedModel) -> Runner:
    """The family's PyTorch peer with our weights, eval mode, no gradients, NCHW."""
    from depthsense_jax.speed import reference

    family = model.family
    if family.torch_peer is None:
        raise ValueError(f"the {family.name} model family has no PyTorch peer")
    torch = reference.require_torch()
    net = family.torch_peer(model.model_config)
    variables = jax.tree.map(np.array, model.variables)  # writable: torch takes them
    if hasattr(net, "load_variables"):
        net.load_variables(variables)
    else:
        from depthsense_jax.models import torch_depthnet

        if not isinstance(net, torch_depthnet.TorchDepthNet):
            raise ValueError(f"the {family.name} PyTorch peer cannot take our weights")
        torch_depthnet.load_flax_variables(net, variables)
    net.eval()

    def run(images):
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
            return net(x).numpy()

    return run


def _tflite_runner(model: LoadedModel) -> Runner:
    """LiteRT on the TFLite conversion of the model, converted once per input shape (a
    .tflite has one static shape)."""
    from depthsense_jax import export, tflite_export

    tflite_export.require_litert()
    fn = export.inference_fn(export.float32_config(model.model_config), model.variables)
    runners: dict[tuple[int, ...], tflite_export.TFLiteRunner] = {}

    def run(images):
        if images.shape not in runners:
            runners[images.shape] = tflite_export.TFLiteRunner(
                tflite_export.convert(fn, images.shape), threads=timing.cpu_count())
        return runners[images.shape](images)

    return run


def _onnx_runner(graph) -> Runner:
    from depthsense_jax import onnx_export

    session = onnx_export.load_onnx(graph)
    return lambda images: session.run(None, {"images": images})[0]


def runtimes(model: LoadedModel, log: Callable[[str], None]
             ) -> list[tuple[str, Callable[[int], Runner], bool]]:
    """(name, build, per_size) of every runtime, the float32 JAX reference first;
    build(side) returns the runner for side x side inputs or raises ValueError/ImportError
    when it cannot run here; per_size: the runner is built again for each side (static INT8
    calibrates its activation ranges at the size it is measured at: they change with the
    input size), else one runner serves every side."""
    from depthsense_jax import onnx_export, quantize

    graph: dict = {}

    def fp32():
        if "fp32" not in graph:
            graph["fp32"] = onnx_export.build_model(model.model_config, model.variables)
        return graph["fp32"]

    def int8(side: int):
        log(f"[speed] calibrating INT8 on {quantize.CALIBRATION_SCENES} rendered scenes at "
            f"{side}x{side}")
        return _onnx_runner(quantize.to_int8(fp32(), quantize.calibration_batches(
            (side, side))))

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "(not installed)"

    ort = f"onnxruntime {version('onnxruntime')}"
    return [
        (REFERENCE, lambda side: export.float32_predictor(model), False),
        (f"{ort}, float32", lambda side: _onnx_runner(fp32()), False),
        (f"{ort}, float16", lambda side: _onnx_runner(quantize.to_float16(fp32())), False),
        (f"{ort}, INT8 (QDQ, static)", int8, True),
        (f"{ort}, INT8 (dynamic)",
         lambda side: _onnx_runner(quantize.to_int8_dynamic(fp32())), False),
        (f"LiteRT {version('ai-edge-litert')}, float32", lambda side: _tflite_runner(model),
         False),
        (f"PyTorch {version('torch')} eager, float32", lambda side: _torch_runner(model),
         False),
    ]


def _batches(images: np.ndarray, batch: int, run: Runner) -> np.ndarray:
    """run over images in batches of exactly `batch` (the last padded): (N, h, w)."""
    out = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]),
                                                 np.float32)])
        out.append(np.asarray(run(padded), np.float32)[:len(chunk)])
    return np.concatenate(out)


def validation_scores(pred: np.ndarray, depth: np.ndarray, mask: np.ndarray) -> tuple[
        float | None, float | None]:
    """(WHDR, AbsRel) means over images, as validation scores them: WHDR on
    VALIDATION_PAIRS random pairs per image and AbsRel after per-image scale-and-shift
    alignment; images with nothing to measure weigh 0 (None when no image can be)."""
    pairs = sampling.per_image_pairs(jax.random.PRNGKey(0), mask, VALIDATION_PAIRS)
    whdr = np.asarray(metrics.whdr(pred, depth, pairs, mask=mask))
    counted = np.asarray(metrics.counted_pairs(pairs, mask)) > 0
    abs_rel = np.asarray(metrics.aligned_errors(pred, depth, mask)["abs_rel"])
    measurable = (mask & (depth > 0)).sum(axis=(1, 2)) >= 2
    return (float(whdr[counted].mean()) if counted.any() else None,
            float(abs_rel[measurable].mean()) if measurable.any() else None)


def _aloe() -> tuple[np.ndarray, np.ndarray] | None:
    """(photo (H, W, 3) float32, disparity (H, W) float32, 0 = unknown) of the Middlebury
    Aloe pair, or None without Debian's opencv-doc."""
    from depthsense_jax.evaluation import real_photo

    with tempfile.TemporaryDirectory() as folder:
        try:
            scene = real_photo.aloe_scene(folder)
        except FileNotFoundError:
            return None
        photo = inference.read_photo(os.path.join(scene, "view1.png"))
        disparity = cv2.imread(os.path.join(scene, "disp1.png"), cv2.IMREAD_UNCHANGED)
    return photo, disparity.astype(np.float32)


def aloe_scores(pred: np.ndarray, disparity: np.ndarray) -> tuple[float, float]:
    """(dense WHDR in [0, 1], aligned AbsRel) of a prediction at the Aloe photo's size."""
    from depthsense_jax.evaluation import real_photo

    whdr = float(np.mean(real_photo.dense_whdr(pred, disparity))) / 100
    valid = (disparity > 0)[None]
    abs_rel = float(metrics.aligned_errors(pred[None], disparity[None], valid)["abs_rel"][0])
    return whdr, abs_rel


def bench_runtimes(model: LoadedModel, sizes: Sequence[int], batch: int = 1,
                   repeats: int = 10, warmup: int = 2, scenes: int = 32,
                   log: Callable[[str], None] = lambda s: print(s, file=sys.stderr,
                                                                 flush=True),
                   only: Sequence[str] | None = None) -> list[RuntimeRow]:
    """Every runtime (`runtimes`) at each size in `sizes` (square sides, rounded to the
    stride): RuntimeRows, the float32 JAX reference first at each size. only: runtime names
    starting with one of these (the reference always runs)."""
    from depthsense_jax import quantize

    family = model.family
    sides = list(dict.fromkeys(family.round_size(s) for s in sizes))
    aloe = _aloe()
    if aloe is None:
        log("[speed] no Aloe photo (apt-get install opencv-doc): its columns stay empty")
    chosen = [(name, build, per_size) for name, build, per_size in runtimes(model, log)
              if not only or name == REFERENCE or any(name.startswith(o) for o in only)]
    built: dict[tuple[str, int | None], Runner | str] = {}
    rows = []
    for side in sides:
        size = (side, side)
        data = quantize.rendered(quantize.VALIDATION_SEED, max(scenes, batch), size)
        timed = data["image"][:batch]
        reference = None
        for name, build, per_size in chosen:
            key = (name, side if per_size else None)
            if key not in built:
                try:
                    built[key] = build(side)
                except (ImportError, ValueError) as err:
                    built[key] = f"not run: {err}"
            run = built[key]
            row = RuntimeRow(size=size, runtime=name)
            rows.append(row)
            if isinstance(run, str):
                row.note = run
                log(f"[speed] {name}: {run}")
                continue
            log(f"[speed] {name} at {side}x{side}, batch {batch}")
            ms = timing.median_ms(lambda run=run, timed=timed: run(timed), repeats, warmup)
            row.images_per_s = 1e3 * batch / ms
            pred = _batches(data["image"], batch, run)
            if reference is None:
                reference = pred
            gap = quantize.agreement(pred, reference)
            row.max_diff, row.mean_diff, row.whdr_vs_fp32 = (gap.max_diff, gap.mean_diff,
                                                             gap.whdr)
            row.val_whdr, row.val_abs_rel = validation_scores(pred, data["depth"],
                                                              data["mask"])
            if aloe is not None:
                photo, disparity = aloe
                depth = inference.Predictor(model, runtime=run).predict(
                    [photo], size=side, batch_size=batch)[0]
                row.aloe_whdr, row.aloe_abs_rel = aloe_scores(depth, disparity)
    return rows


def _pct(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def format_table(rows: list[RuntimeRow], model: LoadedModel, batch: int, scenes: int) -> str:
    """A Markdown table of `rows`, with what was measured above it."""
    machine = timing.machine_info()
    lines = [f"{model.family.describe(model.model_config)}: batch {batch}, {scenes} rendered "
             f"validation scenes per size, on {machine['cpu']} ({machine['cpu_count']} "
             f"cores), JAX {machine['jax']} ({machine['backend']})", "",
             "| size | runtime | images/s | max / mean \\|diff\\| vs fp32 | WHDR vs fp32 | "
             "val WHDR | val AbsRel | Aloe WHDR | Aloe AbsRel |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        size = f"{row.size[0]}x{row.size[1]}"
        if row.note:
            lines.append(f"| {size} | {row.runtime} | {row.note} | | | | | | |")
            continue
        vs = ("reference" if row.runtime == REFERENCE else
              f"{_pct(row.max_diff, 3)} / {_pct(row.mean_diff, 3)}")
        lines.append(
            f"| {size} | {row.runtime} | {row.images_per_s:.1f} | {vs} | "
            f"{'' if row.runtime == REFERENCE else _pct(row.whdr_vs_fp32)} | "
            f"{_pct(row.val_whdr)} | {_num(row.val_abs_rel)} | {_pct(row.aloe_whdr)} | "
            f"{_num(row.aloe_abs_rel)} |")
    lines.append("")
    lines.append("Differences from fp32 are relative to the float32 output's range per image; "
                 "WHDR and AbsRel are after per-image scale-and-shift alignment (val: against "
                 "the rendered scenes' depth; Aloe: against its disparity, dense WHDR over "
                 "50k pairs x 3 seeds).")
    return "\n".join(lines)

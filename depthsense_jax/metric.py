"""Metric depth from known points: a photo's relative prediction turned into metres by a
robust scale and shift fitted in inverse depth at the pixels whose depth is known.

Known depths (`load_known`) come from one of:
  a CSV file with the header `image,x,y,depth_m`: image = the photo's file name or its path
  relative to the inputs (any trailing part of its path that names it alone); x, y: pixel
  coordinates in the photo's own resolution as a viewer shows it (EXIF rotation applied),
  pixel centres at integers (x = 0 is the first column's centre; anything within the
  photo's pixels, -0.5 to W - 0.5, is read bilinearly); depth_m: metres, > 0.
  a folder of sparse depth maps at the photos' size, matched to the photos by stem (the
  longest trailing part of the photo's path without its extension: FOLDER/sub/a.png for
  photos/sub/a.jpg, else FOLDER/a.png): 16-bit PNG in millimetres or .npy in metres;
  0 (or, in .npy, not finite) = unknown.

The fit (`fit_known`): a relative prediction p is affine in inverse depth, so 1 / depth =
s p + t at the known pixels, fitted by `losses.scale_shift.robust_fit_scale_shift` (least
squares reweighted by Cauchy weights: a few wrong points barely move it). Fewer than two
distinct depths, or a fitted s <= 0, is a ValueError naming the photo.

Metric depth (`to_metric`): 1 / (s p + t) metres where that is below the cap max_depth
(default `MAX_DEPTH_FACTOR` x the photo's farthest known depth); 0 = unknown where the fitted
inverse depth is <= 1 / max_depth (<= 0: beyond infinity, e.g. sky; or past the cap).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import cv2
import jax.numpy as jnp
import numpy as np

from depthsense_jax import metrics, storage
from depthsense_jax.losses.scale_shift import fit_scale_shift, robust_fit_scale_shift

CSV_COLUMNS = ("image", "x", "y", "depth_m")
SPARSE_SUFFIXES = (".png", ".npy")
MAX_DEPTH_FACTOR = 10.0  # default cap: this many times the farthest known depth
FITS = ("robust", "lstsq")
PNG_MAX_MM = 65535  # a 16-bit PNG holds up to 65.535 m; farther pixels are written as 0


@dataclasses.dataclass(frozen=True)
class KnownPoints:
    """Known depths of one photo: x, y (N,) float64 pixel coordinates (pixel centres at
    integers), depth (N,) float64 metres > 0; origin: where they came from (for messages);
    size: (H, W) of the sparse map they came from (None for a CSV)."""

    x: np.ndarray
    y: np.ndarray
    depth: np.ndarray
    origin: str
    size: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class MetricFit:
    """1 / depth_m = scale * pred + shift, fitted at `points` known pixels; abs_rel, rmse
    (metres) and delta1 of the fitted depth there (capped at max_depth, metres)."""

    scale: float
    shift: float
    points: int
    max_depth: float
    abs_rel: float
    rmse: float
    delta1: float
    fit: str = "robust"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return (f"{self.points} known point(s), 1/depth = {self.scale:.6g} * pred + "
                f"{self.shift:.6g} ({self.fit}); at the known points AbsRel "
                f"{self.abs_rel:.4f}, RMSE {self.rmse:.4g} m")


# Reading known depths ----------------------------------------------------------------------


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{where}: {what} must be finite, got {text!r}")
    return value


def read_known_csv(path: str) -> dict[str, KnownPoints]:
    """The CSV `path` (header image,x,y,depth_m; other columns are ignored) -> its points
    grouped by the `image` column ('/'-separated, without "./"). A malformed file is a
    ValueError naming the line."""
    text = storage.read_text(path).lstrip("\ufeff")  # a spreadsheet's byte-order mark
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in fields]
    if missing:
        raise ValueError(f"{path}: a known-depth CSV needs the header {','.join(CSV_COLUMNS)} "
                         f"(missing {', '.join(missing)}; found {','.join(fields) or 'nothing'})")
    reader.fieldnames = fields
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if None in row or any(row[c] is None for c in CSV_COLUMNS):
            raise ValueError(f"{where}: expected the {len(fields)} columns of the header")
        image = "/".join(_parts(row["image"].strip(), False))  # "./a.jpg" is "a.jpg"
        if not image:
            raise ValueError(f"{where}: the image column is empty")
        x = _number(row["x"].strip(), "x", where)
        y = _number(row["y"].strip(), "y", where)
        depth = _number(row["depth_m"].strip(), "depth_m", where)
        if depth <= 0:
            raise ValueError(f"{where}: depth_m must be > 0 metres, got {depth}")
        rows[image].append((x, y, depth))
    if not rows:
        raise ValueError(f"{path}: no known depths (only a header)")
    return {image: KnownPoints(*np.asarray(values, np.float64).T, origin=path)
            for image, values in rows.items()}


def read_sparse_map(path: str) -> np.ndarray:
    """A sparse depth map -> (H, W) float64 metres, 0 = unknown: a 16-bit PNG in
    millimetres, or a .npy of floats in metres (not finite = unknown). ValueError naming the
    file for anything else."""
    data = storage.read_bytes(path)
    if path.lower().endswith(".npy"):
        try:
            depth = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ValueError(f"{path}: not a readable .npy file ({err})") from None
        if depth.ndim == 3 and depth.shape[2] == 1:
            depth = depth[..., 0]
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
            raise ValueError(f"{path}: a sparse depth map must be (H, W) numbers in metres, "
                             f"got shape {depth.shape} of {depth.dtype}")
        depth = np.asarray(depth, np.float64)
        depth = np.where(np.isfinite(depth), depth, 0.0)
        if (depth < 0).any():
            raise ValueError(f"{path}: negative depths ({int((depth < 0).sum())} pixels); "
                             "metres > 0, or 0 for unknown")
        return depth
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"{path}: a sparse depth PNG must be 16-bit greyscale in millimetres, "
                         f"got {image.dtype} with shape {image.shape}")
    return image.astype(np.float64) / 1000.0


def sparse_points(depth: np.ndarray, origin: str) -> KnownPoints:
    """The known pixels (depth > 0) of an (H, W) metres map."""
    ys, xs = np.nonzero(depth > 0)
    return KnownPoints(xs.astype(np.float64), ys.astype(np.float64),
                       depth[ys, xs].astype(np.float64), origin, tuple(depth.shape))


def _parts(path: str, strip_suffix: bool) -> tuple[str, ...]:
    """A path's components ('/' or '\\'); the last without its extension if asked."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if strip_suffix and parts:
        parts[-1] = os.path.splitext(parts[-1])[0]
    return tuple(parts)


def match_names(keys: Sequence[str], photos: Sequence[str], strip_suffix: bool,
                origin: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Match names (CSV `image` values, sparse maps' relative paths) to photo paths: a key
    matches a photo when it is a trailing part of the photo's path (without extensions
    when strip_suffix); a photo takes its longest matching key. Returns (photo -> key,
    photo -> error for a key that names several photos, keys that name none)."""
    by_name: dict[str, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
    for photo in photos:
        parts = _parts(photo, strip_suffix)
        if parts:
            by_name[parts[-1]].append((photo, parts))
    candidates: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    by_parts = {}
    for key in keys:
        kp = _parts(key, strip_suffix)
        if not kp:
            continue
        by_parts[kp] = key
        for photo, pp in by_name.get(kp[-1], ()):
            if len(kp) <= len(pp) and pp[len(pp) - len(kp):] == kp:
                candidates[photo].append(kp)
    chosen = {photo: by_parts[max(kps, key=len)] for photo, kps in candidates.items()}
    users: dict[str, list[str]] = defaultdict(list)
    for photo, key in chosen.items():
        users[key].append(photo)
    errors = {}
    for key, named in users.items():
        if len(named) > 1:
            for photo in named:
                errors[photo] = (f"{origin}: {key!r} names {len(named)} photos "
                                 f"({', '.join(sorted(named)[:3])}"
                                 f"{', ...' if len(named) > 3 else ''}): name each by its "
                                 "path relative to the inputs")
                del chosen[photo]
    return chosen, errors, [k for k in keys if k not in users]


def _normalize(path: str) -> str:
    return storage.normalize(path) if storage.is_url(path) else os.path.normpath(path)


@dataclasses.dataclass(frozen=True)
class KnownDepths:
    """The known depths of a run's photos (`load_known`): `for_photo(path)`. Read-only, so
    writer threads share it."""

    source: str  # the CSV or folder
    points: Mapping[str, KnownPoints | str]  # photo -> its points, or its sparse map's path
    errors: Mapping[str, str]  # photo -> why it has none (a name that is ambiguous)

    def for_photo(self, photo: str) -> KnownPoints:
        """The known points of the photo at `photo` (its input path); ValueError naming it
        when it has none."""
        key = _normalize(photo)
        if key in self.errors:
            raise ValueError(f"{photo}: {self.errors[key]}")
        found = self.points.get(key)
        if found is None:
            raise ValueError(f"{photo}: no known depths for it in {self.source} (a CSV row "
                             "naming it, or a sparse map of its stem)")
        if isinstance(found, str):
            return sparse_points(read_sparse_map(found), found)
        return found


def _sparse_index(folder: str) -> dict[str, str]:
    """Relative path without extension -> sparse map file, for the folder's PNG/.npy files."""
    index: dict[str, str] = {}
    for path in storage.walk_files(folder):
        if not path.lower().endswith(SPARSE_SUFFIXES):
            continue
        key = "/".join(_parts(storage.relpath(path, folder), True))
        if key in index:
            raise ValueError(f"{folder}: two sparse depth maps for {key!r}: {index[key]} and "
                             f"{path} (keep one)")
        index[key] = path
    if not index:
        raise ValueError(f"{folder}: no sparse depth maps (16-bit .png in millimetres or .npy "
                         "in metres)")
    return index


def load_known(path: str, photos: Sequence[str],
               log: Callable[[str], None] = print) -> KnownDepths:
    """The known depths in `path` (a CSV file or a folder of sparse maps; module docstring)
    matched to `photos` (input paths). Names that match no photo, and photos without known
    depths (which will fail alone), are logged."""
    photos = [_normalize(p) for p in photos]
    if storage.isdir(path):
        index = _sparse_index(path)
        chosen, errors, unused = match_names(list(index), photos, True, path)
        points: dict[str, KnownPoints | str] = {p: index[k] for p, k in chosen.items()}
        what = "sparse map(s)"
    elif storage.isfile(path):
        table = read_known_csv(path)
        chosen, errors, unused = match_names(list(table), photos, False, path)
        points = {p: table[k] for p, k in chosen.items()}
        what = "CSV image name(s)"
    else:
        raise ValueError(f"--metric-from {path!r}: no such file or folder (a CSV "
                         f"{','.join(CSV_COLUMNS)}, or a folder of sparse depth maps)")
    log(f"known depths from {path}: for {len(points)} of {len(photos)} photo(s)")
    if unused:
        log(f"warning: {len(unused)} {what} in {path} name no input photo: "
            f"{', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''}")
    lacking = [p for p in photos if p not in points]
    if lacking:
        log(f"warning: {len(lacking)} photo(s) have no known depths and will fail: "
            f"{', '.join(lacking[:5])}{', ...' if len(lacking) > 5 else ''}")
    return KnownDepths(path, points, errors)


# The fit -----------------------------------------------------------------------------------


def sample(pred: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """pred (H, W) read bilinearly at pixel coordinates x, y (N,) (pixel centres at
    integers; clamped to the outermost centres) -> (N,) float64."""
    h, w = pred.shape
    x = np.clip(np.asarray(x, np.float64), 0, w - 1)
    y = np.clip(np.asarray(y, np.float64), 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(int), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    p = np.asarray(pred, np.float64)
    top = p[y0, x0] * (1 - fx) + p[y0, x1] * fx
    bottom = p[y1, x0] * (1 - fx) + p[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _padded(values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((1, 1, size), np.float32)
    out[0, 0, :values.size] = values
    return out


def fit_known(pred: np.ndarray, points: KnownPoints, name: str,
              max_depth: float | None = None, fit: str = "robust") -> MetricFit:
    """The scale and shift with 1 / depth = s pred + t at the known points (module
    docstring) for the photo `name`: pred (H, W) relative inverse depth at the photo's
    size. fit: "robust" (the default) or "lstsq". ValueError naming the photo when the
    points cannot give a metric depth."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    h, w = pred.shape
    if points.size is not None and points.size != (h, w):
        raise ValueError(f"{name}: its sparse depth map {points.origin} is "
                         f"{points.size[1]}x{points.size[0]}, the photo {w}x{h}")
    outside = ((points.x < -0.5) | (points.x > w - 0.5) | (points.y < -0.5)
               | (points.y > h - 0.5))
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"{name}: {int(outside.sum())} known point(s) in {points.origin} lie "
                         f"outside its {w}x{h} pixels (x in 0..{w - 1}, y in 0..{h - 1}), "
                         f"e.g. x={points.x[i]:g}, y={points.y[i]:g}")
    distinct = np.unique(points.depth).size
    if distinct < 2:
        raise ValueError(f"{name}: {points.depth.size} known point(s) with {distinct} distinct "
                         f"depth(s) in {points.origin}: a scale and a shift need at least two "
                         "distinct depths")
    at = sample(pred, points.x, points.y)
    count = at.size
    # Padded to a power of two (weight 0 beyond the points): one compiled fit per bucket.
    size = max(16, 1 << (count - 1).bit_length())
    p, inverse = _padded(at, size), _padded(1.0 / points.depth, size)
    mask = _padded(np.ones(count), size) > 0
    fitter = robust_fit_scale_shift if fit == "robust" else fit_scale_shift
    scale, shift = (float(v[0]) for v in fitter(p, inverse, mask))
    if not (np.isfinite(scale) and np.isfinite(shift)) or scale <= 0:
        why = ("the prediction is the same at every known point" if scale == 0 else
               "the prediction gets nearer where the known depths get farther: points on "
               "another photo, on sky or glass, or in the wrong units?")
        raise ValueError(f"{name}: the metric fit at its {count} known point(s) in "
                         f"{points.origin} gave the scale {scale:.4g} (needs > 0): {why}")
    cap = float(max_depth) if max_depth else MAX_DEPTH_FACTOR * float(points.depth.max())
    fitted = 1.0 / np.maximum(scale * p + shift, 1.0 / cap)
    errors = metrics.depth_errors(jnp.asarray(fitted, jnp.float32),
                                  _padded(points.depth, size), mask)
    return MetricFit(scale, shift, count, cap, float(errors["abs_rel"][0]),
                     float(errors["rmse"][0]), float(errors["delta1"][0]), fit)


def to_metric(pred: np.ndarray, fit: MetricFit) -> np.ndarray:
    """(H, W) relative prediction -> (H, W) float32 metres, 1 / (s pred + t); 0 = unknown
    where the fitted inverse depth is <= 1 / max_depth (<= 0, or past the cap)."""
    inverse = fit.scale * np.asarray(pred, np.float64) + fit.shift
    known = inverse > 1.0 / fit.max_depth
    return np.where(known, 1.0 / np.where(known, inverse, 1.0), 0.0).astype(np.float32)


def to_png_mm(depth: np.ndarray) -> np.ndarray:
    """(H, W) metres (0 = unknown) -> uint16 millimetres; 0 where unknown or beyond the
    16-bit range (65.535 m); a known depth under 0.5 mm is written as 1 mm, not 0."""
    mm = np.round(np.asarray(depth, np.float64) * 1000.0)
    known = (depth > 0) & (mm <= PNG_MAX_MM)
    return np.where(known, np.maximum(mm, 1), 0).astype(np.uint16)

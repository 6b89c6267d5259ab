"""Point clouds from a depth map: pinhole back-projection, and PLY / .npz files.

Camera frame: OpenCV's (x right, y down, z forward, along the optical axis); a pixel (u, v)
(column, row; pixel centres at integers) with depth z (the distance along z, as depth maps
hold) goes to ((u - cx) z / fx, (v - cy) z / fy, z). Pixels with depth 0 (unknown) are
dropped.

Intrinsics (`Camera.for_photo`), in pixels of the photo's own resolution: `--intrinsics
fx,fy,cx,cy`, else `--fov DEG` (horizontal field of view: fx = fy = (W / 2) / tan(fov / 2),
the principal point at the centre ((W - 1) / 2, (H - 1) / 2)), else the photo's EXIF
FocalLengthIn35mmFilm f35 (fx = fy = f35 x long side / 36 mm: a 35 mm frame is 36 mm
wide), else `DEFAULT_FOV` degrees.

Depth: metres when it is metric (`metric.to_metric`), else the relative prediction turned
into a depth by `relative_depth`: the prediction normalised to n in [0, 1] over the image
(1 = nearest), depth = 1 / (n + RELATIVE_SHIFT), between 1 / (1 + RELATIVE_SHIFT) and
1 / RELATIVE_SHIFT: a shape with the right order of near and far, not metres. Each file
says which in its header (PLY comments; the npz's `depth_kind` and `note`).
"""

from __future__ import annotations

import dataclasses
import io
import math
import threading
from collections.abc import Sequence

import numpy as np

from depthsense_jax import errors, storage, viz

DEFAULT_FOV = 60.0  # degrees, horizontal: when neither the options nor EXIF say
RELATIVE_SHIFT = 0.1  # relative depth = 1 / (n + RELATIVE_SHIFT), n in [0, 1]
FILM_35MM_WIDTH = 36.0  # mm: the long side of a 35 mm frame, which f35 is relative to
_EXIF_IFD, _FOCAL_35MM = 0x8769, 0xA405  # the Exif sub-IFD and FocalLengthIn35mmFilm


def _require(module: str, what: str):
    return errors.require_extra(module, what, "pointcloud", "plyfile, pillow")


def require_extras(ply: bool, exif: bool) -> None:
    """Fail early (a ValueError naming the extra) when --format ply's plyfile, or PIL for
    EXIF focal lengths, is missing."""
    if ply:
        _require("plyfile", "--format ply")
    if exif:
        _require("PIL.Image", "the focal length from EXIF (no --fov/--intrinsics)")


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels of the photo's resolution; source: where they came from
    (said in the files and the log)."""

    fx: float
    fy: float
    cx: float
    cy: float
    source: str

    def as_array(self) -> np.ndarray:
        """(4,) float64 [fx, fy, cx, cy]."""
        return np.asarray([self.fx, self.fy, self.cx, self.cy], np.float64)

    def describe(self) -> str:
        return (f"fx={self.fx:.6g} fy={self.fy:.6g} cx={self.cx:.6g} cy={self.cy:.6g} "
                f"({self.source})")


def from_fov(fov: float, height: int, width: int, source: str | None = None) -> Intrinsics:
    """Intrinsics of a (height, width) photo with a horizontal field of view `fov` degrees,
    square pixels and the principal point at the centre."""
    if not 0 < fov < 180:
        raise ValueError(f"--fov must be a horizontal field of view in (0, 180) degrees, "
                         f"got {fov}")
    f = (width / 2.0) / math.tan(math.radians(fov) / 2.0)
    return Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0,
                      source or f"horizontal field of view {fov:g} degrees")


def parse_intrinsics(text: str) -> tuple[float, float, float, float]:
    """"fx,fy,cx,cy" (pixels, fx and fy > 0) -> the four floats; ValueError otherwise."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values) or min(values[:2]) <= 0:
        raise ValueError(f"--intrinsics {text!r}: expected fx,fy,cx,cy in pixels of the "
                         "photo's resolution (four numbers, fx and fy > 0)")
    return values


def exif_focal_35mm(data: bytes) -> float | None:
    """FocalLengthIn35mmFilm (mm) from an image file's EXIF, or None when it has none (or
    is no format PIL reads)."""
    image_module = _require("PIL.Image", "the focal length from EXIF (no --fov/--intrinsics)")
    try:
        with image_module.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            value = exif.get_ifd(_EXIF_IFD).get(_FOCAL_35MM, exif.get(_FOCAL_35MM))
    except (OSError, ValueError, SyntaxError):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


@dataclasses.dataclass(frozen=True)
class Camera:
    """How each photo's intrinsics are found (module docstring): `intrinsics` (fx, fy, cx,
    cy) or `fov` (degrees) for every photo, else its EXIF, else DEFAULT_FOV."""

    fov: float | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    # The photos that fell back to DEFAULT_FOV (the first is logged), shared by threads.
    _defaulted: list = dataclasses.field(default_factory=list, init=False, compare=False,
                                         repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, init=False,
                                              compare=False, repr=False)

    def __post_init__(self):
        if self.fov is not None and self.intrinsics is not None:
            raise ValueError("give --fov or --intrinsics, not both")
        if self.fov is not None:
            from_fov(self.fov, 1, 1)  # a bad --fov fails before anything is predicted
        if self.intrinsics is not None and (len(self.intrinsics) != 4
                                            or min(self.intrinsics[:2]) <= 0):
            raise ValueError(f"--intrinsics must be fx,fy,cx,cy with fx, fy > 0, got "
                             f"{self.intrinsics}")

    @property
    def needs_exif(self) -> bool:
        return self.fov is None and self.intrinsics is None

    def for_photo(self, source: str | None, height: int, width: int,
                  log=print) -> Intrinsics:
        """The intrinsics of the (height, width) photo read from `source` (its file, for
        EXIF). Logs the first photo that falls back to DEFAULT_FOV."""
        if self.intrinsics is not None:
            return Intrinsics(*map(float, self.intrinsics), source="--intrinsics")
        if self.fov is not None:
            return from_fov(self.fov, height, width, f"--fov {self.fov:g}")
        f35 = exif_focal_35mm(storage.read_bytes(source)) if source else None
        if f35 is not None:
            f = f35 * max(height, width) / FILM_35MM_WIDTH
            return Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0,
                              f"EXIF FocalLengthIn35mmFilm {f35:g} mm")
        with self._lock:
            first = not self._defaulted
            self._defaulted.append(source)
        if first:
            log(f"{source}: no --fov, --intrinsics or EXIF focal length: point clouds use a "
                f"horizontal field of view of {DEFAULT_FOV:g} degrees (the default) for it "
                "and any other such photo")
        return from_fov(DEFAULT_FOV, height, width,
                        f"default horizontal field of view {DEFAULT_FOV:g} degrees")


def relative_depth(pred: np.ndarray) -> np.ndarray:
    """(H, W) relative inverse depth -> (H, W) float32 relative depth 1 / (n + RELATIVE_SHIFT),
    n the prediction normalised to [0, 1] over the image (a constant map gives n = 0)."""
    pred = np.asarray(pred, np.float64)
    lo, hi = float(pred.min()), float(pred.max())
    n = (pred - lo) / (hi - lo) if hi > lo else np.zeros_like(pred)
    return (1.0 / (n + RELATIVE_SHIFT)).astype(np.float32)


RELATIVE_NOTE = (f"relative depth, not metres: 1 / (n + {RELATIVE_SHIFT:g}), n = the "
                 "prediction normalised to [0, 1] over the image (1 = nearest)")


def back_project(depth: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) depth (0 = unknown) -> (xyz (N, 3) float32 in the camera frame, in depth's
    unit; index (N,) int64 of the pixels kept, row-major: depth.ravel()[index] = z)."""
    depth = np.asarray(depth, np.float32)
    keep = np.isfinite(depth) & (depth > 0)
    rows, cols = np.nonzero(keep)
    z = depth[rows, cols].astype(np.float64)
    x = (cols - intrinsics.cx) / intrinsics.fx * z
    y = (rows - intrinsics.cy) / intrinsics.fy * z
    xyz = np.stack([x, y, z], axis=1).astype(np.float32)
    return xyz, rows.astype(np.int64) * depth.shape[1] + cols


def point_cloud(photo: np.ndarray, depth: np.ndarray,
                intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """photo (H, W, 3) float [0, 1] or uint8, depth (H, W) -> (xyz (N, 3) float32, rgb
    (N, 3) uint8) of the pixels with a known depth."""
    if photo.shape[:2] != depth.shape:
        raise ValueError(f"photo {photo.shape[:2]} and depth {depth.shape} differ in size")
    xyz, index = back_project(depth, intrinsics)
    colours = photo if photo.dtype == np.uint8 else viz.to_uint8(photo)
    return xyz, colours.reshape(-1, 3)[index]


def _ascii(text: str) -> str:
    return " ".join(text.encode("ascii", "backslashreplace").decode("ascii").split())


def ply_bytes(xyz: np.ndarray, rgb: np.ndarray, comments: Sequence[str] = ()) -> bytes:
    """A binary little-endian PLY of vertices x, y, z (float32) and red, green, blue
    (uchar), with `comments` in its header."""
    # plyfile: small, pure Python, writes numpy structured arrays straight to binary PLY (and
    # reads any PLY back); trimesh or open3d would pull in a mesh or 3-D toolkit for this.
    plyfile = _require("plyfile", "--format ply")
    vertices = np.empty(len(xyz), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                   ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, name in enumerate("xyz"):
        vertices[name] = xyz[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        vertices[name] = rgb[:, i]
    data = plyfile.PlyData([plyfile.PlyElement.describe(vertices, "vertex")], text=False,
                           byte_order="<", comments=[_ascii(c) for c in comments])
    buffer = io.BytesIO()
    data.write(buffer)
    return buffer.getvalue()


def npz_bytes(xyz: np.ndarray, rgb: np.ndarray, intrinsics: Intrinsics, size: tuple[int, int],
              depth_kind: str, note: str, **extra: np.ndarray | float) -> bytes:
    """An .npz with xyz (N, 3) float32, rgb (N, 3) uint8, intrinsics (4,) float64 [fx, fy,
    cx, cy] (pixels), image_size (2,) [H, W], depth_kind ("metric" or "relative"), note and
    intrinsics_source (str), and `extra` arrays. Loads without pickle."""
    buffer = io.BytesIO()
    np.savez(buffer, xyz=np.asarray(xyz, np.float32), rgb=np.asarray(rgb, np.uint8),
             intrinsics=intrinsics.as_array(), image_size=np.asarray(size, np.int64),
             depth_kind=np.asarray(depth_kind), note=np.asarray(note),
             intrinsics_source=np.asarray(intrinsics.source),
             **{k: np.asarray(v) for k, v in extra.items()})
    return buffer.getvalue()

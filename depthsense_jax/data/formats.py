"""File formats of depth datasets and of other tools' predictions, read into NumPy.

Every reader raises `FormatError` (a ValueError) naming the file and what it expected, so a
benchmark can skip and count a broken file instead of stopping. A path may be a local file or
a URL (gs://...): files are read whole through `storage` and decoded from memory.
"""

from __future__ import annotations

import io
import os
import struct

import cv2
import numpy as np

from depthsense_jax import storage

DPT_TAG = 202021.25  # Sintel's .dpt magic number (a float32 at the start of the file)


class FormatError(ValueError):
    """A file that does not hold what its format promises. `reason`: a short tag under which
    a benchmark counts the files it skipped ("missing", "unreadable", ...)."""

    def __init__(self, message: str, reason: str = "unreadable"):
        super().__init__(message)
        self.reason = reason


def _no_such_file(path: str) -> FormatError:
    """The error "PATH: no such file" (for a URL whose bucket is missing, storage's message
    saying so)."""
    message = str(storage.missing(path, "file")) if storage.is_url(path) else \
        f"{path}: no such file"
    return FormatError(message, reason="missing file")


def _read_bytes(path: str) -> bytes:
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        raise _no_such_file(path) from None
    except OSError as err:
        raise FormatError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not data:
        raise FormatError(f"{path}: empty file")
    return data


def read_rgb(path: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB: greyscale repeated, alpha dropped, 16 bits
    reduced to 8."""
    data = np.frombuffer(_read_bytes(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise FormatError(f"{path}: not a readable image")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise FormatError(f"{path}: expected an 8- or 16-bit image, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def read_png_gray(path: str) -> np.ndarray:
    """A single-channel 8- or 16-bit PNG as stored: (H, W) uint8 or uint16."""
    data = np.frombuffer(_read_bytes(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FormatError(f"{path}: not a readable PNG")
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise FormatError(f"{path}: expected a single-channel 8- or 16-bit PNG, got "
                          f"{image.dtype} of shape {image.shape}")
    return image


def read_pfm(path: str) -> np.ndarray:
    """A greyscale Portable Float Map ("Pf") as (H, W) float32, top row first.

    PFM stores rows bottom to top; a negative scale in the header means little-endian.
    Colour PFMs ("PF") are refused: depth and disparity are single-channel.
    """
    data = _read_bytes(path)
    tokens, position = [], 0
    while len(tokens) < 4 and position < min(len(data), 256):
        while position < len(data) and data[position:position + 1].isspace():
            position += 1
        start = position
        while position < len(data) and not data[position:position + 1].isspace():
            position += 1
        tokens.append(data[start:position])
    if len(tokens) < 4 or tokens[0] not in (b"Pf", b"PF"):
        raise FormatError(f"{path}: not a PFM file (no 'Pf' header)")
    if tokens[0] == b"PF":
        raise FormatError(f"{path}: a colour PFM; expected a single-channel 'Pf' map")
    try:
        width, height, scale = int(tokens[1]), int(tokens[2]), float(tokens[3])
    except ValueError:
        raise FormatError(f"{path}: malformed PFM header {data[:40]!r}") from None
    raster = data[position + 1:]  # one whitespace character ends the header
    if len(raster) < 4 * width * height:
        raise FormatError(f"{path}: PFM of {width}x{height} needs {4 * width * height} bytes, "
                          f"has {len(raster)}")
    dtype = "<f4" if scale < 0 else ">f4"
    image = np.frombuffer(raster[: 4 * width * height], dtype).reshape(height, width)
    return np.ascontiguousarray(image[::-1], dtype=np.float32)


def read_dpt(path: str) -> np.ndarray:
    """A Sintel .dpt depth file: float32 tag 202021.25, int32 width, int32 height, then
    height x width float32 depths, row-major, little-endian -> (H, W) float32."""
    data = _read_bytes(path)
    if len(data) < 12:
        raise FormatError(f"{path}: too short for a .dpt header")
    tag, width, height = struct.unpack("<fii", data[:12])
    if tag != np.float32(DPT_TAG):
        raise FormatError(f"{path}: not a Sintel .dpt file (tag {tag}, expected {DPT_TAG})")
    if width < 1 or height < 1 or len(data) - 12 != 4 * width * height:
        raise FormatError(f"{path}: .dpt of {width}x{height} needs {4 * width * height} "
                          f"data bytes, has {len(data) - 12}")
    return np.frombuffer(data[12:], "<f4").reshape(height, width).astype(np.float32)


def read_raw_float32(path: str, height: int, width: int) -> np.ndarray:
    """A headerless little-endian float32 raster of height x width, row-major (ETH3D's
    depth maps) -> (H, W) float32."""
    data = _read_bytes(path)
    if len(data) != 4 * height * width:
        raise FormatError(f"{path}: a raw float32 map of {width}x{height} has "
                          f"{4 * height * width} bytes, this file {len(data)}")
    return np.frombuffer(data, "<f4").reshape(height, width).astype(np.float32)


def read_npy(path: str) -> np.ndarray:
    """A .npy array, squeezed to (H, W) when it holds one map ((H, W, 1) or (1, H, W))."""
    data = _read_bytes(path)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise FormatError(f"{path}: not a readable .npy file ({err})") from None
    array = np.squeeze(array)
    if array.ndim != 2:
        raise FormatError(f"{path}: expected one (H, W) map, got shape {array.shape}")
    return array


def _optional(module: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise FormatError(f"reading {what} needs the package {module!r}: pip install "
                          "'depthsense-jax[formats]'", reason="unreadable") from None


def read_tiff(path: str) -> np.ndarray:
    """A single-channel TIFF (float or integer) as stored, (H, W) (tifffile)."""
    tifffile = _optional("tifffile", ".tif / .tiff files")
    data = _read_bytes(path)
    try:
        array = tifffile.imread(io.BytesIO(data))
    except Exception as err:  # tifffile raises many kinds for broken files
        raise FormatError(f"{path}: not a readable TIFF ({err})") from None
    array = np.squeeze(array)
    if array.ndim != 2:
        raise FormatError(f"{path}: expected a single-channel TIFF, got shape {array.shape}")
    return array


EXR_CHANNELS = ("Z", "Y", "R", "depth", "D")  # depth channels, in the order they are looked for


def read_exr(path: str) -> np.ndarray:
    """The depth channel of an OpenEXR file as (H, W) float32: Z, else Y, R, depth or D,
    else its only channel (OpenEXR's Python bindings)."""
    openexr = _optional("OpenEXR", ".exr files")
    if not storage.exists(path):
        raise _no_such_file(path)
    try:
        # The bindings open files by name only: a URL is read through a local copy.
        with storage.local_file(path, ".exr") as local, openexr.File(local) as f:
            channels = {name: channel.pixels for name, channel in f.channels().items()}
    except Exception as err:  # the bindings raise their own errors for broken files
        raise FormatError(f"{path}: not a readable OpenEXR file ({err})") from None
    for name in EXR_CHANNELS:
        if name in channels:
            array = channels[name]
            break
    else:
        if len(channels) != 1:
            raise FormatError(f"{path}: no depth channel among {sorted(channels)} (looked for "
                              f"{', '.join(EXR_CHANNELS)})")
        array = next(iter(channels.values()))
    array = np.asarray(array)
    if array.ndim == 3:  # an interleaved RGB(A) channel: its first component
        array = array[..., 0]
    return array.astype(np.float32)


def read_map(path: str) -> np.ndarray:
    """A per-pixel map by its extension, as float32 (H, W), values as stored: .npy, .pfm,
    .dpt, a single-channel 8/16-bit PNG (its integers), TIFF or OpenEXR."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        array = read_npy(path)
    elif ext == ".pfm":
        array = read_pfm(path)
    elif ext == ".dpt":
        array = read_dpt(path)
    elif ext == ".png":
        array = read_png_gray(path)
    elif ext in (".tif", ".tiff"):
        array = read_tiff(path)
    elif ext == ".exr":
        array = read_exr(path)
    else:
        raise FormatError(f"{path}: unknown map format {ext!r}; expected one of "
                          f"{', '.join(MAP_SUFFIXES)}")
    return np.asarray(array, np.float32)


MAP_SUFFIXES = (".npy", ".pfm", ".png", ".dpt", ".tif", ".tiff", ".exr")

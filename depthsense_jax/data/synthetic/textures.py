"""Procedural albedo textures: tileable (TEX, TEX, 3) linear-RGB tiles and their lookup.

No sample photographs ship with the installed packages (``cv2.samples`` finds none, scikit-image
is not installed), so every texture is procedural: fractal noise, checkers, stripes, bricks,
marble, wood grain, floor tiles, foliage, grass and facades (windows), mapped in surface
coordinates (world units) so that they foreshorten and shrink with distance.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from depthsense_jax.data.synthetic.camera import F32
from depthsense_jax.data.synthetic.shapes import TEX

_YY, _XX = np.mgrid[0:TEX, 0:TEX].astype(F32)  # texel row, column (TEX, TEX)
# spatial frequency (TEX, TEX // 2 + 1) in cycles per tile, for the rfft2 noise spectra
_FREQ = np.sqrt(
    np.fft.fftfreq(TEX)[:, None] ** 2 + np.fft.rfftfreq(TEX)[None, :] ** 2
).astype(F32) * TEX
_FREQ[0, 0] = np.inf  # zero-mean noise: the DC term gets amplitude 0


class Texture:
    """Tileable albedo ``tile`` (TEX, TEX, 3) float32 in [0, 1] (linear RGB) covering
    ``period`` world units; ``feature`` is the size of its details in texels (used to fade
    to the ``mean`` colour where a pixel covers many details, against aliasing).

    The tile is made by ``make() -> (tile, feature)`` on first use, so that textures of
    surfaces that end up out of view cost nothing."""

    def __init__(
        self, make: Callable[[], tuple[np.ndarray, float]], period: float = 1.0
    ) -> None:
        self._make = make
        self.period = float(period)

    @functools.cached_property
    def _made(self) -> tuple[np.ndarray, float, np.ndarray]:
        tile, feature = self._make()
        tile = np.ascontiguousarray(tile, F32)
        return tile, float(feature), tile.mean((0, 1), dtype=F32)

    @property
    def tile(self) -> np.ndarray:
        return self._made[0]

    @property
    def feature(self) -> float:
        return self._made[1]

    @property
    def mean(self) -> np.ndarray:
        return self._made[2]

    @property
    def scale(self) -> float:
        """Texels per world unit."""
        return TEX / self.period


def solid_texture(color: Sequence[float]) -> Texture:
    """A uniform albedo ``color`` (3,) in [0, 1]."""
    c = np.asarray(color, F32)
    return Texture(lambda: (np.broadcast_to(c, (TEX, TEX, 3)), float(TEX)))


_NOISE_BETAS = np.linspace(0.8, 2.8, 41)


@functools.cache
def _noise_bank() -> np.ndarray:
    """Tileable 1/f^beta noise fields (len(_NOISE_BETAS), 4, TEX, TEX) float32 in [0, 1],
    made once from a fixed seed (about 40 ms)."""
    rng = np.random.default_rng(20240917)
    spec = np.fft.rfft2(rng.standard_normal((4, TEX, TEX)))
    bank = np.stack([np.fft.irfft2(spec * _FREQ ** -beta, s=(TEX, TEX)) for beta in _NOISE_BETAS])
    bank -= bank.min(axis=(2, 3), keepdims=True)
    bank /= bank.max(axis=(2, 3), keepdims=True)
    return bank.astype(F32)


def _fractal_noise(rng: np.random.Generator, beta: float) -> np.ndarray:
    """Tileable 1/f^beta noise (TEX, TEX) float32 in [0, 1]: a field of the bank nearest in
    beta, randomly shifted (wrapping), transposed and negated."""
    i = int(np.abs(_NOISE_BETAS - beta).argmin())
    j, dy, dx, flip = (int(x) for x in rng.integers(0, [4, TEX, TEX, 4]))
    n = np.roll(_noise_bank()[i, j], (dy, dx), axis=(0, 1))
    if flip & 1:
        n = n.T
    return 1.0 - n if flip & 2 else n


def _random_color(rng: np.random.Generator, lo: float = 0.03, hi: float = 0.85) -> np.ndarray:
    """A random linear-RGB albedo (3,) float32, saturation varied."""
    c = rng.uniform(lo, hi, 3)
    grey = c.mean()
    return np.clip(grey + (c - grey) * rng.uniform(0.2, 1.3), 0.0, 1.0).astype(F32)


TEXTURE_KINDS = ("noise", "checker", "stripes", "bricks", "marble", "solid")
# the richer scenes (scene families) add these; TEXTURE_KINDS stays as it was so that the
# first dataset's scenes do not change
MORE_TEXTURE_KINDS = ("wood", "tiles", "foliage", "windows", "grass")


def _smear(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Tileable box blur of ``a`` over ``n`` texels along ``axis`` (wrapping)."""
    padded = np.concatenate([np.take(a, range(TEX - n + 1, TEX), axis=axis), a], axis=axis)
    ksize = (n, 1) if axis == 1 else (1, n)
    blurred = cv2.blur(padded, ksize, anchor=(n - 1, 0) if axis == 1 else (0, n - 1))
    return np.take(blurred, range(n - 1, n - 1 + TEX), axis=axis)


@functools.cache
def _checker(cells: int) -> np.ndarray:
    return ((_XX * cells // TEX) + (_YY * cells // TEX)) % 2


@functools.cache
def _stripes(kx: int, ky: int) -> np.ndarray:
    return np.sin((kx * _XX + ky * _YY) * F32(2 * math.pi / TEX))


@functools.cache
def _bricks(rows: int, per_row: int, m: int) -> np.ndarray:
    bh, bw = TEX // rows, TEX // per_row
    shift = (_YY // bh % 2) * (bw // 2)
    mortar = (_YY % bh < m) | ((_XX + shift) % bw < m)
    return 1.0 - mortar.astype(F32)


@functools.cache
def _cell_offsets(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Each texel's distance from its cell's centre line, as a fraction of the cell's height
    (TEX, 1) and width (1, TEX), for a grid of rows x cols cells."""
    ch, cw = TEX / rows, TEX / cols
    return (np.abs(_YY[:, :1] % ch - ch / 2) / ch).astype(F32), \
        (np.abs(_XX[:1] % cw - cw / 2) / cw).astype(F32)


@functools.cache
def _grid(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each texel's tile row and column (TEX, TEX) int and the grout lines (TEX, TEX) bool
    of a grid of cells x cells tiles."""
    size = TEX // cells
    grout = (_YY % size < 1.5) | (_XX % size < 1.5)
    return (_YY // size).astype(int), (_XX // size).astype(int), grout


def _pattern(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, float]:
    """A tileable scalar pattern (TEX, TEX) in [0, 1] of ``kind`` and its feature size."""
    if kind == "noise":
        return _fractal_noise(rng, rng.uniform(1.2, 2.8)), 6.0
    if kind == "checker":
        cells = int(rng.choice([2, 4, 8]))
        return _checker(cells), TEX / cells
    if kind == "stripes":
        kx, ky = int(rng.integers(0, 5)), int(rng.integers(0, 5))
        kx = kx if kx or ky else 1
        s = _stripes(kx, ky)
        a = (s > 0).astype(F32) if rng.random() < 0.5 else 0.5 + 0.5 * s
        return a, TEX / (2 * max(abs(kx), abs(ky)))
    if kind == "bricks":
        rows, per_row = int(rng.choice([4, 8])), int(rng.choice([2, 4]))
        return _bricks(rows, per_row, 2), 4.0
    if kind == "marble":
        k = int(rng.integers(1, 4))
        n = _fractal_noise(rng, 2.0)
        a = 0.5 + 0.5 * np.sin((k * _XX / TEX + rng.uniform(0.5, 2.0) * n) * F32(2 * math.pi))
        return a, TEX / (2 * k)
    if kind == "wood":  # rings along v, bent by noise stretched along the grain (u)
        k = int(rng.integers(2, 7))
        n = _smear(_fractal_noise(rng, 1.6), 1, 24)
        phase = (k * _YY / TEX + rng.uniform(0.3, 1.2) * n) * F32(2 * math.pi)
        return (0.5 + 0.5 * np.sin(phase)) ** F32(rng.uniform(0.5, 3.0)), TEX / (2 * k)
    if kind == "tiles":  # square tiles, each its own shade, and grout lines
        cells = int(rng.choice([2, 4, 8]))
        shade = rng.uniform(0.0, 0.35, (cells, cells)).astype(F32)
        rows, cols, grout = _grid(cells)
        return np.where(grout, F32(1), shade[rows, cols]), 2.0
    if kind in ("foliage", "grass"):  # blotches of light and dark leaves, or blades
        n = _fractal_noise(rng, rng.uniform(0.9, 1.3))
        if kind == "grass":
            n = _smear(n, 0, 6)
        return np.clip((n - F32(0.5)) * F32(rng.uniform(2.0, 5.0)) + F32(0.5), 0, 1), 3.0
    if kind == "windows":  # a facade: rows of dark windows on the wall colour
        rows, cols = int(rng.choice([2, 4])), int(rng.choice([2, 4]))
        fy, fx = rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.7)
        from_row, from_col = _cell_offsets(rows, cols)
        inside = (from_row < F32(fy / 2)) & (from_col < F32(fx / 2))
        return inside.astype(F32), min(TEX / rows, TEX / cols) * 0.3
    return np.zeros((TEX, TEX), F32), float(TEX)


# colour pairs (first, second) in linear RGB for the kinds that have their own palette
def _palette(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    if kind in ("foliage", "grass"):
        dark = np.array([0.02, 0.05, 0.01]) * rng.uniform(0.5, 2.0, 3)
        light = np.array([0.12, 0.3, 0.05]) * rng.uniform(0.6, 1.8, 3)
        return dark.astype(F32), np.clip(light, 0, 1).astype(F32)
    if kind == "wood":
        base = np.array([0.35, 0.18, 0.07]) * rng.uniform(0.4, 1.6)
        return np.clip(base, 0, 1).astype(F32), (base * rng.uniform(0.4, 0.7)).astype(F32)
    if kind == "windows":
        glass = np.array([0.03, 0.05, 0.08]) * rng.uniform(0.5, 3.0, 3)
        return _random_color(rng, 0.1, 0.8), np.clip(glass, 0, 1).astype(F32)
    return None


def _texture_tile(rng: np.random.Generator, kinds: Sequence[str]) -> tuple[np.ndarray, float]:
    """A random tile (TEX, TEX, 3) of one of ``kinds`` and its feature size in texels."""
    kind = str(rng.choice(list(kinds)))
    a, feature = _pattern(rng, kind)
    palette = _palette(rng, kind) if kind in MORE_TEXTURE_KINDS else None
    c1, c2 = palette if palette is not None else (_random_color(rng), _random_color(rng))
    # c1 + (c2 - c1) * a per channel (NumPy broadcasting over a last axis of 3 is slow)
    d = c2 - c1
    tile = cv2.merge([a * d[k] + c1[k] for k in range(3)])
    if kind != "noise" and rng.random() < 0.7:  # grain / dirt
        amp = float(rng.uniform(0.05, 0.3))
        grain = _fractal_noise(rng, float(rng.uniform(0.8, 2.0)))
        gain = 1.0 - amp + 2.0 * amp * grain
        tile = cv2.merge([c * gain for c in cv2.split(tile)])
    return np.clip(tile, 0.0, 1.0), feature


def random_texture(
    rng: np.random.Generator, period: tuple[float, float], kinds: Sequence[str] = TEXTURE_KINDS
) -> Texture:
    """A random texture of one of ``kinds`` covering U(period) world units per tile; draws
    two numbers from ``rng`` (the tile itself comes from its own generator, on first use)."""
    seed = int(rng.integers(2**63))
    kinds = tuple(kinds)
    return Texture(lambda: _seeded_tile(seed, kinds), rng.uniform(*period))


@functools.lru_cache(maxsize=256)
def _seeded_tile(seed: int, kinds: tuple[str, ...]) -> tuple[np.ndarray, float]:
    """`_texture_tile` from the generator of ``seed`` (cached: rows of like things in a
    scene draw the same seed; the tile is read only)."""
    tile, feature = _texture_tile(np.random.default_rng(seed), kinds)
    tile.flags.writeable = False
    return tile, feature


def _sample(tex: Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear, wrapped lookup of ``tex`` at texel coordinates u, v (n,) -> (n, 3)."""
    n = u.shape[0]
    cols = 128
    rows = -(-n // cols)
    mu = np.zeros(rows * cols, F32)
    mv = np.zeros(rows * cols, F32)
    np.mod(u, F32(TEX), out=mu[:n])  # small maps: remap works in fixed point
    np.mod(v, F32(TEX), out=mv[:n])
    out = cv2.remap(tex.tile, mu.reshape(rows, cols), mv.reshape(rows, cols),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return out.reshape(-1, 3)[:n]

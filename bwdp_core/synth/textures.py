"""Procedural textures for the synthetic street, and their filtered (mip-mapped) lookup.

Every material is a periodic RGB tile of ``TILE`` x ``TILE`` texels covering ``TILE / TEXELS_PER_METRE`` metres, made
from multi-octave value noise plus a pattern (road markings, paving slabs, bricks, windows, planks...). Texture
coordinates are metres on the surface, so a surface point has the same colour seen from any camera: that is what makes
the frames photometrically consistent for the warping losses. Lookup is trilinear over a mip pyramid (level chosen from
the pixel footprint), which keeps distant textures from aliasing differently in neighbouring frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TILE = 256  # texels per tile side (power of two: wrapping is a bit mask)
TEXELS_PER_METRE = 32.0  # one tile covers 8 m x 8 m
LEVELS = 7  # mip levels 256 .. 4 texels

# material ids
ROAD, PAVEMENT, DIRT, BRICK, PLASTER, CONCRETE, GLASS_FACADE, CRATE, CAR, PILLAR, FOLIAGE, BARK = range(12)
FACADES = (BRICK, PLASTER, CONCRETE, GLASS_FACADE)
NUM_MATERIALS = 12

# road tile layout (metres across the road, the tile row is (d + ROAD_TILE_OFFSET) * TEXELS_PER_METRE)
ROAD_HALF_WIDTH = 3.5  # asphalt from the centre line to the curb
CURB_WIDTH = 0.5  # light concrete curb drawn at the road's edge, inside the road tile
ROAD_TILE_OFFSET = 4.0


@dataclass(frozen=True)
class TextureAtlas:
    """All materials' mip pyramids flattened into one array.

    texels: float32 [T, 3] RGB in [0, 1]; base: int64 [NUM_MATERIALS, LEVELS] index of texel (0, 0) of each level.
    """

    texels: np.ndarray
    base: np.ndarray


def periodic_value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth periodic noise [size, size] in [0, 1]: a random ``cells`` x ``cells`` lattice, smoothstep-interpolated."""
    lattice = rng.random((cells, cells))
    coord = np.arange(size) * (cells / size)
    i0 = np.floor(coord).astype(np.int64)
    frac = coord - i0
    frac = frac * frac * (3.0 - 2.0 * frac)
    i1 = (i0 + 1) % cells
    rows = lattice[i0] * (1.0 - frac)[:, None] + lattice[i1] * frac[:, None]  # [size, cells]
    return rows[:, i0] * (1.0 - frac)[None, :] + rows[:, i1] * frac[None, :]


def fractal_noise(rng: np.random.Generator, size: int = TILE, octaves=(4, 8, 16, 32, 64, 128),
                  persistence: float = 0.7) -> np.ndarray:
    """Sum of value-noise octaves, rescaled to [0, 1] (periodic over the tile)."""
    total = np.zeros((size, size))
    amplitude = 1.0
    for cells in octaves:
        total += amplitude * periodic_value_noise(rng, size, cells)
        amplitude *= persistence
    total -= total.min()
    return total / max(total.max(), 1e-9)


def _grid(size: int = TILE) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in metres for every texel: u along the columns, v along the rows."""
    metres = np.arange(size) / TEXELS_PER_METRE
    return np.meshgrid(metres, metres)  # u varies along axis 1, v along axis 0


def _colorize(gray: np.ndarray, color) -> np.ndarray:
    return gray[..., None] * np.asarray(color, dtype=np.float64)[None, None, :]


def _cells(rng: np.random.Generator, index_u: np.ndarray, index_v: np.ndarray, count: int) -> np.ndarray:
    """A random value per (index_u, index_v) cell (for per-slab / per-brick variation)."""
    table = rng.random((count, count))
    return table[index_v % count, index_u % count]


def _road(rng):
    u, v = _grid()
    d = v - ROAD_TILE_OFFSET  # metres from the centre line
    fine = fractal_noise(rng, octaves=(16, 32, 64, 128, 256), persistence=0.8)
    coarse = fractal_noise(rng, octaves=(2, 4, 8))
    mid = fractal_noise(rng, octaves=(8, 16, 32))
    cracks = np.abs(mid - 0.5) < 0.012  # thin curvy lines: iso-contours of mid-frequency noise
    gray = 0.2 + 0.26 * fine + 0.1 * mid + 0.12 * (coarse > 0.62) * coarse  # asphalt with repaired patches
    gray = np.where(cracks, 0.7 * gray, gray)
    rgb = _colorize(gray, (1.0, 1.0, 1.02))
    paint = 0.75 + 0.2 * fine
    centre_dash = (np.abs(d) < 0.07) & ((u % 8.0) < 3.0)
    edge_line = np.abs(np.abs(d) - 3.25) < 0.06
    curb = np.abs(d) >= ROAD_HALF_WIDTH
    rgb[centre_dash | edge_line] = _colorize(paint, (1.0, 1.0, 0.95))[centre_dash | edge_line]
    curb_gray = 0.55 + 0.25 * fine + 0.1 * ((u % 1.0) < 0.03)
    rgb[curb] = _colorize(curb_gray, (1.0, 0.98, 0.95))[curb]
    return rgb


def _pavement(rng):
    u, v = _grid()
    slab = 0.5
    iu, iv = np.floor(u / slab).astype(np.int64), np.floor(v / slab).astype(np.int64)
    per_slab = _cells(rng, iu, iv, int(TILE / TEXELS_PER_METRE / slab))
    fine = fractal_noise(rng, octaves=(16, 32, 64, 128, 256), persistence=0.8)
    grout = ((u % slab) < 0.04) | ((v % slab) < 0.04)
    gray = 0.42 + 0.18 * per_slab + 0.22 * fine
    gray = np.where(grout, 0.25 + 0.1 * fine, gray)
    return _colorize(gray, (1.0, 0.95, 0.88))


def _dirt(rng):
    fine = fractal_noise(rng, octaves=(8, 16, 32, 64, 128, 256), persistence=0.75)
    patches = fractal_noise(rng, octaves=(2, 4, 8))
    grass = _colorize(0.25 + 0.5 * fine, (0.45, 0.7, 0.3))
    soil = _colorize(0.25 + 0.5 * fine, (0.7, 0.55, 0.4))
    mix = np.clip((patches - 0.4) * 4.0, 0.0, 1.0)[..., None]
    return grass * mix + soil * (1.0 - mix)


def _windows(rng, rgb, fine, floor_height=4.0, spacing=2.0, width=1.2, height=1.8, sill=1.0):
    """Paint a window grid (frames + dark glass with reflections) onto a facade tile."""
    u, v = _grid()
    fu, fv = u % spacing - (spacing - width) / 2, v % floor_height - sill
    inside = (fu >= 0) & (fu < width) & (fv >= 0) & (fv < height)
    glass = (fu >= 0.08) & (fu < width - 0.08) & (fv >= 0.08) & (fv < height - 0.08)
    frame = inside & ~glass
    reflection = fractal_noise(rng, octaves=(4, 8, 16, 32))
    per_window = _cells(rng, np.floor(u / spacing).astype(np.int64), np.floor(v / floor_height).astype(np.int64), 4)
    glass_gray = 0.12 + 0.25 * reflection + 0.2 * per_window + 0.15 * (fv / height)
    rgb[frame] = _colorize(0.8 + 0.15 * fine, (0.95, 0.95, 0.9))[frame]
    rgb[glass] = _colorize(glass_gray, (0.7, 0.85, 1.0))[glass]
    return rgb


def _brick(rng):
    u, v = _grid()
    row = np.floor(v / 0.2).astype(np.int64)
    shifted = u + 0.25 * (row % 2)
    col = np.floor(shifted / 0.5).astype(np.int64)
    per_brick = _cells(rng, col, row, 40)
    fine = fractal_noise(rng, octaves=(16, 32, 64, 128, 256), persistence=0.8)
    mortar = ((v % 0.2) < 0.03) | ((shifted % 0.5) < 0.03)
    gray = 0.45 + 0.3 * per_brick + 0.25 * fine
    rgb = _colorize(gray, (0.85, 0.45, 0.32))
    rgb[mortar] = _colorize(0.55 + 0.2 * fine, (0.85, 0.83, 0.78))[mortar]
    return _windows(rng, rgb, fine)


def _plaster(rng):
    fine = fractal_noise(rng, octaves=(8, 16, 32, 64, 128, 256), persistence=0.8)
    stains = fractal_noise(rng, octaves=(2, 4, 8))
    u, v = _grid()
    band = (v % 4.0) < 0.25  # a cornice line per floor
    gray = 0.55 + 0.3 * fine - 0.2 * stains + 0.15 * band
    rgb = _colorize(gray, (0.95, 0.85, 0.65))
    return _windows(rng, rgb, fine, spacing=2.0, width=1.0, height=1.6)


def _concrete(rng):
    u, v = _grid()
    fine = fractal_noise(rng, octaves=(8, 16, 32, 64, 128, 256), persistence=0.8)
    panel = _cells(rng, np.floor(u / 2.0).astype(np.int64), np.floor(v / 1.0).astype(np.int64), 8)
    joint = ((u % 2.0) < 0.03) | ((v % 1.0) < 0.03)
    gray = 0.4 + 0.25 * fine + 0.15 * panel - 0.2 * joint
    rgb = _colorize(gray, (0.8, 0.82, 0.85))
    return _windows(rng, rgb, fine, spacing=4.0, width=2.6, height=1.5, floor_height=2.0, sill=0.3)


def _glass_facade(rng):
    u, v = _grid()
    fine = fractal_noise(rng, octaves=(4, 8, 16, 32, 64, 128), persistence=0.75)
    per_pane = _cells(rng, np.floor(u / 1.6).astype(np.int64), np.floor(v / 2.0).astype(np.int64), 5)
    mullion = ((u % 1.6) < 0.1) | ((v % 2.0) < 0.12)
    gray = 0.2 + 0.35 * fine + 0.25 * per_pane
    rgb = _colorize(gray, (0.55, 0.75, 0.85))
    rgb[mullion] = _colorize(0.5 + 0.3 * fine, (0.75, 0.75, 0.78))[mullion]
    return rgb


def _crate(rng):
    u, v = _grid()
    plank = np.floor(v / 0.15).astype(np.int64)
    per_plank = _cells(rng, np.zeros_like(plank), plank, 16)
    # grain: noise stretched along u
    grain = periodic_value_noise(rng, TILE, 64)[:, ::1]
    grain = 0.5 * grain + 0.5 * fractal_noise(rng, octaves=(16, 32, 64, 128, 256))
    gap = (v % 0.15) < 0.02
    gray = 0.4 + 0.3 * per_plank + 0.3 * grain - 0.3 * gap
    return _colorize(gray, (0.8, 0.6, 0.38))


def _car(rng):
    u, v = _grid()
    fine = fractal_noise(rng, octaves=(8, 16, 32, 64, 128), persistence=0.7)
    gray = 0.6 + 0.3 * fine
    rgb = _colorize(gray, (1.0, 1.0, 1.0))
    window = ((v % 8.0) > 0.9) & ((v % 8.0) < 1.4) & ((u % 1.5) > 0.15)
    wheel_band = (v % 8.0) < 0.35
    rgb[window] = _colorize(0.1 + 0.3 * fine, (0.6, 0.7, 0.8))[window]
    rgb[wheel_band] = _colorize(0.08 + 0.2 * fine, (1.0, 1.0, 1.0))[wheel_band]
    return rgb


def _pillar(rng):
    u, v = _grid()
    fine = fractal_noise(rng, octaves=(8, 16, 32, 64, 128, 256), persistence=0.8)
    stripes = ((v % 1.0) < 0.5)
    gray = 0.35 + 0.3 * fine + 0.2 * stripes + 0.1 * ((u % 0.25) < 0.05)
    return _colorize(gray, (0.9, 0.9, 0.85))


def _foliage(rng):
    leaves = fractal_noise(rng, octaves=(8, 16, 32, 64, 128, 256), persistence=0.85)
    clumps = fractal_noise(rng, octaves=(4, 8, 16))
    gray = 0.15 + 0.55 * leaves * (0.5 + 0.5 * clumps)
    rgb = _colorize(gray, (0.45, 0.8, 0.3))
    blossom = leaves > 0.8
    rgb[blossom] = _colorize(0.6 + 0.3 * leaves, (0.9, 0.9, 0.5))[blossom]
    return rgb


def _bark(rng):
    u, v = _grid()
    ridges = periodic_value_noise(rng, TILE, 64)
    fine = fractal_noise(rng, octaves=(16, 32, 64, 128, 256), persistence=0.8)
    gray = 0.25 + 0.3 * fine + 0.25 * (ridges > 0.55)
    return _colorize(gray, (0.65, 0.5, 0.38))


_MAKERS = {ROAD: _road, PAVEMENT: _pavement, DIRT: _dirt, BRICK: _brick, PLASTER: _plaster, CONCRETE: _concrete,
           GLASS_FACADE: _glass_facade, CRATE: _crate, CAR: _car, PILLAR: _pillar, FOLIAGE: _foliage, BARK: _bark}


def _mip_chain(tile: np.ndarray) -> list[np.ndarray]:
    levels = [tile]
    for _ in range(LEVELS - 1):
        prev = levels[-1]
        half = prev.shape[0] // 2
        levels.append(prev.reshape(half, 2, half, 2, 3).mean(axis=(1, 3)))
    return levels


@lru_cache(maxsize=2)
def make_atlas(seed: int) -> TextureAtlas:
    """Build every material's tile and mip chain; deterministic per seed (one RNG stream per material).

    Cached (a scene per seed is typically rendered many times in one process); the arrays are read-only.
    """
    chunks, base, offset = [], np.zeros((NUM_MATERIALS, LEVELS), dtype=np.int64), 0
    for material in range(NUM_MATERIALS):
        rng = np.random.default_rng([seed, 1000 + material])
        tile = np.clip(_MAKERS[material](rng), 0.0, 1.0)
        for level, image in enumerate(_mip_chain(tile)):
            base[material, level] = offset
            flat = image.reshape(-1, 3)
            chunks.append(flat)
            offset += flat.shape[0]
    texels = np.concatenate(chunks).astype(np.float32)
    texels.setflags(write=False)
    base.setflags(write=False)
    return TextureAtlas(texels=texels, base=base)


def _bilinear(atlas: TextureAtlas, material, u, v, level) -> np.ndarray:
    """Bilinear, wrapping lookup at one mip level. u, v: texel coordinates at level 0 (float32 [P])."""
    scale = np.ldexp(np.float32(1.0), -level).astype(np.float32)
    size = TILE >> level
    mask = size - 1
    x = u * scale - np.float32(0.5)
    y = v * scale - np.float32(0.5)
    x0f, y0f = np.floor(x), np.floor(y)
    fx, fy = (x - x0f)[:, None], (y - y0f)[:, None]
    x0 = x0f.astype(np.int64)
    y0 = y0f.astype(np.int64)
    x1 = (x0 + 1) & mask
    y1 = (y0 + 1) & mask
    x0 &= mask
    y0 &= mask
    b = atlas.base[material, level]
    row0, row1 = b + y0 * size, b + y1 * size
    tex = atlas.texels
    top = tex[row0 + x0] * (1 - fx) + tex[row0 + x1] * fx
    bottom = tex[row1 + x0] * (1 - fx) + tex[row1 + x1] * fx
    return top * (1 - fy) + bottom * fy


def sample(atlas: TextureAtlas, material: np.ndarray, u: np.ndarray, v: np.ndarray, lod: np.ndarray) -> np.ndarray:
    """Trilinear texture lookup.

    material: int [P]; u, v: float32 [P] texel coordinates (level 0); lod: float32 [P] mip level (log2 texels/pixel).
    Returns float32 [P, 3] RGB in [0, 1].
    """
    lod = np.clip(lod, 0.0, LEVELS - 1.001).astype(np.float32)
    level0 = lod.astype(np.int64)
    blend = (lod - level0)[:, None]
    c0 = _bilinear(atlas, material, u, v, level0)
    c1 = _bilinear(atlas, material, u, v, level0 + 1)
    return c0 + (c1 - c0) * blend

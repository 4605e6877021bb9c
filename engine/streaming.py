"""Run a pansharpening method tile by tile over a PAN/MS source.

A *source* gives windows of PAN and of the aligned MS (``RasterPair`` for files,
``ArraySource`` for arrays in memory); a *method* is a callable on normalised arrays
``method(pan (H, W), lms (B, H, W), ms (B, h, w)) -> (B, H, W)`` with a ``halo`` (PAN
pixels of context it needs). Each tile is read with its halo on whole MS pixels,
nodata is filled, the MS upsampled to the PAN grid (with the interpolator's own
context), the method applied, and the result blended into the output (``tiling``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from . import upsample
from .errors import Cancelled
from .raster_io import mirror_pad, valid_mask
from .tiling import Tile, TileGrid

Progress = Callable[[float], None]
IsCancelled = Callable[[], bool]
CellSink = Callable[[int, int, np.ndarray, np.ndarray], None]


class Source(Protocol):
    ratio: int
    scale: float
    pan_scale: float
    bands: int

    @property
    def ms_phase(self) -> tuple[int, int]: ...

    def read_pan(self, rows, cols) -> tuple[np.ndarray, np.ndarray]: ...

    def read_ms(self, rows, cols) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class ArraySource:
    """PAN (H, W) and MS (B, H/r, W/r) arrays on the aligned grid, in digital numbers."""

    pan: np.ndarray
    ms: np.ndarray
    ratio: int
    scale: float
    pan_scale: float | None = None
    nodata: float | None = None

    def __post_init__(self):
        self.pan_scale = self.pan_scale or self.scale
        self.bands = self.ms.shape[0]
        self.height, self.width = self.pan.shape

    ms_phase = (0, 0)

    def read_pan(self, rows, cols):
        data = _window(self.pan, rows, cols)
        return data, valid_mask(data, self.nodata)

    def read_ms(self, rows, cols):
        data = _window(self.ms, rows, cols)
        return data, valid_mask(data, self.nodata).all(axis=0)


def _window(array, rows, cols) -> np.ndarray:
    """Rows/cols of an array (may extend past it) as float32, mirror-padded."""
    h, w = array.shape[-2:]
    r0, r1, c0, c1 = max(rows[0], 0), min(rows[1], h), max(cols[0], 0), min(cols[1], w)
    data = array[..., r0:r1, c0:c1].astype(np.float32)
    return mirror_pad(data, ((r0 - rows[0], rows[1] - r1), (c0 - cols[0], cols[1] - c1)))



def _fill(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels by the mean of the valid ones, so filters see no spikes."""
    if valid.all():
        return data
    data = data.copy()
    planes = data if data.ndim == 3 else data[None]
    for plane in planes:
        plane[~valid] = plane[valid].mean() if valid.any() else 0.0
    return data


def read_tile(source: Source, tile: Tile, halo: int, scene=None):
    """Normalised (pan, lms, ms) around a tile, the valid mask, and where the tile sits.

    The window starts and ends on MS pixel boundaries so that pan, lms and ms cover the
    same ground; returns (pan, lms, ms, valid, (dy, dx)) with (dy, dx) the tile's
    offset inside the window. Normalisation: the source's constant ``pan_scale`` and
    ``scale``, or, given ``scene`` (a ``radiometry.SceneNormalisation``), its per-band
    scene statistics.
    """
    r = source.ratio
    px, py = source.ms_phase
    k0, k1 = math.floor((tile.y0 - halo + py) / r), math.ceil((tile.y1 + halo + py) / r)
    j0, j1 = math.floor((tile.x0 - halo + px) / r), math.ceil((tile.x1 + halo + px) / r)
    ctx = upsample.context_pixels(r)
    ms_wide, ms_valid_wide = source.read_ms((k0 - ctx, k1 + ctx), (j0 - ctx, j1 + ctx))
    ms_wide = _fill(ms_wide, ms_valid_wide)
    lms = upsample.upsample(ms_wide, r)[:, ctx * r:-ctx * r, ctx * r:-ctx * r]
    ms = ms_wide[:, ctx:-ctx, ctx:-ctx]
    ms_valid = ms_valid_wide[ctx:-ctx, ctx:-ctx]
    rows = (r * k0 - py, r * k1 - py)
    cols = (r * j0 - px, r * j1 - px)
    pan, pan_valid = source.read_pan(rows, cols)
    valid = pan_valid & np.repeat(np.repeat(ms_valid, r, axis=0), r, axis=1)
    pan = _fill(pan, pan_valid)
    where = (tile.y0 - rows[0], tile.x0 - cols[0])
    if scene is not None:
        return (scene.normalise_pan(pan), scene.normalise_ms(lms), scene.normalise_ms(ms),
                valid, where)
    scale = np.float32(source.scale)
    return pan / np.float32(source.pan_scale), lms / scale, ms / scale, valid, where


def scene_normalisation(source: Source, method):
    """Scene statistics for a method whose ``normalisation`` is "scene" (deep models
    trained that way), else None: the constant scale."""
    if getattr(method, "normalisation", "scale") != "scene":
        return None
    from .radiometry import SceneNormalisation

    return SceneNormalisation.from_source(source)


def run_tiled(source: Source, method, height: int, width: int, sink: CellSink, *,
              tile: int = 512, overlap: int = 32,
              progress: Progress | None = None, cancelled: IsCancelled | None = None,
              scene=None) -> None:
    """Apply ``method`` over the whole output grid; hand finished cells to ``sink``.

    ``sink(y0, x0, values (B, h, w) in digital numbers, valid (h, w))`` receives each
    output cell once, in row-major order of completion. A method whose
    ``normalisation`` is "scene" gets per-band scene statistics (computed once here
    unless ``scene`` gives them) for every tile; others the constant scale.
    """
    grid = TileGrid(height, width, tile, overlap)
    blender = grid.blender()
    scale = np.float32(source.scale)
    if scene is None:
        scene = scene_normalisation(source, method)
    for done, t in enumerate(grid):
        if cancelled is not None and cancelled():
            raise Cancelled("Cancelled by the user; nothing was written.")
        pan, lms, ms, valid, (dy, dx) = read_tile(source, t, method.halo, scene)
        out = method(pan, lms, ms)
        h, w = t.y1 - t.y0, t.x1 - t.x0
        out = out[:, dy:dy + h, dx:dx + w]
        out = scene.denormalise_ms(out) if scene is not None else out * scale
        mask = valid[None, dy:dy + h, dx:dx + w].astype(np.float32)
        stacked = np.concatenate([out * mask, mask])
        for y0, x0, cell in blender.add(t, stacked):
            sink(y0, x0, cell[:-1], cell[-1] > 0.5)
        if progress is not None:
            progress((done + 1) / len(grid))

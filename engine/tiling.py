"""Tiles with overlap and feathered seams, streamed in constant memory.

Tiles overlap their neighbours by ``overlap`` pixels; inside an overlap the two tiles
are blended with complementary linear ramps (weights sum to one), so tile-local
statistics (classical methods) or per-tile priors (KSDiff) leave no visible step.
The plane is cut into *cells* at every tile edge: a cell is covered by one, two or
four tiles and is final as soon as the last of them (in row-major order) is done. So
only the cells shared with the next tile row are held back: memory is one overlap
strip plus one tile, whatever the raster size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

DEFAULT_TILE = 1024  # PAN pixels a side, classical methods and GPUs (docs/benchmarks.md tile sweep)
DEFAULT_OVERLAP = 32  # PAN pixels blended between neighbouring tiles


def axis_tiles(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/stop of tiles along one axis, at most ``tile`` long, overlapping by ``overlap``.

    The stride is evened out over the axis so the last tile is not a sliver; only
    neighbouring tiles overlap (the stride stays at least ``overlap``).
    """
    if tile < 2 * overlap + 1:
        raise ValueError(f"tile ({tile}) must be more than twice the overlap ({overlap})")
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    stride = math.ceil((length - overlap) / count)
    return [(i * stride, min(i * stride + stride + overlap, length)) for i in range(count)]


def strip_rows(tile: int, width: int, block: int) -> int | None:
    """Rows of full-width strips holding about as many pixels as a ``tile`` x ``tile``
    tile, in whole output blocks; None where even one block row is over twice that.

    For a pixel-wise method (no halo, no overlap: ``classical.ClassicalMethod.pixelwise``)
    strips that are whole block rows of the output complete its strips one at a time,
    so the writer compresses from the first tile on and the last tile leaves one strip,
    not a tile row of them, to compress after the computation (issue 18: brovey on
    4096 x 4096 ran on one core for its first 0.4 s and its last 0.15 s)."""
    if block * width > 2 * tile * tile:
        return None
    return max(block, tile * tile // width // block * block)


def ramp(start: int, stop: int, prev_stop: int | None, next_start: int | None) -> np.ndarray:
    """Blend weights along one axis for a tile [start, stop).

    Rises linearly over the overlap with the previous tile, falls over the overlap
    with the next one; the neighbour's ramp is the complement, so they sum to one.
    """
    w = np.ones(stop - start, dtype=np.float32)
    if prev_stop is not None and prev_stop > start:
        n = prev_stop - start
        w[:n] = (np.arange(n, dtype=np.float32) + 0.5) / n
    if next_start is not None and next_start < stop:
        n = stop - next_start
        w[stop - start - n:] *= 1.0 - (np.arange(n, dtype=np.float32) + 0.5) / n
    return w


def _axis_weights(spans: list[tuple[int, int]]) -> list[np.ndarray]:
    return [
        ramp(s, e, spans[i - 1][1] if i else None, spans[i + 1][0] if i + 1 < len(spans) else None)
        for i, (s, e) in enumerate(spans)
    ]


def _cuts(spans: list[tuple[int, int]]) -> list[int]:
    return sorted({p for span in spans for p in span})


def _last_cover(spans: list[tuple[int, int]], a: int, b: int) -> int:
    """Index of the last tile covering [a, b)."""
    return max(i for i, (s, e) in enumerate(spans) if s <= a and b <= e)


@dataclass(frozen=True)
class Tile:
    """One tile: its index in the tile grid and its output rows/cols."""

    row: int
    col: int
    y0: int
    y1: int
    x0: int
    x1: int


class TileGrid:
    """The tiles of a height x width plane and the blender that stitches them."""

    def __init__(self, height: int, width: int, tile: int, overlap: int, strip_rows: int | None = None):
        """Square tiles of ``tile`` overlapping by ``overlap``; or, with ``strip_rows``,
        disjoint full-width strips of that many rows (``strip_rows`` below)."""
        self.height, self.width = height, width
        if strip_rows is None:
            self.rows, self.cols = axis_tiles(height, tile, overlap), axis_tiles(width, tile, overlap)
        else:
            self.rows = [(y, min(y + strip_rows, height)) for y in range(0, height, strip_rows)]
            self.cols = [(0, width)]
        self._wy = _axis_weights(self.rows)
        self._wx = _axis_weights(self.cols)
        ycuts, xcuts = _cuts(self.rows), _cuts(self.cols)
        self._ycells = list(zip(ycuts[:-1], ycuts[1:]))
        self._xcells = list(zip(xcuts[:-1], xcuts[1:]))
        self._ylast = [_last_cover(self.rows, a, b) for a, b in self._ycells]
        self._xlast = [_last_cover(self.cols, a, b) for a, b in self._xcells]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def __iter__(self) -> Iterator[Tile]:
        for i, (y0, y1) in enumerate(self.rows):
            for j, (x0, x1) in enumerate(self.cols):
                yield Tile(i, j, y0, y1, x0, x1)

    def blender(self) -> "Blender":
        return Blender(self)

    @property
    def disjoint(self) -> bool:
        """No two tiles overlap: each tile is one cell and needs no blending."""
        return all(a[1] <= b[0] for spans in (self.rows, self.cols) for a, b in zip(spans, spans[1:]))


def _ones(weights: np.ndarray) -> bool:
    return bool((weights == 1.0).all())


class Blender:
    """Accumulates weighted tiles; hands out each cell once it is complete."""

    def __init__(self, grid: TileGrid):
        self.grid = grid
        self._pending: dict[tuple[int, int], np.ndarray] = {}

    def add(self, tile: Tile, values: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """Add a tile's result (C, y1-y0, x1-x0); return the cells it completes.

        Each completed cell is (y0, x0, array (C, h, w)), in output coordinates.
        """
        g = self.grid
        weights = g._wy[tile.row][:, None] * g._wx[tile.col][None, :]
        done = []
        for ci, (a, b) in enumerate(g._ycells):
            if b <= tile.y0 or a >= tile.y1:
                continue
            for cj, (c, d) in enumerate(g._xcells):
                if d <= tile.x0 or c >= tile.x1:
                    continue
                key = (ci, cj)
                part = values[:, a - tile.y0:b - tile.y0, c - tile.x0:d - tile.x0]
                last = g._ylast[ci] == tile.row and g._xlast[cj] == tile.col
                if not (last and key not in self._pending and _ones(g._wy[tile.row][a - tile.y0:b - tile.y0])
                        and _ones(g._wx[tile.col][c - tile.x0:d - tile.x0])):
                    # (a cell only this tile covers, weight 1, is handed out as it is: issue 18)
                    part = part * weights[a - tile.y0:b - tile.y0, c - tile.x0:d - tile.x0]
                acc = self._pending.pop(key, None)
                acc = part if acc is None else acc + part
                if last:
                    done.append((a, c, acc))
                else:
                    self._pending[key] = acc
        return done

    @property
    def pending_pixels(self) -> int:
        """Pixels held back, waiting for a later tile (bounded by one overlap strip)."""
        return sum(a.shape[-1] * a.shape[-2] for a in self._pending.values())

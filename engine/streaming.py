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
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from . import upsample
from .errors import Cancelled
from .raster_io import mirror_pad, valid_mask
from .tiling import DEFAULT_OVERLAP, DEFAULT_TILE, Tile, TileGrid

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



def fill_invalid(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels by the mean of the valid ones, so filters see no spikes."""
    if valid.all():
        return data
    data = data.copy()
    planes = data if data.ndim == 3 else data[None]
    for plane in planes:
        plane[~valid] = plane[valid].mean() if valid.any() else 0.0
    return data


def read_tile(source: Source, tile: Tile, halo: int, scene=None, in_dn: bool = False):
    """Normalised (pan, lms, ms) around a tile, the valid mask, and where the tile sits.

    The window starts and ends on MS pixel boundaries so that pan, lms and ms cover the
    same ground; returns (pan, lms, ms, valid, (dy, dx)) with (dy, dx) the tile's
    offset inside the window. Normalisation: the source's constant ``pan_scale`` and
    ``scale``, or, given ``scene`` (a ``radiometry.SceneNormalisation``), its scene
    statistics. ``in_dn``: the MS in digital numbers and the PAN on the MS's scale
    (``pan * scale / pan_scale``), for a scale-equivariant method: f(pan / pan_scale,
    lms / scale) * scale = f(pan * scale / pan_scale, lms), without the passes.
    """
    r = source.ratio
    px, py = source.ms_phase
    k0, k1 = math.floor((tile.y0 - halo + py) / r), math.ceil((tile.y1 + halo + py) / r)
    j0, j1 = math.floor((tile.x0 - halo + px) / r), math.ceil((tile.x1 + halo + px) / r)
    ctx = upsample.context_pixels(r)
    ms_wide, ms_valid_wide = source.read_ms((k0 - ctx, k1 + ctx), (j0 - ctx, j1 + ctx))
    ms_wide = fill_invalid(ms_wide, ms_valid_wide)
    lms = upsample.upsample_window(ms_wide, r)
    ms = ms_wide[:, ctx:-ctx, ctx:-ctx]
    ms_valid = ms_valid_wide[ctx:-ctx, ctx:-ctx]
    rows = (r * k0 - py, r * k1 - py)
    cols = (r * j0 - px, r * j1 - px)
    pan, pan_valid = source.read_pan(rows, cols)
    valid = pan_valid
    if not ms_valid.all():
        ms_up = np.repeat(np.repeat(ms_valid, r, axis=0), r, axis=1)
        fill = getattr(source, "fill", None)  # around the scene, without a nodata value (raster_io.edge_fill)
        if fill is not None:  # the PAN's part of it: filled in below as nodata is, not a cliff to sharpen
            pan_valid = pan_valid & ((pan != fill) | ms_up)
        valid = pan_valid & ms_up
    pan = fill_invalid(pan, pan_valid)
    where = (tile.y0 - rows[0], tile.x0 - cols[0])
    if scene is not None:
        return (scene.normalise_pan(pan), scene.normalise_ms(lms), scene.normalise_ms(ms),
                valid, where)
    if in_dn:
        to_ms = source.scale / source.pan_scale
        return (pan if to_ms == 1 else pan * np.float32(to_ms)), lms, ms, valid, where
    scale = np.float32(source.scale)
    return pan / np.float32(source.pan_scale), lms / scale, ms / scale, valid, where


def scene_normalisation(source: Source, method):
    """Scene statistics for a method whose ``normalisation`` is a scene kind (deep
    models trained that way, ``radiometry``), else None: the constant scale."""
    kind = getattr(method, "normalisation", "scale")
    if kind == "scale":
        return None
    from .radiometry import SceneNormalisation

    return SceneNormalisation.from_source(source, kind=kind)


def tile_for(method, tile: int | None = None) -> int:
    """The tile size asked for, else the method's own (``preferred_tile``: deep models on
    the CPU), else ``DEFAULT_TILE``."""
    return tile or getattr(method, "preferred_tile", DEFAULT_TILE)


def run_tiled(source: Source, method, height: int, width: int, sink: CellSink, *,
              tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
              progress: Progress | None = None, cancelled: IsCancelled | None = None,
              scene=None, threads: bool = True, depth: int | None = None,
              strip_rows: int | None = None) -> None:
    """Apply ``method`` over the whole output grid; hand finished cells to ``sink``.

    ``tile`` None: ``tile_for(method)``.
    ``sink(y0, x0, values (B, h, w) in digital numbers, valid (h, w))`` receives each
    output cell once, in row-major order of completion. A method whose
    ``normalisation`` is a scene kind gets the scene statistics (computed once here
    unless ``scene`` gives them) for every tile; others the constant scale.

    With ``threads`` a reader thread reads and prepares the next tiles and a writer
    thread blends and hands out cells while the method runs on the current ones (GDAL
    I/O and numpy release the GIL); the results are the same as without. A method
    with ``run_batch`` and a ``batch_size`` above one gets consecutive tiles of one
    shape together. ``depth``: tiles the reader and the writer may be ahead or behind
    (None: two per batch). Classical methods take 1 (``pipeline``): their tiles take
    tens of milliseconds, so one tile ahead keeps both cores busy, and each tile fewer
    in flight is about 30 MB fewer (issue 18: mtf-glp-hpm's peak on a 4096 x 4096
    4-band scene went from 569 to 493 MiB). ``strip_rows``: disjoint full-width strips
    of that many rows instead of tiles (``tiling.strip_rows``; pixel-wise methods).
    """
    grid = TileGrid(height, width, tile_for(method, tile), overlap, strip_rows)
    if scene is None:
        scene = scene_normalisation(source, method)
    halo = method.halo  # measured once, before the threads start
    in_dn = scene is None and getattr(method, "scale_equivariant", False)  # (issue 18: two passes fewer)
    finish = _Finisher(grid, np.float32(1.0 if in_dn else source.scale), scene, sink)
    tiles = list(grid)
    batch = getattr(method, "batch_size", 1)
    post = getattr(method, "post", None)  # the steps after a network run on the writer thread (wrapped)
    done = 0
    with _Stages(threads, depth=depth or 2 * batch) as stages:
        reads = stages.prefetch(lambda t: read_tile(source, t, halo, scene, in_dn), tiles)
        for group in _batches(reads, batch):
            if cancelled is not None and cancelled():
                raise Cancelled("Cancelled by the user; nothing was written.")
            outs = _apply(method if post is None else method.network, [read[:3] for _, read in group], scene)
            for (t, read), out in zip(group, outs):
                stages.write(_finish_tile, finish, post, scene, t, out, read)
            done += len(group)
            if progress is not None:
                progress(done / len(tiles))


def _finish_tile(finish, post, scene, t: Tile, out: np.ndarray, read: tuple) -> None:
    """A tile's remaining steps (``post``, if any) and its finishing, on the writer thread."""
    finish(t, out if post is None else post(out, read[:3], scene), read[3], read[4])


def _apply(method, inputs: list[tuple], scene) -> list[np.ndarray]:
    """The method on a group of tiles; one that ``takes_scene`` (``anchor.Anchored``)
    also gets the scene normalisation its tiles were made with."""
    extra = {"scene": scene} if getattr(method, "takes_scene", False) else {}
    if len(inputs) > 1:
        return method.run_batch(inputs, **extra)
    return [method(*inputs[0], **extra)]


def _batches(reads, size: int):
    """Consecutive (tile, read) pairs in groups of at most ``size`` with equal input shapes."""
    shapes = lambda entry: tuple(a.shape for a in entry[1][:3])
    group = []
    for item in reads:
        if group and (len(group) == size or shapes(group[0]) != shapes(item)):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


class _Finisher:
    """Crops a tile's output to the tile, maps it back to digital numbers, blends it and
    hands the completed cells to the sink (in tile order: the blender needs it)."""

    def __init__(self, grid: TileGrid, scale: np.float32, scene, sink: CellSink):
        self.blender, self.scale, self.scene, self.sink = grid.blender(), scale, scene, sink
        self.disjoint = grid.disjoint

    def __call__(self, t: Tile, out: np.ndarray, valid: np.ndarray, where: tuple[int, int]) -> None:
        (dy, dx), h, w = where, t.y1 - t.y0, t.x1 - t.x0
        out, valid = out[:, dy:dy + h, dx:dx + w], valid[dy:dy + h, dx:dx + w]
        if self.disjoint:  # a tile is a cell: no stack, no blending (issue 18)
            if self.scene is not None:
                out = self.scene.denormalise_ms(out)
            elif self.scale != 1:
                out = out * self.scale
            self.sink(t.y0, t.x0, out if valid.all() else out * valid, valid)
            return
        if self.scene is not None:
            out = self.scene.denormalise_ms(out)
            mask = valid[None].astype(np.float32)
            stack = np.concatenate([out * mask, mask])
        else:  # the same values, written once into one array (issue 18: two passes fewer)
            stack = np.empty((out.shape[0] + 1, h, w), np.float32)
            if self.scale == 1:
                stack[:-1] = out
            else:
                np.multiply(out, self.scale, out=stack[:-1])
            stack[-1] = valid
            if not valid.all():
                stack[:-1] *= stack[-1]
        for y0, x0, cell in self.blender.add(t, stack):
            self.sink(y0, x0, cell[:-1], cell[-1] > 0.5)


class _Stages:
    """A reader thread ahead of the computation and a writer thread behind it, each at
    most ``depth`` tiles away; or, without threads, the same calls made in line.

    Leaving the block (normally, on an error or a cancel) waits for the writer and
    drops unstarted reads, so nothing touches the output after ``run_tiled`` returns;
    an error in either thread is raised in the caller's.
    """

    def __init__(self, threads: bool, depth: int = 2):
        self.threads, self.depth = threads, max(1, depth)
        self._writes: deque[Future] = deque()
        self._failed = False

    def __enter__(self) -> "_Stages":
        if self.threads:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="pansharpen-read")
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="pansharpen-write")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.threads:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._writer.shutdown(wait=True, cancel_futures=exc_type is not None)
        if exc_type is None:
            while self._writes:
                self._writes.popleft().result()

    def prefetch(self, read: Callable, items: list):
        """Yield (item, read(item)) in order, reading up to ``depth`` items ahead."""
        if not self.threads:
            yield from ((item, read(item)) for item in items)
            return
        pending: deque = deque()
        for item in items:
            pending.append((item, self._reader.submit(read, item)))
            if len(pending) > self.depth:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()

    def _guarded(self, fn: Callable, *args) -> None:
        """Writes queued behind a failed one are dropped, not attempted."""
        if self._failed:
            return
        try:
            fn(*args)
        except BaseException:
            self._failed = True
            raise

    def write(self, fn: Callable, *args) -> None:
        """Run ``fn(*args)`` on the writer thread (in submission order)."""
        if not self.threads:
            fn(*args)
            return
        self._writes.append(self._writer.submit(self._guarded, fn, *args))
        while self._writes and (self._writes[0].done() or len(self._writes) > self.depth):
            self._writes.popleft().result()

"""The one job every front-end runs: sharpen a PAN/MS pair of files into a GeoTIFF."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable

from osgeo import gdal

from .errors import PansharpenError
from .families import choose_model
from .methods import prepare
from .raster_io import PairInfo, RasterPair, Window
from .streaming import run_tiled, tile_for
from .tiling import DEFAULT_OVERLAP
from .writer import GeoTiffWriter, check_output

GDAL_CACHE_BYTES = 16 * 1024 * 1024  # keeps memory flat however large the raster


@dataclass
class SharpenRequest:
    pan: str
    ms: str
    output: str
    method: str = "auto"
    pan_band: int | None = None  # 1-based; required when the PAN has several bands
    weights: str | None = None
    device: str = "auto"
    tile: int | None = None  # PAN pixels a side; None: the method's (streaming.tile_for)
    overlap: int = DEFAULT_OVERLAP
    overwrite: bool = False
    float32: bool = False
    extent: tuple[float, float, float, float] | None = None  # PAN CRS: xmin, ymin, xmax, ymax
    sensor: str | None = None
    threads: bool = True  # reader and writer threads beside the computation (streaming)
    half: bool = True  # deep models in float16 on CUDA, bfloat16 on a CPU that has it (False: float32)


@dataclass
class SharpenResult:
    output: str
    method: str
    info: PairInfo
    seconds: float


def inspect_pair(pan: str, ms: str, pan_band: int | None = None, sensor: str | None = None) -> PairInfo:
    """Check a pair and describe it (ratio, bands, grid, overlap, warnings); reads no pixels."""
    return RasterPair(pan, ms, pan_band, sensor).info()


def sharpen(request: SharpenRequest, progress: Callable[[float], None] | None = None,
            cancelled: Callable[[], bool] | None = None,
            log: Callable[[str], None] | None = None) -> SharpenResult:
    """Sharpen ``request.pan`` + ``request.ms`` into ``request.output``.

    Every check happens before anything is written; the output appears under its
    name only when complete (see ``writer``). Raises ``PansharpenError`` for bad input
    and ``Cancelled`` when ``cancelled()`` turns true.
    """
    start = time.perf_counter()
    say = log or (lambda message: None)
    check_output(request.output, request.overwrite)
    if request.tile is not None:
        _check_tiling(request.tile, request.overlap)
    pair = RasterPair(request.pan, request.ms, request.pan_band, request.sensor)
    if request.extent is not None:
        pair.window = _restrict(pair, request.extent)
    info = pair.info()
    for warning in info.warnings:
        say(warning)
    weights, name = request.weights, request.method
    if name in ("auto", "", None):
        choice = choose_model(info)
        say(choice.reason)
        name, weights = choice.method, choice.weights
    method = prepare(name, ratio=pair.ratio, bands=pair.bands, sensor=pair.sensor,
                     weights=weights, device=request.device, half=request.half)
    tile = tile_for(method, request.tile)
    _check_tiling(tile, request.overlap)
    say(f"{name}: {pair.window.width} x {pair.window.height} pixels, ratio {pair.ratio}, "
        f"{pair.bands} bands, tiles of {tile} with {request.overlap} overlap.")
    data_type = "Float32" if request.float32 else info.data_type
    nodata = info.nodata if info.nodata is not None else (0 if info.resampled else None)
    with _gdal_cache(GDAL_CACHE_BYTES), GeoTiffWriter(
        request.output, width=pair.window.width, height=pair.window.height, bands=pair.bands,
        geotransform=pair.output_geotransform, crs_wkt=pair.pan_ds.GetProjection(),
        data_type=data_type, nodata=nodata, band_names=pair.band_names,
        overwrite=request.overwrite,
    ) as writer:
        run_tiled(pair, method, pair.window.height, pair.window.width, writer.write,
                  tile=tile, overlap=request.overlap,
                  progress=progress, cancelled=cancelled, threads=request.threads)
        writer.commit()
    seconds = time.perf_counter() - start
    say(f"Wrote {request.output} in {seconds:.1f} s.")
    return SharpenResult(request.output, name, info, seconds)


def _check_tiling(tile: int, overlap: int) -> None:
    if overlap < 0 or tile < 64 or tile <= 2 * overlap:
        raise PansharpenError(
            f"Tile size {tile} with overlap {overlap} does not work: use a tile of at least "
            f"64 pixels and an overlap under half the tile (default overlap {DEFAULT_OVERLAP})."
        )


def _restrict(pair: RasterPair, extent) -> Window:
    """The output window cut to an extent in the PAN CRS (whole PAN pixels)."""
    xmin, ymin, xmax, ymax = extent
    gt, w = pair.output_geotransform, pair.window
    c0 = max(0, int((xmin - gt[0]) // gt[1]))
    c1 = min(w.width, int(-((gt[0] - xmax) // gt[1])))
    r0 = max(0, int((ymax - gt[3]) // gt[5]))
    r1 = min(w.height, int(-((gt[3] - ymin) // gt[5])))
    if c1 - c0 < 2 * pair.ratio or r1 - r0 < 2 * pair.ratio:
        raise PansharpenError(
            "The requested extent does not overlap the PAN/MS overlap: pan the map onto the "
            "layers or choose another extent."
        )
    return Window(w.x0 + c0, w.y0 + r0, c1 - c0, r1 - r0)


@contextlib.contextmanager
def _gdal_cache(nbytes: int):
    previous = gdal.GetCacheMax()
    gdal.SetCacheMax(min(previous, nbytes))
    try:
        yield
    finally:
        gdal.SetCacheMax(previous)

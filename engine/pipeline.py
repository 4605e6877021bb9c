"""The one job every front-end runs: sharpen a PAN/MS pair of files into a GeoTIFF."""
from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from osgeo import gdal

from .classical import CLASSICAL
from .errors import Cancelled, PansharpenError
from .families import choose_model
from .gdal_errors import gdal_exceptions
from .anchor import ANCHOR_FALLBACK, ANCHOR_METHOD, anchor_method, check_anchor, default_share
from .band_order import Reordered
from .methods import deep_options, prepare
from .raster_io import PairInfo, RasterPair, Window
from .streaming import run_tiled, tile_for
from .tiling import DEFAULT_OVERLAP, strip_rows
from .writer import (BLOCK, GeoTiffWriter, NUMPY_TYPES, check_free_space, check_not_an_input, check_output,
                     scratch_bytes)

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
    cog: bool = False  # a Cloud Optimized GeoTIFF (default: a tiled GeoTIFF with internal overviews)
    overviews: bool = True  # internal averaged overviews (False: the full resolution only, as gdal_pansharpen.py)
    check: bool = True  # deep methods: score against the classical ones on a sample first (guard)
    adapt: float | None = None  # seconds of fine-tuning the deep model on this scene (adapt); None: none
    consistent: bool = True  # deep methods: project the output onto the MS (consistency)
    anchor: float | None = None  # deep methods: share of the classical anchor (anchor); None: anchor.default_share
    register: bool = False  # deep methods: move the PAN onto the MS first (registration)


@dataclass
class SharpenResult:
    output: str
    method: str
    info: PairInfo
    seconds: float
    reason: str = ""  # why this method (auto's choice, the check's numbers)


@gdal_exceptions()
def inspect_pair(pan: str, ms: str, pan_band: int | None = None, sensor: str | None = None) -> PairInfo:
    """Check a pair and describe it (ratio, bands, grid, overlap, warnings); reads no pixels."""
    return RasterPair(pan, ms, pan_band, sensor).info()


@gdal_exceptions()  # the writer, guard and adaptation call GDAL too
def sharpen(request: SharpenRequest, progress: Callable[[float], None] | None = None,
            cancelled: Callable[[], bool] | None = None,
            log: Callable[[str], None] | None = None,
            prepare_method: Callable | None = None) -> SharpenResult:
    """Sharpen ``request.pan`` + ``request.ms`` into ``request.output``.

    Every check happens before anything is written; the output appears under its
    name only when complete (see ``writer``). Raises ``PansharpenError`` for bad input
    and ``Cancelled`` when ``cancelled()`` turns true. ``prepare_method`` replaces
    ``methods.prepare`` (same signature), e.g. to reuse loaded models (``batch``).
    """
    start = time.perf_counter()
    say = log or (lambda message: None)
    check_not_an_input(request.output, [("PAN", request.pan), ("MS", request.ms)])
    check_output(request.output, request.overwrite)
    if request.tile is not None:
        _check_tiling(request.tile, request.overlap)
    if request.anchor is not None:
        check_anchor(request.anchor)
    pair = RasterPair(request.pan, request.ms, request.pan_band, request.sensor)
    for warning in pair.info().warnings:  # about the pair, not the extent (e.g. a preview)
        say(warning)
    # the file's band names reach every deep model made for this run (band_order)
    prepare_method = functools.partial(prepare_method or prepare, band_names=tuple(pair.band_names))
    whole = pair.window
    if request.extent is not None:
        pair.window = _restrict(pair, request.extent)
        say(f"Only the extent asked for: {pair.window.width} x {pair.window.height} of the "
            f"{whole.width} x {whole.height} output pixels.")
    info = pair.info()
    weights, name = request.weights, request.method
    reasons = []
    auto = name in ("auto", "", None)
    if auto and weights:  # the file's architecture decides
        name = _architecture_of(weights)
        reasons.append(f"auto: your weights file {weights} holds a {name} model: using it.")
        auto = False  # the user chose the model: the check may warn, not replace it
    elif auto:
        choice = choose_model(info)
        reasons.append(choice.reason)
        name, weights = choice.method, choice.weights
    for line in reasons:
        say(line)
    anchor = default_share(pair.sensor) if request.anchor is None else request.anchor
    verdict = None
    if request.check and name not in CLASSICAL:
        name, weights, line, verdict = _guard(pair, name, weights, auto, request, anchor, prepare_method)
        reasons.append(line)
        say(line)
    elif name not in CLASSICAL:
        say(f"Not checked (the check is off): running {name} at the anchor share {anchor:g}.")
    run_progress = progress
    if request.adapt and name not in CLASSICAL:
        base = weights
        weights, line, adapted = _adapt(pair, name, weights, request, progress, cancelled)
        reasons.append(line)
        say(line)
        if adapted and verdict is not None and name in verdict.scores:
            weights, line = _check_adapted(name, base, weights, verdict, request, anchor, prepare_method)
            reasons.append(line)
            say(line)
        if progress is not None:
            run_progress = lambda f: progress(0.5 + 0.5 * f)
    options = deep_options(name, request.consistent, anchor)
    method = prepare_method(name, ratio=pair.ratio, bands=pair.bands, sensor=pair.sensor,
                            weights=weights, device=request.device, half=request.half, **options)
    if name not in CLASSICAL and anchor and anchor_method(pair.sensor) != ANCHOR_METHOD:
        say(f"Note: no sensor is known for this pair, so the classical share of the output is "
            f"{ANCHOR_FALLBACK}, not the haze-corrected {ANCHOR_METHOD}, and the MTF gains are the "
            "defaults: name the sensor (the sensor option) for both.")
    network = getattr(method, "network", method)
    if isinstance(network, Reordered):
        say(f"The MS names its bands {', '.join(pair.band_names)}; {name} takes them as "
            f"{', '.join(network.metadata['bands'])}: they are given to it in that order, and the "
            "output keeps the MS's.")
    tile = tile_for(method, request.tile)
    _check_tiling(tile, request.overlap)
    pixelwise = getattr(method, "pixelwise", False)
    overlap = 0 if pixelwise else request.overlap  # no seams to hide
    rows = strip_rows(tile, pair.window.width, BLOCK) if pixelwise else None
    _check_tile_memory(tile, overlap, pair, method)
    source = pair
    if request.register and name not in CLASSICAL:
        source, line = _register(pair, whole)
        say(line)
    cut = f"full-width strips of {rows} rows" if rows else f"tiles of {tile} with {overlap} overlap"
    say(f"{name}: {pair.window.width} x {pair.window.height} pixels, ratio {pair.ratio}, "
        f"{pair.bands} bands, {cut}.")
    data_type = "Float32" if request.float32 else info.data_type
    # no nodata value the data can take: the inputs' own if it fits, else a mask band (writer)
    nodata = info.nodata if _fits(info.nodata, data_type) else None
    check_free_space(request.output, scratch_bytes(pair.window.width, pair.window.height, pair.bands, data_type))
    with _gdal_cache(GDAL_CACHE_BYTES), GeoTiffWriter(
        request.output, width=pair.window.width, height=pair.window.height, bands=pair.bands,
        geotransform=pair.output_geotransform, crs_wkt=pair.pan_ds.GetProjection(),
        data_type=data_type, nodata=nodata, band_names=pair.band_names,
        overwrite=request.overwrite, cog=request.cog, overviews=request.overviews,
    ) as writer:
        run_tiled(source, method, pair.window.height, pair.window.width, writer.write,
                  tile=tile, overlap=overlap,
                  progress=run_progress, cancelled=cancelled, threads=request.threads,
                  depth=1 if name in CLASSICAL else None, strip_rows=rows)
        writer.commit()
    seconds = time.perf_counter() - start
    say(f"Wrote {request.output} in {seconds:.1f} s.")
    return SharpenResult(request.output, name, info, seconds, " ".join(reasons))


def _register(pair: RasterPair, whole):
    """(source, message): the pair with its PAN moved onto the MS where a sample of the
    scene shows an offset (``registration``), else the pair as it is. The sample is the
    whole scene's (``whole``: its window), as the statistics are: an extent gets the
    values of the whole-scene run."""
    import copy

    from . import registration
    from .guard import read_sample

    scene = copy.copy(pair)
    scene.window = whole
    try:
        sample = read_sample(scene, registration.SAMPLE)
    except PansharpenError as exc:
        return pair, f"PAN and MS not registered: {exc}."
    dy, dx, corr = registration.estimate_shift(sample.pan, sample.ms, pair.ratio, pair.sensor)
    if not registration.worth_applying(dy, dx, corr):
        return pair, (f"PAN and MS registered as they are (best offset {dy:+.3f}, {dx:+.3f} PAN pixels, "
                      f"correlation {corr:.3f}).")
    return registration.Registered(pair, (dy, dx)), (
        f"Registration: the PAN moved by {dy:+.3f} rows, {dx:+.3f} columns of PAN pixels onto the MS "
        f"(correlation {corr:.3f}).")


def _adapt(pair: RasterPair, name: str, weights, request: SharpenRequest, progress, cancelled):
    """(weights, message, whether adapted weights are used): ``adapt.adapt`` of the chosen
    deep model to this scene (the first half of the progress bar), reused from the cache
    when done before."""
    from . import adapt
    from .methods import shipped_weights_for

    base = weights or shipped_weights_for(name, pair.ratio, pair.bands, pair.sensor)
    half = (lambda f: progress(0.5 * f)) if progress is not None else None
    try:
        result = adapt.adapt(pair, base, seconds=float(request.adapt), device=request.device,
                             progress=half, cancelled=cancelled)
    except Cancelled:
        raise
    except (PansharpenError, RuntimeError, MemoryError) as exc:  # e.g. too small a scene: the base model runs
        return base, f"Not adapted: {exc}.", False
    return (result.path or base), result.summary(), bool(result.path)


def _guard(pair: RasterPair, name: str, weights, auto: bool, request: SharpenRequest, anchor: float,
           prepare_method=None):
    """(method, weights, message, verdict or None): ``guard.check`` on a sample of the
    scene, the deep model at the run's anchor share; ``auto`` switches to the winner, an
    explicit deep method runs anyway with a warning."""
    from . import guard

    try:
        verdict = guard.check(pair, name, weights, device=request.device, half=request.half,
                              prepare_method=prepare_method, consistent=request.consistent,
                              anchor=anchor, register=request.register)
    except (PansharpenError, RuntimeError, ValueError, MemoryError) as exc:  # optional: never fatal
        return name, weights, f"Not checked against the classical methods ({exc}).", None
    if verdict.undecided:  # auto too runs the deep model (guard's module doc)
        return name, weights, (f"Not checked against the classical methods: {verdict.summary()}; "
                               f"running {name} at the anchor share {anchor:g}."), None
    if not auto and verdict.method != name:
        return name, weights, (f"Warning: {verdict.summary()}: {verdict.method} would be better "
                               f"here; running {name} as asked."), verdict
    return (verdict.method, verdict.weights, f"Checked {verdict.summary()}: using {verdict.method}.",
            verdict)


def _check_adapted(name: str, base, adapted: str, verdict, request: SharpenRequest, anchor: float,
                   prepare_method=None):
    """(weights, message): the check again, on its sample (not read again), for the
    adapted model at the same anchor share; the base model (``base``) runs instead when
    the adapted one scores a lower Q2n there (docs/adaptation.md)."""
    from . import guard

    before = verdict.scores[name]["Q2n"]
    try:
        after = guard.judge(verdict.sample, name, adapted, device=request.device, half=request.half,
                            prepare_method=prepare_method, consistent=request.consistent,
                            anchor=anchor, register=request.register)
    except (PansharpenError, RuntimeError, ValueError, MemoryError) as exc:  # optional: never fatal
        return adapted, f"The adapted model was not checked ({exc})."
    if name not in after.scores:
        return adapted, f"The adapted model was not checked: {after.summary()}."
    score = after.scores[name]["Q2n"]
    if score < before:
        return base, (f"Adapted {name}: Q2n {score:.3f} on the check's sample, below the base "
                      f"model's {before:.3f}: running the base model.")
    return adapted, f"Adapted {name}: Q2n {score:.3f} on the check's sample (base model {before:.3f})."


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


def _architecture_of(weights: str) -> str:
    """The architecture a weights file declares (read from its header; no PyTorch)."""
    from . import registry
    from .families import read_metadata

    if os.path.isdir(weights):
        raise PansharpenError(f"The weights path {weights} is a folder, not a file: give the .safetensors file.")
    if not os.path.isfile(weights):
        raise PansharpenError(f"The weights file {weights} does not exist: check the path.")
    try:
        architecture = read_metadata(weights).get("architecture")
    except (PansharpenError, OSError, ValueError, AttributeError, RecursionError):
        architecture = None
    if not registry.is_deep(architecture):
        raise PansharpenError(
            f"The weights file {weights} is not a .safetensors model that names its architecture "
            "(pickles, .pt and .ckpt files are never loaded): use weights written by `pansharpen train`."
        )
    return architecture


def _fits(nodata: float | None, data_type: str) -> bool:
    """Whether the output type can store this nodata value exactly."""
    if nodata is None:
        return False
    dtype = NUMPY_TYPES[data_type]
    if np.issubdtype(dtype, np.floating):
        return True
    info = np.iinfo(dtype)
    return float(nodata).is_integer() and info.min <= nodata <= info.max


def _available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_tile_memory(tile: int, overlap: int, pair: RasterPair, method) -> None:
    """Refuse a tile whose buffers (PAN, MS, result and blending planes of the tiles in
    flight, and the blender's overlap strip) would not fit in the memory available."""
    halo = int(getattr(method, "halo", 0)) + overlap
    h, w = min(tile, pair.window.height) + 2 * halo, min(tile, pair.window.width) + 2 * halo
    planes = 2 * pair.bands + 2
    in_flight = 2 * getattr(method, "batch_size", 1) + 2
    need = 4 * (h * w * planes * in_flight + (pair.bands + 1) * (2 * overlap + 1) * pair.window.width)
    available = _available_memory()
    if available is not None and need > available:
        raise PansharpenError(
            f"Tiles of {tile} pixels need about {need / 1e9:.1f} GB of memory but {available / 1e9:.1f} GB "
            f"is available: use a smaller --tile (the default, 1024, needs far less)."
        )

"""GeoTIFF output that never leaves a half-written file under the requested name.

Cells are gathered, as they finish, into strips of whole block rows (256 output rows,
the full width); each complete strip goes to GDAL once, straight into the compressed
scratch file beside the output, and is averaged into the internal overviews there and
then (``_Strips``). ``commit`` closes that file and renames it onto the requested
name. A COG (overviews first) still goes the former way: an uncompressed scratch file,
translated into a second one at commit. Issue 18 (brovey, 4096 x 4096, 4 bands): that
former way (then also for plain GeoTIFFs: a second DEFLATE pass by ``gdal.Translate``,
then overviews that decompressed the full resolution again) took 3.3 of the run's 5.0
s; the single pass costs about 2.3 s of CPU (DEFLATE of the full resolution 1.65 s, the
overviews 0.7 s), on the writer thread while the next tiles compute. A failure or a
cancel removes the scratch files; so does SIGTERM
for the ``pansharpen`` command (``cli``), and scratch files whose process is gone (a
SIGKILL) are removed by the next writer in the same folder: their names carry the pid.
The rename never replaces a file that appeared meanwhile unless overwrite was asked.

Pixels no input covers are nodata: with the input's nodata value where it has one
(valid pixels that would take that value are moved off it), else with an internal
mask band, created as soon as the first invalid pixel arrives.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid

import numpy as np
from osgeo import gdal

from .errors import PansharpenError

BLOCK = 256  # pixels a side of the output's blocks
CREATION_OPTIONS = ["TILED=YES", f"BLOCKXSIZE={BLOCK}", f"BLOCKYSIZE={BLOCK}", "BIGTIFF=IF_SAFER"]
FINAL_OPTIONS = CREATION_OPTIONS + ["COMPRESS=DEFLATE", "PREDICTOR=2", "NUM_THREADS=ALL_CPUS"]
NUMPY_TYPES = {
    "Byte": np.uint8, "UInt16": np.uint16, "Int16": np.int16, "Float32": np.float32,
}
SCRATCH = re.compile(r"^\..+\.(?:partial|packing)-(\d+)-[0-9a-f]{8}\.tif(?:\.aux\.xml)?$")
COLOURS = {"red": gdal.GCI_RedBand, "green": gdal.GCI_GreenBand, "blue": gdal.GCI_BlueBand}
FREE_SPACE_MARGIN = 1.1  # over the estimate: GeoTIFF overhead


def colour_interpretation(name: str) -> int:
    """Red/Green/Blue for bands so named, Undefined for every other band (never Alpha)."""
    return COLOURS.get(name.strip().lower(), gdal.GCI_Undefined)


COG_OPTIONS = ["COMPRESS=DEFLATE", "PREDICTOR=YES", "BLOCKSIZE=256", "OVERVIEWS=AUTO",
               "RESAMPLING=AVERAGE", "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS"]


def overview_factors(width: int, height: int, smallest: int = 256) -> list[int]:
    """2, 4, 8... while the overview's longer side stays at least ``smallest`` pixels."""
    factors, factor = [], 2
    while max(width, height) // factor >= smallest:
        factors.append(factor)
        factor *= 2
    return factors


def add_overviews(path: str) -> None:
    """Internal overviews (averaged, DEFLATE), so QGIS shows a large result at once."""
    ds = gdal.Open(path, gdal.GA_Update)
    build_overviews(ds, "AVERAGE")
    ds = None


def build_overviews(ds, resampling: str) -> list[int]:
    """Build (or, with "NONE", only create, empty) the internal overview levels of an
    open dataset, DEFLATE-compressed; returns their factors."""
    factors = overview_factors(ds.RasterXSize, ds.RasterYSize)
    if factors:
        options = {"COMPRESS_OVERVIEW": "DEFLATE", "PREDICTOR_OVERVIEW": "2"}
        previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in options}
        try:
            for key, value in options.items():
                gdal.SetThreadLocalConfigOption(key, value)
            ds.BuildOverviews(resampling, factors)
        finally:
            for key, value in previous.items():
                gdal.SetThreadLocalConfigOption(key, value)
    return factors


def sum_type(dtype, levels: int):
    """The type block sums of ``dtype`` pixels are kept in over ``levels`` halvings:
    float64 for floats; int32 for integers while the largest sum (4^levels times the
    type's extreme) fits, which it does for every 16-bit type up to 7 levels; else int64."""
    if np.issubdtype(dtype, np.floating):
        return np.dtype(np.float64)
    info = np.iinfo(dtype)
    return np.dtype(np.int32 if max(abs(info.min), info.max) * 4**levels < 2**31 else np.int64)


def pair_sums(total: np.ndarray, dtype=None) -> np.ndarray:
    """Sums (in ``dtype``, default the input's) of the 2 x 2 blocks of (bands, h, w), an
    odd last row or column counted twice (so that a partial block at an edge averages
    the pixels it has). Row pairs first: whole contiguous rows, then one strided add."""
    if total.shape[1] % 2 or total.shape[2] % 2:
        total = np.pad(total, ((0, 0), (0, total.shape[1] % 2), (0, total.shape[2] % 2)), mode="edge")
    rows = total[:, 0::2].astype(dtype or total.dtype)
    rows += total[:, 1::2]
    return rows[:, :, 0::2] + rows[:, :, 1::2]


def average(total: np.ndarray, count: int, dtype) -> np.ndarray:
    """Block sums over ``count`` pixels (a power of 2) as averages of ``dtype`` (integers
    rounded half up: the shift is the floor division, negative sums included)."""
    if np.issubdtype(dtype, np.floating):
        return (total / count).astype(dtype)
    return ((total + count // 2) >> (count.bit_length() - 1)).astype(dtype)


def scratch_bytes(width: int, height: int, bands: int, data_type: str) -> int:
    """Disk a run needs at most: the uncompressed scratch file and its compressed copy."""
    return 2 * width * height * bands * np.dtype(NUMPY_TYPES[data_type]).itemsize


def check_free_space(path: str, nbytes: int) -> None:
    """Refuse, before any work, an output whose scratch files would not fit on its disk."""
    folder = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(folder).free
    if nbytes * FREE_SPACE_MARGIN > free:
        raise PansharpenError(
            f"The output needs about {_size(nbytes * FREE_SPACE_MARGIN)} of disk while it is written, "
            f"but {folder} has {_size(free)} free: free some space, choose another folder, or sharpen "
            "a smaller extent."
        )


def _size(nbytes: float) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def remove_stale_scratch(folder: str) -> list[str]:
    """Remove the scratch files of writers whose process no longer exists (killed)."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = SCRATCH.match(name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))
                removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or not a pid we can judge: keep the file
    return True


@contextlib.contextmanager
def _internal_masks():
    """GeoTIFF masks inside the file (not a .msk beside it), in this thread."""
    previous = gdal.GetThreadLocalConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    gdal.SetThreadLocalConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_TIFF_INTERNAL_MASK", previous)


def _write_failed(path: str, exc: BaseException) -> PansharpenError:
    folder = os.path.dirname(os.path.abspath(path))
    return PansharpenError(
        f"Writing {path} failed ({' '.join(str(exc).split())[:160]}): check the free space and "
        f"permissions of {folder}, or choose another folder."
    )


def check_output(path: str, overwrite: bool) -> None:
    """Refuse, before any work, an output that exists or cannot be written."""
    if not path:
        raise PansharpenError("No output file given: choose where to write the result.")
    if not path.lower().endswith((".tif", ".tiff")):
        raise PansharpenError(f"The output {path} must be a GeoTIFF (.tif or .tiff).")
    if os.path.isdir(path):
        raise PansharpenError(f"The output {path} is a folder: give a file name, e.g. {os.path.join(path, 'sharpened.tif')}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PansharpenError(f"The output folder {folder} does not exist: create it or choose another.")
    if not _writable(folder):
        raise PansharpenError(f"The output folder {folder} is not writable: choose another folder.")
    if os.path.exists(path) and not overwrite:
        raise PansharpenError(
            f"The output {path} already exists: choose another name or ask to overwrite it."
        )


def check_not_an_input(path: str, inputs) -> None:
    """Refuse an output that is an input, or a file an input reads (a VRT's sources):
    by path, symbolic link or hard link. ``inputs``: (role, path) pairs."""
    if not path:
        return
    target = os.path.realpath(path)
    for role, source in inputs:
        if not source:
            continue
        for used in _files_read(source):
            same = os.path.realpath(used) == target
            if not same and os.path.exists(used) and os.path.exists(path):
                with contextlib.suppress(OSError):
                    same = os.path.samefile(used, path)
            if same:
                through = "" if used == source else f" (read through {source})"
                raise PansharpenError(
                    f"The output {path} is the {role} input{through}: writing it would destroy "
                    "that input; choose another output file."
                )


def _files_read(source: str) -> list[str]:
    """The file an input names and every file GDAL reads for it (a VRT's sources)."""
    files = [source]
    try:
        ds = gdal.OpenEx(source, gdal.OF_RASTER)
        files += list(ds.GetFileList() or []) if ds is not None else []
    except RuntimeError:
        pass
    return files


def _writable(folder: str) -> bool:
    """Try to create a file: permission bits say nothing for root or read-only mounts."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            return True
    except OSError:
        return False


class GeoTiffWriter:
    """Write a (bands, height, width) raster cell by cell; publish it atomically."""

    def __init__(self, path: str, *, width: int, height: int, bands: int,
                 geotransform, crs_wkt: str, data_type: str, nodata: float | None,
                 band_names: list[str], overwrite: bool = False, cog: bool = False,
                 overviews: bool = True):
        check_output(path, overwrite)
        self.path = path
        self.cog = cog  # a Cloud Optimized GeoTIFF (overviews first) instead of a tiled GeoTIFF
        self.overviews = overviews  # internal averaged overviews (QGIS draws a large result at once)
        self.dtype = NUMPY_TYPES[data_type]
        self.nodata = nodata
        self.overwrite = overwrite
        self._mask = None  # the internal mask band, made at the first invalid pixel
        self._any_valid = False
        folder, name = os.path.split(os.path.abspath(path))
        remove_stale_scratch(folder)
        tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._scratch = os.path.join(folder, f".{name}.partial-{tag}.tif")
        self._packed = os.path.join(folder, f".{name}.packing-{tag}.tif")
        self._ds = None
        self._strips = None  # compressed in one pass (_Strips); a COG takes the scratch file
        try:  # not yet inside a with block: a failure or a signal here must clean up too
            self._create(width, height, bands, data_type, geotransform, crs_wkt, nodata, band_names)
        except BaseException:
            self.abort()
            raise

    def _create(self, width, height, bands, data_type, geotransform, crs_wkt, nodata, band_names) -> None:
        failed = None
        try:
            self._ds = gdal.GetDriverByName("GTiff").Create(
                self._scratch if self.cog else self._packed, width, height, bands,
                gdal.GetDataTypeByName(data_type), options=CREATION_OPTIONS if self.cog else FINAL_OPTIONS,
            )
            if not self.cog:
                self._strips = _Strips(self, build_overviews(self._ds, "NONE") if self.overviews else [])
        except RuntimeError as exc:
            failed = PansharpenError(f"Cannot create the output in {os.path.dirname(self._scratch)} ({exc}): "
                                     "choose another folder.")
        if failed is not None:
            raise failed
        self._ds.SetGeoTransform(tuple(geotransform))
        self._ds.SetProjection(crs_wkt)
        for b in range(bands):
            band = self._ds.GetRasterBand(b + 1)
            if not re.fullmatch(r"band \d+", band_names[b]):  # not the engine's stand-in for none
                band.SetDescription(band_names[b])  # (QGIS would show "Band 1: band 1")
            band.SetColorInterpretation(colour_interpretation(band_names[b]))
            if nodata is not None:
                band.SetNoDataValue(nodata)

    def write(self, y0: int, x0: int, values: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write float values (bands, h, w) at (y0, x0), cast to the output type."""
        if valid is not None and valid.all():
            valid = None
        data = values if self._gdal_casts(valid) else to_dtype(values, self.dtype)
        self._any_valid = self._any_valid or valid is None or bool(valid.any())
        if self.nodata is not None:
            _off_nodata(data, self.nodata, valid)
        failed = None
        try:
            if valid is not None:
                if self.nodata is not None:
                    data[:, ~valid] = self.dtype(self.nodata)
                elif np.issubdtype(self.dtype, np.floating):
                    data[:, ~valid] = np.nan
            if self._strips is not None:
                self._strips.add(y0, x0, data, valid)
                return
            if valid is not None and self.nodata is None:
                self._mask_band().WriteArray(np.where(valid, 255, 0).astype(np.uint8), x0, y0)
            for b in range(data.shape[0]):
                self._ds.GetRasterBand(b + 1).WriteArray(data[b], x0, y0)
        except RuntimeError as exc:
            failed = _write_failed(self.path, exc)
        if failed is not None:  # raised here: GDAL's traceback would keep the dataset alive
            raise failed

    def _gdal_casts(self, valid: np.ndarray | None) -> bool:
        """Whether float32 values can go to GDAL as they are, for it to round and clamp
        while it copies them into its blocks (a copy it makes anyway): an integer output
        with every pixel valid, no nodata value to keep clear and no overviews averaged
        from the integers here. ``to_dtype`` rounds as GDAL does, so the file is the same.
        Issue 18: three passes fewer (0.2 s of CPU on brovey's 4096 x 4096, 4-band output)."""
        return valid is None and self._rounds_in_gdal(self._strips is not None and bool(self._strips.levels))

    def _rounds_in_gdal(self, overview_levels: bool) -> bool:
        """Whether GDAL may round this output's floats (``_gdal_casts``) wherever every
        pixel is valid: an integer type, no nodata value, no overviews averaged here."""
        return self.nodata is None and not overview_levels and np.issubdtype(self.dtype, np.integer)

    def _mask_band(self, rows: int | None = None):
        """The per-dataset mask, created all valid (255) on first use (its first
        ``rows`` rows only, when given: the strips write the rest)."""
        if self._mask is None:
            with _internal_masks():
                self._ds.CreateMaskBand(gdal.GMF_PER_DATASET)
            mask = self._ds.GetRasterBand(1).GetMaskBand()
            width, height = self._ds.RasterXSize, self._ds.RasterYSize
            height = height if rows is None else rows
            for row in range(0, height, 256):
                mask.WriteArray(np.full((min(256, height - row), width), 255, np.uint8), 0, row)
            self._mask = mask
        return self._mask

    def commit(self) -> str:
        """Compress the scratch file into place under the requested name."""
        try:
            if not self._any_valid:
                raise PansharpenError(
                    "Every pixel of the overlap is nodata in the PAN or the MS: nothing to sharpen. "
                    "Check the inputs' nodata values, or choose an extent with data."
                )
            failed = None
            try:
                if self._strips is not None:
                    self._strips.finish()
                self._ds.FlushCache()
                self._ds = None
                with _internal_masks():
                    if self._strips is not None:  # written compressed already
                        if self.overviews and not self._strips.overviews_done:
                            add_overviews(self._packed)
                    else:
                        options = [o if self.overviews or not o.startswith("OVERVIEWS=") else "OVERVIEWS=NONE"
                                   for o in COG_OPTIONS]
                        gdal.Translate(self._packed, self._scratch, format="COG", creationOptions=options)
            except RuntimeError as exc:
                failed = _write_failed(self.path, exc)
            if failed is not None:
                raise failed
            self._publish()
        finally:
            self._close_quietly()
            self._remove_scratch()
        return self.path

    def _publish(self) -> None:
        """Rename the finished file onto the output; without overwrite, only if no file
        took that name since the run began (a hard link fails if it exists)."""
        if self.overwrite:
            os.replace(self._packed, self.path)
            return
        try:
            os.link(self._packed, self.path)
        except FileExistsError:
            raise PansharpenError(
                f"The output {self.path} appeared while this run was writing it (another run?): it "
                "was left as it is; choose another name or ask to overwrite it."
            ) from None
        except OSError:  # no hard links on this file system: check, then rename
            if os.path.lexists(self.path):
                raise PansharpenError(
                    f"The output {self.path} appeared while this run was writing it (another run?): "
                    "it was left as it is; choose another name or ask to overwrite it."
                ) from None
            os.replace(self._packed, self.path)

    def abort(self) -> None:
        self._close_quietly()
        self._remove_scratch()

    def _close_quietly(self) -> None:
        """Drop the scratch dataset; a write GDAL could not finish (full disk) would
        otherwise be reported again, as a traceback, when the dataset is destroyed."""
        ds, self._ds = self._ds, None
        if ds is None:
            return
        from .gdal_errors import gdal_exceptions

        gdal.PushErrorHandler("CPLQuietErrorHandler")
        try:
            with gdal_exceptions(False):  # and the caller's setting back afterwards
                del ds
        finally:
            gdal.PopErrorHandler()

    def _remove_scratch(self) -> None:
        for path in (self._scratch, self._packed, self._scratch + ".aux.xml", self._packed + ".aux.xml"):
            if os.path.exists(path):
                os.remove(path)

    def __enter__(self) -> "GeoTiffWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _off_nodata(data: np.ndarray, nodata: float, valid: np.ndarray | None) -> None:
    """Move valid pixels that equal the nodata value to the nearest other value, so they
    stay valid (a dark pixel clipped to a nodata of 0 becomes 1)."""
    if not np.isfinite(nodata):
        return
    hit = data == data.dtype.type(nodata)
    if valid is not None:
        hit &= valid[None]
    if not hit.any():
        return
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        moved = nodata + 1 if nodata < info.max else nodata - 1
    else:
        moved = np.nextafter(np.float32(nodata), np.float32(np.inf))
    data[hit] = data.dtype.type(moved)


def to_dtype(values: np.ndarray, dtype) -> np.ndarray:
    """Round and clip to an integer type's range; float stays float32.

    Unsigned types round as GDAL does when it is handed float32 values (add one half in
    float32, clamp, truncate: ``GeoTiffWriter._gdal_casts``), so an output is the same
    whichever of the two casts it."""
    if np.issubdtype(dtype, np.unsignedinteger):
        info = np.iinfo(dtype)
        rounded = np.add(values, np.float32(0.5), dtype=np.float32)
        np.clip(rounded, info.min, info.max, out=rounded)  # in place: one pass fewer (issue 18)
        return rounded.astype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        rounded = np.rint(values)
        np.clip(rounded, info.min, info.max, out=rounded)
        return rounded.astype(dtype)
    return values.astype(dtype)


class _Strips:
    """Output rows gathered into strips of whole block rows for ``GeoTiffWriter``.

    A strip (``rows`` output rows, a multiple of the block height, the full width) is
    handed to GDAL when its last cell arrives (cells come in tile-row order, each pixel
    once), so every block is compressed once, whole, and never read back; memory is the
    strips a tile row touches. Each strip is reduced into every overview level on the
    way, written in whole overview block rows: the mean of each f x f block of the full
    resolution (of the pixels there are at the right and bottom edges), from running
    2 x 2 sums. Where the size is a multiple of f that is exactly GDAL's AVERAGE
    (checked bit for bit on a 4096 x 4096 scene); on other sizes GDAL's own source
    windows are size / overview size wide, not f, and drift across the row, so there
    the two differ (by up to the local contrast). Where an invalid pixel appears
    (nodata or mask), GDAL's AVERAGE skips it: the overviews are then left to
    ``add_overviews`` at commit (``overviews_done`` False).
    """

    def __init__(self, writer: "GeoTiffWriter", factors: list[int]):
        ds = writer._ds
        self.writer, self.width, self.height = writer, ds.RasterXSize, ds.RasterYSize
        self.bands = ds.RasterCount
        # float32 where GDAL casts (GeoTiffWriter._gdal_casts): a cell of either type fits exactly
        self.dtype = np.float32 if writer._rounds_in_gdal(bool(factors)) else writer.dtype
        self.rows = BLOCK * max(1, (factors[-1] if factors else 1) // BLOCK)  # halves evenly at every level
        self.pending: dict[int, list] = {}  # strip index -> [data, valid, pixels filled]
        self.next = 0
        self.overviews_done = True
        self.levels = []  # per level: its bands, the block height, pending rows, rows written
        for i in range(len(factors)):
            bands = [ds.GetRasterBand(b + 1).GetOverview(i) for b in range(self.bands)]
            self.levels.append([bands, bands[0].GetBlockSize()[1], [], 0])

    def add(self, y0: int, x0: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        h, w = data.shape[1:]
        for index in range(y0 // self.rows, (y0 + h - 1) // self.rows + 1):
            top = index * self.rows
            strip = self.pending.get(index)
            if strip is None:
                rows = min(self.rows, self.height - top)
                strip = self.pending[index] = [np.zeros((self.bands, rows, self.width), self.dtype), None, 0]
            a, b = max(y0, top), min(y0 + h, top + strip[0].shape[1])
            strip[0][:, a - top:b - top, x0:x0 + w] = data[:, a - y0:b - y0]
            if valid is not None:
                if strip[1] is None:
                    strip[1] = np.ones(strip[0].shape[1:], bool)
                strip[1][a - top:b - top, x0:x0 + w] = valid[a - y0:b - y0]
            strip[2] += (b - a) * w
        while self.next in self.pending and self.pending[self.next][2] >= self.pending[self.next][0][0].size:
            self._flush(self.next, *self.pending.pop(self.next)[:2])
            self.next += 1

    def _flush(self, index: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        top, writer = index * self.rows, self.writer
        if valid is not None and not valid.all():
            self.overviews_done = False
            if writer.nodata is None:
                writer._mask_band(rows=top).WriteArray(np.where(valid, 255, 0).astype(np.uint8), 0, top)
        elif writer._mask is not None:
            writer._mask.WriteArray(np.full(data.shape[1:], 255, np.uint8), 0, top)
        writer._ds.WriteArray(data, 0, top)
        if self.overviews_done and self.levels:  # each level averages the full resolution, as GDAL's
            total, kind = data, sum_type(data.dtype, len(self.levels))
            for k, level in enumerate(self.levels, start=1):
                total = pair_sums(total, kind)
                level[2].append(average(total, 4**k, data.dtype))
                self._write_level(level, last=False)

    def _write_level(self, level: list, last: bool) -> None:
        bands, block, pending, written = level
        if not pending:
            return
        rows = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
        ready = rows.shape[1] if last else rows.shape[1] // block * block
        if ready:
            for b, band in enumerate(bands):
                band.WriteArray(rows[b, :ready], 0, written)
        level[2], level[3] = ([rows[:, ready:]] if ready < rows.shape[1] else []), written + ready

    def finish(self) -> None:
        """Hand over what is left (pixels never written stay 0, as in a new file)."""
        if self.pending:  # a gap: the halves would not line up
            self.overviews_done = False
        for index in sorted(self.pending):
            self._flush(index, *self.pending.pop(index)[:2])
        if self.overviews_done:
            for level in self.levels:
                self._write_level(level, last=True)

"""GeoTIFF output that never leaves a half-written file under the requested name.

Cells are written as they finish into an uncompressed tiled scratch file beside the
output (partial blocks can be rewritten in place there, so GDAL's block cache stays
small); ``commit`` compresses it into a second scratch file and renames that onto the
requested name. A failure or a cancel removes both scratch files.
"""
from __future__ import annotations

import os
import tempfile
import uuid

import numpy as np
from osgeo import gdal

from .errors import PansharpenError

CREATION_OPTIONS = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER"]
FINAL_OPTIONS = CREATION_OPTIONS + ["COMPRESS=DEFLATE", "PREDICTOR=2", "NUM_THREADS=ALL_CPUS"]
NUMPY_TYPES = {
    "Byte": np.uint8, "UInt16": np.uint16, "Int16": np.int16, "Float32": np.float32,
}


def check_output(path: str, overwrite: bool) -> None:
    """Refuse, before any work, an output that exists or cannot be written."""
    if not path:
        raise PansharpenError("No output file given: choose where to write the result.")
    if not path.lower().endswith((".tif", ".tiff")):
        raise PansharpenError(f"The output {path} must be a GeoTIFF (.tif or .tiff).")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PansharpenError(f"The output folder {folder} does not exist: create it or choose another.")
    if not _writable(folder):
        raise PansharpenError(f"The output folder {folder} is not writable: choose another folder.")
    if os.path.exists(path) and not overwrite:
        raise PansharpenError(
            f"The output {path} already exists: choose another name or ask to overwrite it."
        )


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
                 band_names: list[str], overwrite: bool = False):
        check_output(path, overwrite)
        self.path = path
        self.dtype = NUMPY_TYPES[data_type]
        self.nodata = nodata
        folder, name = os.path.split(os.path.abspath(path))
        tag = uuid.uuid4().hex[:8]
        self._scratch = os.path.join(folder, f".{name}.partial-{tag}.tif")
        self._packed = os.path.join(folder, f".{name}.packing-{tag}.tif")
        try:
            self._ds = gdal.GetDriverByName("GTiff").Create(
                self._scratch, width, height, bands, gdal.GetDataTypeByName(data_type),
                options=CREATION_OPTIONS,
            )
        except RuntimeError as exc:
            raise PansharpenError(f"Cannot create the output in {folder} ({exc}): choose another folder.") from None
        self._ds.SetGeoTransform(tuple(geotransform))
        self._ds.SetProjection(crs_wkt)
        for b in range(bands):
            band = self._ds.GetRasterBand(b + 1)
            band.SetDescription(band_names[b])
            if nodata is not None:
                band.SetNoDataValue(nodata)

    def write(self, y0: int, x0: int, values: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write float values (bands, h, w) at (y0, x0), cast to the output type."""
        data = to_dtype(values, self.dtype)
        if valid is not None and self.nodata is not None:
            data[:, ~valid] = self.dtype(self.nodata)
        for b in range(data.shape[0]):
            self._ds.GetRasterBand(b + 1).WriteArray(data[b], x0, y0)

    def commit(self) -> str:
        """Compress the scratch file into place under the requested name."""
        self._ds.FlushCache()
        self._ds = None
        try:
            gdal.Translate(self._packed, self._scratch, creationOptions=FINAL_OPTIONS)
            os.replace(self._packed, self.path)
        finally:
            self._remove_scratch()
        return self.path

    def abort(self) -> None:
        self._ds = None
        self._remove_scratch()

    def _remove_scratch(self) -> None:
        for path in (self._scratch, self._packed, self._scratch + ".aux.xml", self._packed + ".aux.xml"):
            if os.path.exists(path):
                os.remove(path)

    def __enter__(self) -> "GeoTiffWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def to_dtype(values: np.ndarray, dtype) -> np.ndarray:
    """Round and clip to an integer type's range; float stays float32."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)

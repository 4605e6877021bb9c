"""True-colour PNG quicklooks of multispectral rasters, with a percentile stretch."""
from __future__ import annotations

import os

import numpy as np
from osgeo import gdal

from . import sensors
from .gdal_errors import gdal_exceptions
from .raster_io import open_raster

# 1-based red, green, blue of an image no description and no known sensor layout explains
FALLBACK_RGB = (1, 2, 3)


def rgb_bands(ds: gdal.Dataset) -> tuple[int, int, int]:
    """Red, green, blue band numbers: from band descriptions, else the layout the known
    sensors with that band count share (engine/sensors.py), else the first three."""
    names = [ds.GetRasterBand(b + 1).GetDescription().lower() for b in range(ds.RasterCount)]
    if all(c in names for c in ("red", "green", "blue")):
        return tuple(names.index(c) + 1 for c in ("red", "green", "blue"))
    if ds.RasterCount == 1:
        return (1, 1, 1)
    return sensors.default_rgb(ds.RasterCount) or (FALLBACK_RGB if ds.RasterCount >= 3 else (1, 1, 1))


def stretch_limits(ds: gdal.Dataset, bands, percent=(2.0, 98.0), max_size: int = 1024):
    """Per-band (low, high) at the given percentiles, from a decimated read."""
    step = max(1, max(ds.RasterXSize, ds.RasterYSize) // max_size)
    w, h = max(1, ds.RasterXSize // step), max(1, ds.RasterYSize // step)
    limits = []
    for b in bands:
        band = ds.GetRasterBand(b)
        data = band.ReadAsArray(buf_xsize=w, buf_ysize=h).astype(np.float64)
        nodata = band.GetNoDataValue()
        values = data[data != nodata] if nodata is not None else data.ravel()
        low, high = np.percentile(values, percent) if values.size else (0.0, 1.0)
        limits.append((float(low), float(high) if high > low else float(low) + 1.0))
    return limits


@gdal_exceptions()
def quicklook(raster: str, png: str, *, bands=None, limits=None, max_size: int = 1024) -> str:
    """Write a true-colour PNG of ``raster``; ``limits`` lets several images share a stretch."""
    ds = open_raster(raster, "input")
    bands = bands or rgb_bands(ds)
    limits = limits or stretch_limits(ds, bands)
    scale = min(1.0, max_size / max(ds.RasterXSize, ds.RasterYSize))
    gdal.Translate(
        png, ds, format="PNG", bandList=list(bands), outputType=gdal.GDT_Byte,
        scaleParams=[[lo, hi, 0, 255] for lo, hi in limits],
        width=max(1, int(ds.RasterXSize * scale)), height=max(1, int(ds.RasterYSize * scale)),
    )
    if os.path.exists(png + ".aux.xml"):  # GDAL's side-car of the stretch; a PNG needs none
        os.remove(png + ".aux.xml")
    return png

"""Array helpers of the engine that need numpy only.

Why a module of their own: they lived in ``raster_io`` (the GDAL module), so numpy-only
modules (``radiometry``, ``streaming``) and the plugin's widgets imported GDAL's
bindings for a percentage or a mask. ``raster_io`` re-exports them.
"""
from __future__ import annotations

import math

import numpy as np


def percent(fraction: float) -> str:
    """A fraction as a percentage that never rounds up to a whole 100 % (99.8 %, not 100 %)."""
    shown = math.floor(fraction * 1000 + 1e-9) / 10
    return f"{shown:.0f}%" if shown.is_integer() else f"{shown:.1f}%"


def valid_mask(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where a value is finite and not the nodata value."""
    valid = np.isfinite(data)
    if nodata is not None:
        valid &= data != np.float32(nodata)
    return valid


def read_decimated(band, max_size: int) -> np.ndarray:
    """A whole raster band (GDAL's ``ReadAsArray``; no GDAL import here) read at most
    ``max_size`` pixels a side, every ``step``-th pixel, as float32."""
    step = max(1, math.ceil(max(band.XSize, band.YSize) / max_size))
    w, h = max(1, band.XSize // step), max(1, band.YSize // step)
    return band.ReadAsArray(buf_xsize=w, buf_ysize=h).astype(np.float32)


def mirror_pad(data: np.ndarray, pad) -> np.ndarray:
    """np.pad 'symmetric' that also works when the pad is wider than the data."""
    while True:
        step = tuple((min(a, n), min(b, n)) for (a, b), n in zip(pad, data.shape[-2:]))
        full = ((0, 0),) * (data.ndim - 2) + step
        data = np.pad(data, full, mode="symmetric")
        pad = tuple((a - s[0], b - s[1]) for (a, b), s in zip(pad, step))
        if not any(p for pair in pad for p in pair):
            return data


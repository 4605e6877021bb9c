"""Quality indices of a sharpened raster: against a reference, or against its PAN and MS."""
from __future__ import annotations

import numpy as np

from . import quality
from .errors import PansharpenError
from .gdal_errors import gdal_exceptions
from .pairs import FULL_BORDER, read_crop, whole_ms_crop
from .raster_io import RasterPair, open_raster

DEFAULT_RATIO = 4


def read_all(path: str, role: str) -> tuple[np.ndarray, tuple]:
    """A whole raster as (bands, H, W) float32 and its geotransform."""
    ds = open_raster(path, role)
    return ds.ReadAsArray().astype(np.float32).reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize), \
        ds.GetGeoTransform()


@gdal_exceptions()
def score_files(fused: str, *, pan: str | None = None, ms: str | None = None,
                reference: str | None = None, ratio: int | None = None,
                sensor: str | None = None, pan_band: int | None = None) -> dict[str, float]:
    """Reduced-resolution indices against ``reference``, else full-resolution ones.

    Full resolution needs ``pan`` and ``ms``; ``fused`` must lie on the PAN grid (as
    ``sharpen`` writes it). Indices are computed on digital numbers.
    """
    if reference:
        image, _ = read_all(fused, "sharpened")
        truth, _ = read_all(reference, "reference")
        if image.shape != truth.shape:
            raise PansharpenError(
                f"The sharpened image is {image.shape[0]} x {image.shape[1]} x {image.shape[2]} "
                f"(bands x rows x cols) but the reference is {truth.shape[0]} x {truth.shape[1]} "
                f"x {truth.shape[2]}: score an image against a reference of the same grid."
            )
        if ratio is None and pan and ms:
            ratio = RasterPair(pan, ms, pan_band, sensor).ratio
        return quality.reduced_indices(image, truth, ratio or DEFAULT_RATIO)
    if not (pan and ms):
        raise PansharpenError(
            "Give either a reference (--reference) for reduced-resolution indices, or the "
            "PAN and MS (--pan, --ms) for full-resolution ones."
        )
    pair = RasterPair(pan, ms, pan_band, sensor)
    image, gt = read_all(fused, "sharpened")
    fused_pan, fused_ms, crop = _align(pair, image, gt)
    return quality.full_indices(crop, fused_pan, fused_ms, pair.ratio, pair.sensor, border=FULL_BORDER)


@gdal_exceptions()
def score_sample(fused: str, *, pan: str, ms: str, size: int = 512, sensor: str | None = None,
                 pan_band: int | None = None) -> dict[str, float]:
    """Full-resolution indices (as ``score_files``) on a centred window of at most
    ``size`` PAN pixels a side: a quick check of a large output."""
    pair = RasterPair(pan, ms, pan_band, sensor)
    ds = open_raster(fused, "sharpened")
    w, h = min(size, ds.RasterXSize), min(size, ds.RasterYSize)
    x0, y0 = (ds.RasterXSize - w) // 2, (ds.RasterYSize - h) // 2
    image = ds.ReadAsArray(x0, y0, w, h).astype(np.float32).reshape(ds.RasterCount, h, w)
    gt = ds.GetGeoTransform()
    gt = (gt[0] + x0 * gt[1], gt[1], 0.0, gt[3] + y0 * gt[5], 0.0, gt[5])
    fused_pan, fused_ms, crop = _align(pair, image, gt)
    return quality.full_indices(crop, fused_pan, fused_ms, pair.ratio, pair.sensor, border=FULL_BORDER)


def _align(pair: RasterPair, image: np.ndarray, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PAN, MS and the sharpened image over the same whole MS pixels."""
    out = pair.output_geotransform
    fx, fy = (gt[0] - out[0]) / out[1], (gt[3] - out[3]) / out[5]
    if abs(gt[1] - out[1]) > 1e-6 * abs(out[1]) or abs(fx - round(fx)) > 0.01 or abs(fy - round(fy)) > 0.01:
        raise PansharpenError(
            "The sharpened raster is not on the PAN grid: score the output of `pansharpen "
            "sharpen` (or the Pansharpen algorithm) made from this PAN and MS."
        )
    fx, fy = round(fx), round(fy)
    crop = whole_ms_crop(pair.ratio, pair.ms_phase, (fy, min(fy + image.shape[1], pair.window.height)),
                         (fx, min(fx + image.shape[2], pair.window.width)))
    if crop.ms_height < 2 or crop.ms_width < 2:
        raise PansharpenError("The sharpened raster does not overlap its PAN and MS.")
    pan, _, ms, _ = read_crop(pair, crop)
    (y0, y1), (x0, x1) = crop.pan_rows, crop.pan_cols
    return pan, ms, image[:, y0 - fy:y1 - fy, x0 - fx:x1 - fx]

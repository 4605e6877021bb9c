"""Per-scene radiometric normalisation for the deep models.

Users bring the same ground as 11-bit DN in 16-bit containers, reflectance x 10000,
or a linearly stretched 8-bit product. A constant scale (2047, NBITS, the data type)
gives a network different numbers for each. The deep models therefore see the scene
mapped by robust statistics of the scene itself (project decision)::

    x_norm = (x - lo) / (hi - lo),   lo, hi = 1st, 99th percentile of all MS values

one offset and one span for every MS band *and* the PAN (kind "scene", recorded in
weights as ``scene-joint-p1-p99``), over the scene's valid pixels; the output is
mapped back with the same two numbers. That is invariant to any gain and offset the
encoding applies to all bands alike (DN, radiance, reflectance x 10000 with one
scaling, an 8-bit product stretched with one stretch), and it keeps what a
pansharpening network relies on: the ratios between bands and the radiometric
relation between the PAN and the MS. A per-band gain (DN to reflectance with a
different factor per band, a per-band display stretch) changes the colours the
network sees; the output still comes back in the user's units.

Measured, why joint: per-band statistics (``scene-p1-p99``, kind "scene-band", the
first choice, still read from older weights) map PAN and each band independently,
so the gain with which PAN detail belongs in each band depends on the region's
statistics; the E2E net trained on the IKONOS training region then scored SAM 3.87 /
ERGAS 3.03 / Q2n 0.760 on the held-out strip, against 2.49 / 1.64 / 0.865 with the
constant scale, 2.61 / 3.10 / 0.729 with one span for the MS and PAN's own, and
2.03 / 1.38 / 0.905 with the joint mapping (same config, same steps).

Project choices, named: percentiles 1 and 99 (robust to a few saturated or dark
pixels, unlike min/max); the statistics come from a nearest-neighbour decimated read
of the whole PAN and the whole MS (not the requested extent), at most ``STATS_SIZE``
pixels a side (a 10 000-pixel scene gives a 1000-pixel sample, plenty for two
percentiles, and reads in a fraction of a second); hi == lo (constant, or nearly all
nodata) keeps hi - lo = 1 so values pass unchanged. Classical methods keep the
constant scale: they are gain-equivariant already.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .arrays import read_decimated, valid_mask

PERCENTILES = (1.0, 99.0)
STATS_SIZE = 1024
CONSTANT = "scale"  # the engine's constant-scale normalisation (sensor, NBITS, type)
JOINT, PER_BAND = "scene", "scene-band"  # kinds of scene normalisation
KINDS = (CONSTANT, JOINT, PER_BAND)
RECORDED = {JOINT: "scene-joint-p1-p99", PER_BAND: "scene-p1-p99"}  # weights metadata
NAME = RECORDED[JOINT]


@dataclass(frozen=True)
class SceneNormalisation:
    """Offset and span of each MS band (B,) and of the PAN (scalars); with the joint
    kind all of them are the same two numbers."""

    ms_offset: np.ndarray
    ms_span: np.ndarray
    pan_offset: float
    pan_span: float

    @property
    def bands(self) -> int:
        return int(self.ms_offset.shape[0])

    def normalise_ms(self, ms: np.ndarray) -> np.ndarray:
        """(B, H, W) values -> normalised float32 (any leading shape ending in B, H, W)."""
        off, span = self._per_band(ms)
        return ((ms - off) / span).astype(np.float32, copy=False)

    def denormalise_ms(self, ms: np.ndarray) -> np.ndarray:
        off, span = self._per_band(ms)
        return (ms * span + off).astype(np.float32, copy=False)

    def normalise_pan(self, pan: np.ndarray) -> np.ndarray:
        return ((pan - np.float32(self.pan_offset)) / np.float32(self.pan_span)).astype(np.float32, copy=False)

    def _per_band(self, array: np.ndarray):
        """Offset and span shaped (B, 1, 1): they broadcast over (B, H, W) and (N, B, H, W)."""
        shape = (self.bands, 1, 1)
        return (self.ms_offset.astype(np.float32).reshape(shape),
                self.ms_span.astype(np.float32).reshape(shape))

    @classmethod
    def from_arrays(cls, pan: np.ndarray, ms: np.ndarray, nodata: float | None = None,
                    max_size: int = STATS_SIZE, kind: str = JOINT) -> "SceneNormalisation":
        """Statistics of PAN (H, W) and MS (B, h, w) arrays (decimated to ``max_size``)."""
        pan_s = _decimate(np.asarray(pan), max_size)
        ms_s = _decimate(np.asarray(ms), max_size)
        return cls.from_samples(pan_s, valid_mask(pan_s, nodata), ms_s,
                                np.all([valid_mask(b, nodata) for b in ms_s], axis=0), kind)

    @classmethod
    def from_samples(cls, pan, pan_valid, ms, ms_valid, kind: str = JOINT) -> "SceneNormalisation":
        """Statistics of already decimated samples and their valid masks."""
        if kind == JOINT:
            lo, span = _robust_range(np.concatenate([band[ms_valid] for band in ms]))
            return cls(np.full(len(ms), lo), np.full(len(ms), span), lo, span)
        if kind != PER_BAND:
            raise ValueError(f"unknown scene normalisation {kind!r}")
        pan_lo, pan_span = _robust_range(pan[pan_valid])
        ranges = [_robust_range(band[ms_valid]) for band in ms]
        return cls(np.array([lo for lo, _ in ranges]), np.array([s for _, s in ranges]),
                   pan_lo, pan_span)

    @classmethod
    def from_source(cls, source, max_size: int = STATS_SIZE, kind: str = JOINT) -> "SceneNormalisation":
        """Statistics of an engine source: a ``RasterPair`` (decimated GDAL read of the
        whole PAN band and the whole aligned MS) or anything with ``pan``/``ms`` arrays
        (``ArraySource``)."""
        if hasattr(source, "pan_ds"):
            return _from_raster_pair(source, max_size, kind)
        return cls.from_arrays(source.pan, source.ms, getattr(source, "nodata", None), max_size, kind)


def _robust_range(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values.astype(np.float64), PERCENTILES)
    span = float(hi - lo)
    return float(lo), span if span > 0 else 1.0


def _decimate(array: np.ndarray, max_size: int) -> np.ndarray:
    step = max(1, math.ceil(max(array.shape[-2:]) / max_size))
    return array[..., ::step, ::step]


def _from_raster_pair(pair, max_size: int, kind: str) -> SceneNormalisation:
    """The whole PAN band and the whole aligned MS, not the output window: a user who
    sharpens only a map extent gets the same values there as for the whole scene."""
    pan = read_decimated(pair.pan_ds.GetRasterBand(pair.pan_band_index), max_size)
    ms = np.stack([read_decimated(pair.ms_ds.GetRasterBand(b + 1), max_size) for b in range(pair.bands)])
    ms_valid = pair.valid_ms(ms)
    if pair.ms_mask is not None:  # an alpha band or a mask: 0 is nodata (raster_io)
        ms_valid &= read_decimated(pair.ms_mask, max_size) > 0
    pan_valid = valid_mask(pan, pair.pan_nodata)
    if pair.pan_mask is not None:
        pan_valid &= read_decimated(pair.pan_mask, max_size) > 0
    if pair.fill is not None:  # fill without a nodata value (raster_io.edge_fill): not the PAN's statistics
        pan_valid &= pan != pair.fill
    return SceneNormalisation.from_samples(pan, pan_valid, ms, ms_valid, kind)


def kind_of(metadata_value: str | None) -> str:
    """The kind recorded in a weights file: "scene", "scene-band", else "scale" (files
    without the field)."""
    return next((kind for kind, name in RECORDED.items() if name == metadata_value), CONSTANT)

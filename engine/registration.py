"""PAN-MS co-registration for the deep path.

Why: real products carry an offset between the PAN and the MS of a fraction of a PAN
pixel to more (the two focal planes see the ground a moment apart: band-to-band
registration, the parallax of buildings). On the SpaceNet-6 WorldView-2 tiles the
low-passed PAN matches the upsampled MS best 1 to 1.25 PAN pixels away from where the
files put it; Wald's protocol as the pansharpening toolbox makes it adds half a PAN pixel
of its own (its bicubic ``imresize`` centres reduced PAN pixel i on pixel 4i + 1.5, its
MS decimation keeps pixel 4i + 2). Detail injected from a PAN that is not where the MS
is lands beside the edges it should sharpen.

What: ``estimate_shift`` finds the (dy, dx) in PAN pixels that maximises the correlation
between the PAN low-passed by the sensor's MTF and the MS bands weighted as the PAN sees
them (least squares at the MS scale, as GSA; the plain band mean put Landsat-8's PAN,
which leaves out the NIR, 1.75 pixels off), upsampled: a search of +-``REACH`` pixels in
steps of 1, then 0.5, 0.25 and 0.125 around the best, on a sample of the scene. The PAN
is then moved by it (cubic spline) before the deep model and its classical anchor see it
(``Registered`` for a source read tile by tile, ``align`` for arrays in memory).
Project choices, named:

- The PAN moves onto the MS, not the MS onto the PAN: the MS carries the colours that
  every index is scored against (the reference at reduced resolution, Khan's D_lambda at
  full); the output keeps the PAN's grid, its features where the MS has them.
- Only a shift of at least ``MIN_SHIFT`` pixels is applied, and only where the low-passed
  PAN correlates with the MS intensity at all (``MIN_CORRELATION``).
- Deep methods only (the classical methods run as published: ``brovey`` stays GDAL's).
- Off by default (``--register``, ``SharpenRequest.register``, Processing's advanced
  REGISTER). Measured on the 18 left-out inputs (``docs/quality.md``, row ``fose
  registered`` against ``fose``): reduced-resolution Q2n rose on 13 and fell on one
  (-0.0019; up to +0.028 on SpaceNet-6 tile 2, whose ERGAS fell from 8.97 to 5.77), Khan's
  D_lambda fell on 11 of 14 full-resolution inputs, but HQNR fell on three by 0.04 to 0.08
  (SpaceNet-6 tiles 1 and 3: D_s compares the output with the PAN where the files put it),
  as it rose on nine. And it moves the result's features by up to ``REACH`` PAN pixels off
  the PAN's geometry, which an analyst overlaying data drawn on the PAN does not expect.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

REACH = 2.0  # PAN pixels searched each way
MIN_SHIFT = 0.1  # PAN pixels: smaller shifts are left alone
MIN_CORRELATION = 0.5  # the PAN must resemble the MS intensity for the peak to mean anything
SAMPLE = 512  # PAN pixels a side of the central window the shift is estimated on (arrays)


def _score(pan_low: np.ndarray, intensity: np.ndarray, shift, margin: int) -> float:
    from scipy.ndimage import shift as move

    inner = (slice(margin, -margin), slice(margin, -margin))
    moved = move(pan_low, shift, order=1, mode="nearest")[inner]
    return float(np.corrcoef(moved.ravel(), intensity[inner].ravel())[0, 1])


def estimate_shift(pan: np.ndarray, ms: np.ndarray, ratio: int, sensor: str | None = None
                   ) -> tuple[float, float, float]:
    """(dy, dx, correlation): the shift that puts the PAN onto the MS (module doc)."""
    from . import mtf
    from .upsample import upsample

    gains, _ = mtf.sensor_gains(sensor, ms.shape[0])
    pan_low = mtf.mtf_filter(np.asarray(pan, np.float32), float(np.mean(gains)), ratio,
                             float32=True).astype(np.float64)
    lms = upsample(np.asarray(ms, np.float32), ratio).astype(np.float64)
    intensity = np.tensordot(_pan_weights(pan_low, np.asarray(ms, np.float64), ratio), lms, axes=1)
    margin = math.ceil(REACH) + 2 * ratio
    if min(pan_low.shape) <= 4 * margin:
        return 0.0, 0.0, 0.0
    seen: dict[tuple[float, float], float] = {}
    best = (-2.0, 0.0, 0.0)
    for step, reach in ((1.0, REACH), (0.5, 0.5), (0.25, 0.25), (0.125, 0.125)):  # coarse to fine
        offsets = np.arange(-reach, reach + 1e-9, step)
        centre = best[1:]
        for shift in ((centre[0] + dy, centre[1] + dx) for dy in offsets for dx in offsets):
            if max(abs(shift[0]), abs(shift[1])) <= REACH and shift not in seen:
                seen[shift] = _score(pan_low, intensity, shift, margin)
                if seen[shift] > best[0]:
                    best = (seen[shift], float(shift[0]), float(shift[1]))
    return best[1], best[2], best[0]


def _pan_weights(pan_low: np.ndarray, ms: np.ndarray, ratio: int) -> np.ndarray:
    """Band weights that best make the low-passed PAN (sampled at the MS pixels) from the
    MS, with an offset: least squares, as GSA's."""
    bands, h, w = ms.shape
    target = pan_low[ratio // 2::ratio, ratio // 2::ratio][:h, :w]
    if target.shape != (h, w):  # a PAN not ratio times the MS: the plain mean
        return np.full(bands, 1.0 / bands)
    design = np.concatenate([ms.reshape(bands, -1), np.ones((1, h * w))]).T
    return np.linalg.lstsq(design, target.ravel(), rcond=None)[0][:bands]


def worth_applying(dy: float, dx: float, correlation: float) -> bool:
    return max(abs(dy), abs(dx)) >= MIN_SHIFT and correlation >= MIN_CORRELATION


def move_pan(pan: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """The PAN moved by ``shift`` (PAN pixels), cubic spline, edges extended."""
    from scipy.ndimage import shift as move

    return move(np.asarray(pan, np.float32), shift, order=3, mode="nearest").astype(np.float32)


def central(pair, size: int = SAMPLE):
    """The central ``size`` x ``size`` window of an in-memory ``evaluate.Pair``."""
    r = pair.ratio
    h, w = (min(size, n) // r * r for n in pair.pan.shape)
    y, x = ((n - s) // 2 // r * r for n, s in zip(pair.pan.shape, (h, w)))
    return replace(pair, pan=pair.pan[y:y + h, x:x + w], ms=pair.ms[:, y // r:(y + h) // r, x // r:(x + w) // r])


def align(pair):
    """(pair with its PAN moved onto the MS, (dy, dx) or None) for an in-memory pair."""
    sample = central(pair)
    dy, dx, corr = estimate_shift(sample.pan, sample.ms, pair.ratio, pair.sensor)
    if not worth_applying(dy, dx, corr):
        return pair, None
    return replace(pair, pan=move_pan(pair.pan, (dy, dx))), (dy, dx)


class Registered:
    """An engine source (``streaming.Source``) whose PAN tiles are moved by ``shift``;
    everything else is the wrapped source's. Invalid PAN pixels are filled before the
    move (nodata must not bleed into the spline) and the valid mask shrinks by the
    shift's reach."""

    def __init__(self, source, shift: tuple[float, float]):
        self._source, self.shift = source, shift
        self._reach = math.ceil(max(abs(shift[0]), abs(shift[1]))) + 2  # pixels one PAN pixel reaches
        self._margin = self._reach + 10  # the spline's prefilter decays as 0.27^d: 1e-6 of a step at 10

    def __getattr__(self, name):
        return getattr(self._source, name)

    def read_pan(self, rows, cols):
        from scipy.ndimage import binary_erosion

        from .streaming import fill_invalid

        m = self._margin
        data, valid = self._source.read_pan((rows[0] - m, rows[1] + m), (cols[0] - m, cols[1] + m))
        moved = move_pan(fill_invalid(data, valid), self.shift)[m:-m, m:-m]
        if not valid.all():
            valid = binary_erosion(valid, structure=np.ones((3, 3), bool), iterations=self._reach, border_value=1)
        return moved, valid[m:-m, m:-m]

"""One toolkit for PAN/MS pairs as arrays: whole-MS-pixel crops, GRIP ``.mat`` pairs,
the ratio check and the full-resolution border.

Why one module: evaluation (``evaluate``), scoring (``scoring``), training
(``training.datasets``) and the tests each had their own copy of these, and a pair read
one way for training and another for evaluation would be scored on other pixels than it
was trained on. Numpy only (scipy for ``.mat`` on demand, no GDAL): a ``RasterPair`` is
used through its ``ratio``, ``ms_phase``, ``window``, ``read_pan`` and ``read_ms``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import PansharpenError

#: The toolbox's border cut at full resolution (QNR, HQNR), PAN pixels.
FULL_BORDER = 21


def check_ratio(ratio) -> int:
    """The PAN/MS resolution ratio as an int; refused unless a positive integer."""
    if int(ratio) != ratio or ratio < 1:
        raise PansharpenError(f"the resolution ratio must be a positive integer, got {ratio}")
    return int(ratio)


# ---------------------------------------------------------------- whole MS pixels

@dataclass(frozen=True)
class WholeMsCrop:
    """Rows/cols of the PAN (output grid) and of the aligned MS (as ``read_ms`` takes
    them) that cover exactly the same ground: whole MS pixels only."""

    pan_rows: tuple[int, int]
    pan_cols: tuple[int, int]
    ms_rows: tuple[int, int]
    ms_cols: tuple[int, int]

    @property
    def ms_height(self) -> int:
        return self.ms_rows[1] - self.ms_rows[0]

    @property
    def ms_width(self) -> int:
        return self.ms_cols[1] - self.ms_cols[0]


def whole_ms_crop(ratio: int, phase: tuple[int, int], rows: tuple[int, int],
                  cols: tuple[int, int]) -> WholeMsCrop:
    """The whole MS pixels inside output rows ``rows`` and cols ``cols`` (half-open).

    ``phase`` is ``RasterPair.ms_phase`` (cols, rows): output pixel y lies in aligned MS
    row (y + phase_y) // ratio. The crop starts at the first output pixel that starts an
    MS pixel and keeps as many whole MS pixels as fit (none, or a negative count, when
    none do: callers check the size they need)."""
    r = ratio
    px, py = phase
    y0 = rows[0] + (-(rows[0] + py)) % r
    x0 = cols[0] + (-(cols[0] + px)) % r
    h, w = (rows[1] - y0) // r, (cols[1] - x0) // r
    my, mx = (y0 + py) // r, (x0 + px) // r
    return WholeMsCrop((y0, y0 + r * h), (x0, x0 + r * w), (my, my + h), (mx, mx + w))


def read_crop(pair, crop: WholeMsCrop) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pan, pan_valid, ms, ms_valid) of a ``RasterPair`` over ``crop``."""
    pan, pan_ok = pair.read_pan(crop.pan_rows, crop.pan_cols)
    ms, ms_ok = pair.read_ms(crop.ms_rows, crop.ms_cols)
    return pan, pan_ok, ms, ms_ok


def read_whole_ms(pair) -> tuple[WholeMsCrop, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A ``RasterPair``'s whole overlap cropped to whole MS pixels, so PAN and MS cover
    exactly the same ground: (crop, pan, pan_valid, ms, ms_valid)."""
    w = pair.window
    crop = whole_ms_crop(pair.ratio, pair.ms_phase, (0, w.height), (0, w.width))
    return (crop, *read_crop(pair, crop))


# ---------------------------------------------------------------- GRIP .mat pairs

@dataclass
class MatPair:
    """A GRIP-style pair as stored: PAN (H, W), MS (B, h, w), ratio, DN scale 2^L - 1,
    and the sensor name as written in the file (not normalised)."""

    pan: np.ndarray
    ms: np.ndarray
    ratio: int
    scale: float
    sensor: str | None


def read_mat_pair(path: str | Path, dtype=np.float64, default_ratio: int | None = None) -> MatPair:
    """A GRIP-style ``.mat`` pair: I_PAN (H x W), I_MS (h x w x B), ratio, L (bits,
    default 11), sensor. Without ``ratio`` in the file: ``default_ratio``, else the
    PAN/MS size ratio. Anything else is refused with a PansharpenError that says what."""
    from scipy.io import loadmat

    if not Path(path).exists():
        raise PansharpenError(f"The file {path} does not exist: check the path.")
    try:
        mat = loadmat(str(path))
        pan = np.asarray(mat["I_PAN"], dtype=dtype)
        ms = np.moveaxis(np.asarray(mat["I_MS"], dtype=dtype), -1, 0)
    except (KeyError, ValueError, OSError, NotImplementedError, TypeError) as exc:
        raise PansharpenError(
            f"{path} is not a MATLAB pair with I_PAN and I_MS ({exc}): give GeoTIFFs instead."
        ) from None
    if pan.ndim != 2 or ms.ndim != 3 or 0 in pan.shape or 0 in ms.shape:
        raise PansharpenError(
            f"{path}: I_PAN must be 2-D (rows, columns) and I_MS 3-D (rows, columns, bands); found "
            f"I_PAN {tuple(pan.shape)} and I_MS of {mat['I_MS'].ndim} dimension(s): give a MATLAB pair "
            "in the toolbox's layout, or GeoTIFFs."
        )
    if "ratio" in mat:
        ratio = int(np.asarray(mat["ratio"]).ravel()[0])
    else:
        ratio = default_ratio if default_ratio is not None else pan.shape[1] // ms.shape[2]
    bits = int(np.asarray(mat.get("L", 11)).ravel()[0])
    sensor = str(np.asarray(mat["sensor"]).ravel()[0]) if "sensor" in mat else None
    return MatPair(pan, ms, ratio, float(2 ** bits - 1), sensor)

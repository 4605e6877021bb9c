"""Sensor MTF filters, MATLAB-style bicubic resizing and Wald's protocol.

Definitions follow the Pansharpening Toolbox of Vivone et al. ("A critical comparison
among pansharpening algorithms", IEEE TGRS 2015; "A new benchmark based on recent
advances in multispectral pansharpening", IEEE GRSM 2021), files ``genMTF.m`` /
``MTF.m`` (Gaussian MTF matched to the gain at Nyquist, designed with ``fwind1`` and
a Kaiser window) and ``resize_images.m`` (Wald's protocol).

Arrays are channel-first: a band (H, W) or a stack (B, H, W), float64 on output.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import sensors
from .errors import PansharpenError
from .pairs import check_ratio

__all__ = [
    "SENSOR_GNYQ",
    "DEFAULT_MS_GNYQ",
    "DEFAULT_PAN_GNYQ",
    "sensor_gains",
    "mtf_kernel",
    "mtf_filter",
    "imresize_bicubic",
    "wald_degrade",
    "degrade_to_ms_scale",
]

#: Sensor MTF gains live in engine/sensors.py; these names stay for their callers.
DEFAULT_MS_GNYQ = sensors.DEFAULT_MS_GNYQ
DEFAULT_PAN_GNYQ = sensors.DEFAULT_PAN_GNYQ
WORLDVIEW_4_BANDS = sensors.WORLDVIEW_4_BANDS

#: Read-only view of the gains at Nyquist (toolbox ``genMTF.m`` / ``MTF_PAN.m``):
#: every spelling's lookup key -> (MS gains in the sensor's band order, or None for
#: 0.3 per band; PAN gain).
SENSOR_GNYQ: dict[str, tuple[tuple[float, ...] | None, float]] = {
    sensors.key(spelling): (s.ms_gnyq, s.pan_gnyq)
    for s in sensors.SENSORS for spelling in (s.name, s.title, *s.aliases)
}


def sensor_gains(sensor: str | None, nbands: int) -> tuple[np.ndarray, float]:
    """Return the (B,) MS gains and the PAN gain at Nyquist for ``sensor``.

    Names go through ``sensors.lookup`` (any alias, case, separators). An unknown
    sensor or None gets the toolbox default (0.3 per MS band, 0.15 PAN). A known
    sensor whose products never have ``nbands`` bands is an error: its gains are per
    band (a 4-band WorldView-2/3 product takes its blue, green, red and NIR1 gains).
    """
    if nbands < 1:
        raise PansharpenError(f"the MS image must have at least one band, got {nbands}")
    known = sensors.lookup(sensor)
    if known is None:
        return np.full(nbands, DEFAULT_MS_GNYQ), float(DEFAULT_PAN_GNYQ)
    if known.ms_gnyq is None:
        return np.full(nbands, DEFAULT_MS_GNYQ), float(known.pan_gnyq)
    layout = known.layout(nbands)
    if layout is None:
        raise PansharpenError(
            f"sensor {sensor!r} has MTF gains for {len(known.ms_gnyq)} MS bands but the image "
            f"has {nbands}; give the image with all the sensor's bands in its order, or "
            "choose no sensor (default gains 0.3 per band)"
        )
    return np.asarray([known.ms_gnyq[i] for i in layout], dtype=np.float64), float(known.pan_gnyq)


def _kaiser_2d(size: int, beta: float) -> np.ndarray:
    """Circularly symmetric window from a 1-D Kaiser (Huang's method, as ``fwind1``).

    The 1-D window is sampled at radii in [-1, 1]; the 2-D window takes its value at
    each point's radius and is zero beyond radius 1 (the corners).
    """
    t = np.linspace(-1.0, 1.0, size)
    radius = np.hypot(t[:, None], t[None, :])
    window = np.interp(radius, t, np.kaiser(size, beta))
    window[radius > 1.0] = 0.0
    return window


def mtf_kernel(gnyq: float, ratio: int, size: int = 41) -> np.ndarray:
    """2-D FIR low-pass filter matched to a sensor MTF (toolbox ``genMTF.m``).

    The desired frequency response is a Gaussian sampled on the size x size DFT grid
    whose value at the MS Nyquist frequency fcut/2 (fcut = 1/ratio, in units of the
    fine grid's Nyquist) is ``gnyq``; the toolbox computes its width as
    alpha = sqrt(((size - 1) * fcut / 2)^2 / (-2 ln gnyq)) grid samples. That
    ``size - 1`` (not ``size``) is the toolbox's: it makes the designed filter's
    true gain at Nyquist gnyq^((size/(size-1))^2), 0.282 instead of 0.30 for
    size 41; we keep it so our numbers match the published ones. The response is
    turned into an impulse response by the window method (``fwind1``: inverse DFT,
    then a rotated Kaiser window, beta 0.5, MATLAB's default) and normalised to sum
    to 1 (project choice: the toolbox leaves the sum within 1e-3 of 1).
    """
    if not 0.0 < gnyq < 1.0:
        raise PansharpenError(f"the MTF gain at Nyquist must be in (0, 1), got {gnyq}")
    check_ratio(ratio)
    if size < 3 or size % 2 == 0:
        raise PansharpenError(f"the MTF kernel size must be odd and >= 3, got {size}")
    fcut = 1.0 / ratio
    alpha = math.sqrt(((size - 1) * fcut / 2.0) ** 2 / (-2.0 * math.log(gnyq)))
    t = np.arange(size) - (size - 1) / 2.0
    response = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2.0 * alpha**2))
    response[response < np.finfo(np.float64).eps * response.max()] = 0.0  # as fspecial
    impulse = np.real(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(response))))
    kernel = impulse * _kaiser_2d(size, 0.5)
    return kernel / kernel.sum()


def _as_stack(image: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    """(H, W) or (B, H, W) -> float64 (B, H, W) and whether the input was one band."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        return array[None], True
    if array.ndim == 3:
        return array, False
    raise PansharpenError(f"{what} must be (H, W) or (B, H, W), got shape {array.shape}")


def mtf_filter(image: np.ndarray, gnyq, ratio: int, size: int = 41, float32: bool = False) -> np.ndarray:
    """Low-pass ``image`` with the sensor-MTF kernel of each band (toolbox ``MTF.m``).

    ``gnyq`` is a scalar (all bands) or one gain per band. Borders are replicated
    (``imfilter(..., 'replicate')``). The convolution runs by FFT over the
    edge-padded band, which equals direct filtering to rounding error: in float64
    (``fftconvolve``), or with ``float32`` in float32 with the kernel's spectrum kept
    between calls (:func:`mtf_filters_float32`: the per-tile path of
    ``classical.mtf_glp_hpm``, issue 18).
    """
    # Imported here: scipy.signal (with scipy.stats) costs 0.2 s at start-up, which every
    # brovey or gsa run paid for nothing (issue 18).
    from scipy.signal import fftconvolve

    stack, single = _as_stack(image, "the image to filter")
    if np.size(gnyq) not in (1, stack.shape[0]):
        raise PansharpenError(
            f"got {np.size(gnyq)} MTF gains for an image of {stack.shape[0]} bands"
        )
    gains = np.broadcast_to(np.asarray(gnyq, dtype=np.float64).ravel(), (stack.shape[0],))
    half = size // 2
    out = np.empty_like(stack)
    kernels: dict[float, np.ndarray] = {}
    for band, gain in enumerate(gains):
        if float32:
            out[band] = mtf_filters_float32(stack[band], [float(gain)], ratio, size)[0]
            continue
        padded = np.pad(stack[band], half, mode="edge")
        if gain not in kernels:
            kernels[gain] = mtf_kernel(float(gain), ratio, size)
        out[band] = fftconvolve(padded, kernels[gain], mode="valid")
    return out[0] if single else out


def mtf_filters_float32(band: np.ndarray, gains, ratio: int, size: int = 41) -> list[np.ndarray]:
    """One band low-passed by the MTF kernel of each gain (``mtf_filter``, replicate
    borders) in float32: ``fftconvolve(padded, kernel, mode="valid")`` with the band's
    spectrum computed once for all the gains and each kernel's spectrum cached per FFT
    shape (the tiles of a run share one). The FFT is as large as the padded band: the
    circular wrap reaches only the first ``size - 1`` rows and columns, which "valid"
    drops."""
    from scipy import fft

    padded = np.pad(np.asarray(band, np.float32), size // 2, mode="edge")
    shape = tuple(fft.next_fast_len(n, real=True) for n in padded.shape)
    spectrum = fft.rfft2(padded, shape)
    return [fft.irfft2(spectrum * _kernel_spectrum(float(g), ratio, size, shape), shape)
            [size - 1:padded.shape[0], size - 1:padded.shape[1]] for g in gains]


@lru_cache(maxsize=8)
def _kernel_spectrum(gain: float, ratio: int, size: int, shape: tuple[int, int]) -> np.ndarray:
    from scipy import fft

    return fft.rfft2(mtf_kernel(gain, ratio, size).astype(np.float32), shape)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB ``imresize`` 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    ) * ((ax > 1) & (ax <= 2))


def _resize_matrix(in_len: int, scale: float) -> np.ndarray:
    """(out_len, in_len) weights of MATLAB ``imresize`` along one axis.

    Output pixel u (1-based) samples the input at x = u/scale + (1 - 1/scale)/2; when
    shrinking, the kernel is widened by 1/scale (antialiasing); weights are normalised
    to sum to 1 and out-of-range taps are mirrored with the edge sample repeated.
    """
    out_len = int(math.ceil(in_len * scale))
    shrinking = scale < 1.0
    width = 4.0 / scale if shrinking else 4.0
    x = np.arange(1, out_len + 1) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(x - width / 2.0)
    taps = int(math.ceil(width)) + 2
    index = left[:, None] + np.arange(taps)[None, :]  # 1-based
    distance = x[:, None] - index
    weights = scale * _cubic(scale * distance) if shrinking else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    source = mirror[(index.astype(np.int64) - 1) % (2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), source.ravel()), weights.ravel())
    return matrix


def imresize_bicubic(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(image, scale)`` with the default bicubic kernel and antialiasing.

    Output size is ceil(size * scale) per axis. Separable, applied as two matrix
    products (the result does not depend on the axis order for float data).
    """
    if not scale > 0:
        raise PansharpenError(f"the resize scale must be positive, got {scale}")
    stack, single = _as_stack(image, "the image to resize")
    rows = _resize_matrix(stack.shape[1], scale)
    cols = _resize_matrix(stack.shape[2], scale)
    out = rows @ stack @ cols.T
    return out[0] if single else out


def _decimate(image: np.ndarray, ratio: int) -> np.ndarray:
    """Keep rows and columns ratio//2, ratio//2 + ratio, ... (0-based).

    This is what the toolbox's ``imresize(..., 1/ratio, 'nearest')`` picks: the
    sample nearest to x = ratio*u - (ratio - 1)/2 (1-based, halves rounded up), i.e.
    rows 2, 6, 10, ... for ratio 4 and 1, 3, 5, ... for ratio 2.
    """
    start = ratio // 2
    return image[..., start::ratio, start::ratio]


def _check_divisible(shape: tuple[int, ...], ratio: int, what: str) -> None:
    height, width = shape[-2:]
    if height % ratio or width % ratio:
        raise PansharpenError(
            f"{what} is {height} x {width}, not divisible by the ratio {ratio}; crop it "
            f"to {height - height % ratio} x {width - width % ratio} first"
        )


def degrade_to_ms_scale(image: np.ndarray, gnyq, ratio: int) -> np.ndarray:
    """Bring an image from the PAN grid to the MS grid: MTF filter, then decimation.

    Used by Wald's protocol (MS) and by the full-resolution indices (D_s degrades
    the PAN with the PAN gain, Khan's D_lambda the fused image with the MS gains).
    """
    ratio = check_ratio(ratio)
    _check_divisible(np.shape(image), ratio, "the image to degrade")
    return _decimate(mtf_filter(image, gnyq, ratio), ratio)


def wald_degrade(
    pan: np.ndarray, ms: np.ndarray, ratio: int, sensor: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Wald's protocol (toolbox ``resize_images.m``): the reduced-resolution pair.

    MS: sensor-MTF filter per band, then keep rows/columns ratio//2 :: ratio. PAN:
    MATLAB bicubic ``imresize`` by 1/ratio (the toolbox default; no PAN MTF).
    Returns (pan_lr (H/r, W/r), ms_lr (B, h/r, w/r)); the original MS is the ground
    truth for a fusion of the two.
    """
    pan = np.asarray(pan, dtype=np.float64)
    ms = np.asarray(ms, dtype=np.float64)
    if pan.ndim != 2:
        raise PansharpenError(f"PAN must be one band (H, W), got shape {pan.shape}")
    if ms.ndim != 3:
        raise PansharpenError(f"MS must be (B, h, w), got shape {ms.shape}")
    ratio = check_ratio(ratio)
    if pan.shape != (ms.shape[1] * ratio, ms.shape[2] * ratio):
        raise PansharpenError(
            f"PAN is {pan.shape[0]} x {pan.shape[1]} but MS is {ms.shape[1]} x {ms.shape[2]}: "
            f"with ratio {ratio} PAN must be exactly {ratio} times the MS size"
        )
    _check_divisible(ms.shape, ratio, "the MS image")
    ms_gains, _ = sensor_gains(sensor, ms.shape[0])
    return imresize_bicubic(pan, 1.0 / ratio), degrade_to_ms_scale(ms, ms_gains, ratio)

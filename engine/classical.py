"""Classical pansharpening methods: Brovey, GIHS, GSA, MTF-GLP-HPM and its haze-corrected form.

Each method is a plain function on arrays in any consistent unit (the engine passes
data normalised by the sensor scale): PAN (H, W), LMS (B, H, W) = MS upsampled to the
PAN grid (``upsample.upsample``), MS (B, h, w) with H = h * ratio; the output is
float32 (B, H, W). Computation runs in float64 (Brovey in float32: see ``brovey``).

Statistics (means, standard deviations, regression weights, injection gains) are
estimated over the arrays given. The engine calls these functions per tile (with a
halo) and blends the seams, so its estimates are tile-local: close to, not equal to,
those over the whole image. Definitions follow the pansharpening toolbox of Vivone et
al. ("A critical comparison among pansharpening algorithms", IEEE TGRS 2015; "A new
benchmark based on recent advances in multispectral pansharpening", IEEE GRSM 2021)
except for Brovey, which follows GDAL so that results match QGIS's ``gdal:pansharp``.

``CLASSICAL`` maps each method's name to a :class:`ClassicalMethod` with the uniform
signature ``run(pan, lms, ms, ratio, sensor)`` the engine uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import mtf, sensors
from .errors import PansharpenError
from .upsample import context_pixels, upsample

__all__ = ["brovey", "gihs", "gsa", "mtf_glp_hpm", "mtf_glp_hpm_haze", "ClassicalMethod", "CLASSICAL"]

# Gain at Nyquist of the fixed Gaussian low-pass the toolbox (LPfilterGauss.m) uses
# to measure the PAN's low-pass spread when equalising it for MTF-GLP-HPM.
_EQUALISATION_GNYQ = 0.3
# Starck-Murtagh B3-spline scaling filter of the toolbox's LPfilterPlusDec.m (GSA).
_B3_SPLINE = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
# HPM divides by the low-passed PAN; below this fraction of the band's mean level the
# quotient is meaningless (and the toolbox's "+ eps" does not prevent a blow-up).
_HPM_FLOOR = 0.01


def brovey(pan: np.ndarray, lms: np.ndarray, weights=None) -> np.ndarray:
    """Weighted Brovey transform exactly as GDAL's pansharpening (``gdalpansharpen.cpp``).

    pseudo = sum_k w_k * lms_k, out_k = lms_k * pan / pseudo, with w_k = 1/B unless
    ``weights`` are given (GDAL's default when a VRT gives no weights). Where the
    pseudo-PAN is 0 GDAL uses a factor of 0, so the output is 0; we do the same
    wherever it is not positive (with GDAL's unsigned data it never is negative; a
    float LMS can overshoot below 0 at dark edges). GDAL's clamping to the bit depth
    and its rounding happen when the engine writes integers. Nodata: GDAL writes
    nodata where any input is nodata or the pseudo-PAN is 0; the engine's nodata
    masks do that job here. Pixel-wise: no statistics, no halo.

    Computed in float32, not float64 like the other methods (issue 18): the result is
    float32 anyway and the three operations round once each (relative error about
    1e-7, far below one digital number); it halves the memory traffic and took the
    method's own time on the 25 tiles of a 4096 x 4096, 4-band scene (1056 x 1056
    each) from 0.59 to 0.10 s of CPU.
    """
    pan32, lms32 = _check_pan_lms(pan, lms, np.float32)
    bands = lms32.shape[0]
    if weights is None:
        w = np.full(bands, 1.0 / bands, dtype=np.float32)
    else:
        w = np.asarray(weights, dtype=np.float32).ravel()
        if w.size != bands:
            raise PansharpenError(
                f"Brovey got {w.size} weights for {bands} MS bands; give one weight per band"
            )
    if weights is None:  # one pass over the bands, then the weight (issue 18: fewer temporaries)
        pseudo = np.add.reduce(lms32, axis=0)
        pseudo *= w[0]
    else:
        pseudo = np.tensordot(w, lms32, axes=1)
    positive = pseudo > 0
    np.divide(pan32, pseudo, out=pseudo, where=positive)  # pseudo becomes the factor
    pseudo[~positive] = 0
    return lms32 * pseudo


def gihs(pan: np.ndarray, lms: np.ndarray) -> np.ndarray:
    """Generalised IHS (Tu et al. 2001; toolbox IHS.m): out_k = lms_k + (P - I).

    I = mean of the LMS bands (equal weights); P = the PAN equalised to I by matching
    mean and standard deviation (the toolbox's choice: the PAN's own std, not that of
    a low-passed PAN). A constant PAN carries no detail: P is then the mean of I.
    The mean and the two standard deviations are tile-local estimates; otherwise
    pixel-wise.
    """
    pan64, lms64 = _check_pan_lms(pan, lms)
    intensity = lms64.mean(axis=0)
    equalised = _equalise(pan64, pan64.std(), intensity.mean(), intensity.std())
    return (lms64 + (equalised - intensity)[None]).astype(np.float32)


def gsa(pan: np.ndarray, lms: np.ndarray, ms: np.ndarray, ratio: int) -> np.ndarray:
    """Adaptive Gram-Schmidt (Aiazzi, Baronti, Selva, IEEE TGRS 2007; toolbox GSA.m).

    1. Remove the band means from LMS and from MS, and the mean from the PAN.
    2. Degrade the PAN to MS scale: the toolbox's Starck-Murtagh low-pass (B3-spline
       "a trous" approximation at level ceil(log2 ratio)), then sample it at the MS
       pixel centres (rows and columns ratio//2 :: ratio for an even ratio, as the
       toolbox; see ``_sample_at_ms_centres`` for odd ones). Project choice: we keep the
       analysis approximation, without the toolbox's synthesis pass; only the
       regression below sees this image.
    3. Least squares at MS scale: PAN_LR ~ sum_k w_k MS_k + w_0 gives the weights.
    4. I = sum_k w_k LMS_k + w_0 with the means removed; g_k = cov(LMS_k, I) / var(I).
    5. out_k = LMS_k + g_k * (PAN - mean(PAN) - I) (the toolbox's final mean
       equalisation makes the output mean that of the LMS, as here).
    If I has no variance (a flat tile) nothing is injected (g = 0). All statistics
    are tile-local.

    Memory (issue 18): the mean-free LMS of steps 1 and 4 is never stored (I is made
    mean-free once, and cov(LMS_k, I) = mean(LMS_k * I) - mean(LMS_k) * mean(I)), and
    step 5 runs band by band into the float32 output: two float64 stacks of the tile
    fewer (gsa's peak on a 4096 x 4096, 4-band scene 474 -> 428 MiB), the same
    values to float64 rounding.
    """
    pan64, lms64 = _check_pan_lms(pan, lms)
    ms64 = _check_ms(ms, lms64, ratio)
    ratio = int(ratio)
    bands = lms64.shape[0]
    ms0 = ms64 - ms64.mean(axis=(1, 2), keepdims=True)
    pan0 = pan64 - pan64.mean()

    pan_lr = _sample_at_ms_centres(_starck_murtagh_lowpass(pan0, ratio), ratio)
    design = np.concatenate([ms0.reshape(bands, -1), np.ones((1, ms0[0].size))]).T
    weights, *_ = np.linalg.lstsq(design, pan_lr.ravel(), rcond=None)

    intensity = np.tensordot(weights[:bands], lms64, axes=1)  # + constants, removed with the mean
    intensity -= intensity.mean()
    variance = float(np.mean(intensity**2))
    if variance > 0.0:
        covariance = np.tensordot(lms64, intensity, axes=((1, 2), (0, 1))) / intensity.size
        covariance -= lms64.mean(axis=(1, 2)) * intensity.mean()
        gains = covariance / variance
    else:
        gains = np.zeros(bands)
    detail = pan0 - intensity
    out = np.empty(lms64.shape, dtype=np.float32)
    for k in range(bands):
        out[k] = lms64[k] + gains[k] * detail
    return out


def mtf_glp_hpm(
    pan: np.ndarray, lms: np.ndarray, ratio: int, sensor: str | None = None
) -> np.ndarray:
    """MTF-matched GLP with high-pass modulation (Aiazzi et al.; toolbox MTF_GLP_HPM.m).

    out_k = lms_k * P_k / P_k^L, where
    * P_k is the PAN equalised to band k: (PAN - mean(PAN)) * std(lms_k) /
      std(LP(PAN)) + mean(lms_k), LP a Gaussian low-pass with gain 0.3 at Nyquist
      (toolbox: LPfilterGauss in the std);
    * P_k^L is P_k low-passed by the sensor's MTF filter for band k
      (``mtf.mtf_filter`` with the MS gains of ``sensor``, replicate borders),
      decimated at offset ratio//2 with step ratio and re-interpolated with
      ``upsample`` (interp23tap for powers of two), as the toolbox does; for an odd
      ratio the decimation samples the MS centres between two PAN pixels
      (``_sample_at_ms_centres``), so P_k^L stays aligned with P_k.
    P_k^L is an affine function of LP_k(PAN) (every step is linear and keeps
    constants), so the PAN is filtered once per distinct gain, not once per band.
    Division guard (project choice): where P_k^L is below 1 % of the band's mean
    level the quotient is meaningless, and the detail is injected additively
    instead (out_k = lms_k + P_k - P_k^L). A PAN without variance carries no detail:
    out = LMS. The means, standard deviations and the filters near tile edges are
    tile-local. Float32 throughout, statistics accumulated in float64, the PAN's spectrum
    computed once for all its filters and the filters' kernel spectra kept between
    tiles (issue 18; see docs/performance.md for the time and the difference to float64).
    """
    pan32, lms_given = _check_pan_lms(pan, lms, dtype=None)
    pan32 = pan32.astype(np.float32, copy=False)
    ratio = _check_ratio(ratio)
    _check_divisible(pan32.shape, ratio)
    bands = lms_given.shape[0]
    gains, _ = mtf.sensor_gains(sensor, bands)

    pan_mean = float(pan32.mean(dtype=np.float64))
    distinct = list(dict.fromkeys([_EQUALISATION_GNYQ, *map(float, gains)]))
    filtered = dict(zip(distinct, mtf.mtf_filters_float32(pan32, distinct, ratio)))  # one forward FFT
    pan_spread = float(np.std(filtered[_EQUALISATION_GNYQ], dtype=np.float64))
    out = np.empty(lms_given.shape, dtype=np.float32)
    for k, lowpass in _band_lowpasses(filtered, gains, ratio):
        out[k] = _modulated(lms_given[k].astype(np.float32, copy=False), pan32, lowpass,
                            pan_mean, pan_spread)
    return out


def _band_lowpasses(filtered: dict, gains, ratio: int):
    """(k, P_k^L) for every band: the PAN through band k's MTF filter (``filtered``, by gain),
    sampled at the MS centres and re-interpolated, once per distinct gain (each filter is
    taken out of ``filtered`` when first used)."""
    done: dict[float, np.ndarray] = {}
    for k, gain in enumerate(map(float, gains)):
        if gain not in done:
            done[gain] = upsample(_sample_at_ms_centres(filtered.pop(gain), ratio), ratio)
        yield k, done[gain]


def _modulated(band: np.ndarray, pan32: np.ndarray, lowpass: np.ndarray, pan_mean: float,
               pan_spread: float) -> np.ndarray:
    """One band of MTF-GLP-HPM: band * P_k / P_k^L with the PAN and its low-pass
    equalised to the band, additive where P_k^L is nearly 0 (``mtf_glp_hpm``)."""
    mean_k = float(band.mean(dtype=np.float64))
    scale = float(np.std(band, dtype=np.float64)) / pan_spread if pan_spread > 0.0 else 0.0
    sharp = np.float32(scale) * (pan32 - np.float32(pan_mean)) + np.float32(mean_k)
    smooth = np.float32(scale) * (lowpass - np.float32(pan_mean)) + np.float32(mean_k)
    floor = _HPM_FLOOR * abs(mean_k)
    safe = smooth > floor if floor > 0.0 else smooth > 0.0
    modulated = np.divide(band * sharp, smooth, out=np.zeros_like(band), where=safe)
    return np.where(safe, modulated, band + sharp - smooth)


def mtf_glp_hpm_haze(
    pan: np.ndarray, lms: np.ndarray, ms: np.ndarray, ratio: int, sensor: str | None = None
) -> np.ndarray:
    """MTF-GLP-HPM with haze correction (Lolli, Alparone, Garzelli, Vivone, IEEE GRSL 2017;
    toolbox MTF_GLP_HPM_Haze_min.m): the modulation acts on the radiance above the path
    radiance, so a dark pixel (water, shadow) keeps the MS's spectrum instead of having
    its bands scaled toward zero together with the haze in them.

    out_k = L_k + (lms_k - L_k) * (P - L_P) / (P_k^L - L_P), where
    * L_k is the haze of band k: the band's smallest value in the MS (the darkest object);
    * L_P = w_0 + sum_k w_k L_k is the PAN's, the PAN a pixel of pure haze would have,
      w the least-squares weights of PAN_LR ~ w_0 + sum_k w_k MS_k, PAN_LR the PAN through
      the MS's MTF (the bands' mean gain at Nyquist) sampled at the MS centres;
    * P_k^L is the PAN low-passed by band k's MTF filter, decimated and re-interpolated
      as in ``mtf_glp_hpm``; the PAN is not equalised (the quotient does not depend on its
      gain, and L_P is its offset).
    Project choices: the MTF rather than the toolbox's Gaussian (gain 0.3) for PAN_LR, the
    resolution the MS has; the smallest value for every band count (the toolbox's 4-band
    variant scales percentiles by fixed fractions per band; that measured worse on our
    held-out scenes, docs/sam.md); the quotient is kept at 0 and above, and where
    P_k^L - L_P is below 1 % of its mean the band keeps the LMS (no detail). A band the
    PAN does not see (``sensors.Sensor.pan_blind``: Landsat 8/9's NIR) is modulated as
    ``mtf_glp_hpm`` modulates it: with the PAN's contrast it would take the visible
    bands' (Landsat-8 at reduced resolution: Q2n 0.848 against mtf-glp-hpm's 0.920, 0.921
    with its NIR so). All statistics are tile-local.
    """
    pan32, lms_given = _check_pan_lms(pan, lms, dtype=None)
    pan32 = pan32.astype(np.float32, copy=False)
    ms64 = _check_ms(ms, lms_given, ratio).reshape(lms_given.shape[0], -1)
    ratio = _check_ratio(ratio)
    _check_divisible(pan32.shape, ratio)
    bands = lms_given.shape[0]
    gains, _ = mtf.sensor_gains(sensor, bands)
    known = sensors.lookup(sensor)
    blind = known.blind_bands(bands) if known else ()
    mean_gain = float(np.mean(gains))
    distinct = list(dict.fromkeys([mean_gain, *map(float, gains)] + ([_EQUALISATION_GNYQ] if blind else [])))
    filtered = dict(zip(distinct, mtf.mtf_filters_float32(pan32, distinct, ratio)))
    haze = ms64.min(axis=1)
    pan_lr = _sample_at_ms_centres(filtered[mean_gain], ratio).astype(np.float64).ravel()
    design = np.concatenate([np.ones((1, ms64.shape[1])), ms64]).T
    weights, *_ = np.linalg.lstsq(design, pan_lr, rcond=None)
    pan_haze = np.float32(weights[0] + weights[1:] @ haze)
    above = pan32 - pan_haze
    if blind:  # MTF-GLP-HPM's equalisation statistics, for the bands the PAN does not see
        pan_mean = float(pan32.mean(dtype=np.float64))
        pan_spread = float(np.std(filtered[_EQUALISATION_GNYQ], dtype=np.float64))
    out = np.empty(lms_given.shape, dtype=np.float32)
    for k, lowpass in _band_lowpasses(filtered, gains, ratio):
        band = lms_given[k].astype(np.float32, copy=False)
        if k in blind:
            out[k] = _modulated(band, pan32, lowpass, pan_mean, pan_spread)
            continue
        low = lowpass - pan_haze
        safe = low > _HPM_FLOOR * abs(float(low.mean(dtype=np.float64)))
        quotient = np.maximum(np.divide(above, low, out=np.ones_like(low), where=safe), 0.0)
        out[k] = np.where(safe, np.float32(haze[k]) + (band - np.float32(haze[k])) * quotient, band)
    return out


@dataclass(frozen=True)
class ClassicalMethod:
    """A classical method as the engine sees it.

    ``halo``: PAN pixels of context each side a tile needs for results equal to those
    of the whole image away from tile borders, for every accepted ratio (2, 3, 4),
    given the same statistics (those stay tile-local); a multiple of 12 so that it
    is a whole number of MS pixels at any accepted ratio. The LMS's own margin is
    ``upsample.context_pixels``, which the engine reads separately.
    ``pixelwise``: each output pixel depends on the PAN and LMS at that pixel alone (no
    tile statistics), so tiles need no overlap to hide seams: the engine tiles it
    without one (issue 18: brovey on 4096 x 4096, 25 tiles of 845 -> 16 of 1024).
    """

    name: str
    summary: str
    halo: int
    run: Callable[..., np.ndarray]
    pixelwise: bool = False


def _hpm_halo(ratio: int) -> int:
    """PAN pixels P^L at one pixel depends on: interpolation reach plus MTF radius."""
    interpolation = (context_pixels(ratio) + 1) * ratio
    return interpolation + 41 // 2


def _round_up(value: int, step: int = 12) -> int:
    return step * math.ceil(value / step)


CLASSICAL: dict[str, ClassicalMethod] = {
    method.name: method
    for method in (
        ClassicalMethod(
            "brovey",
            "Weighted Brovey transform with equal weights, as GDAL / gdal:pansharp",
            0,
            lambda pan, lms, ms, ratio, sensor: brovey(pan, lms),
            pixelwise=True,
        ),
        ClassicalMethod(
            "gihs",
            "Generalised IHS: add the equalised PAN minus the band mean to every band",
            0,
            lambda pan, lms, ms, ratio, sensor: gihs(pan, lms),
        ),
        ClassicalMethod(
            "gsa",
            "Adaptive Gram-Schmidt: regression intensity, covariance injection gains",
            0,
            lambda pan, lms, ms, ratio, sensor: gsa(pan, lms, ms, ratio),
        ),
        ClassicalMethod(
            "mtf-glp-hpm",
            "MTF-matched generalised Laplacian pyramid with high-pass modulation",
            _round_up(max(_hpm_halo(r) for r in (2, 3, 4))),
            lambda pan, lms, ms, ratio, sensor: mtf_glp_hpm(pan, lms, ratio, sensor),
        ),
        ClassicalMethod(
            "mtf-glp-hpm-h",
            "MTF-GLP-HPM with haze correction: the modulation acts above each band's darkest level",
            _round_up(max(_hpm_halo(r) for r in (2, 3, 4))),
            lambda pan, lms, ms, ratio, sensor: mtf_glp_hpm_haze(pan, lms, ms, ratio, sensor),
        ),
    )
}


def _glp_lowpass(pan: np.ndarray, gain: float, ratio: int) -> np.ndarray:
    """PAN through the sensor MTF, sampled at the MS pixel centres, re-interpolated."""
    filtered = mtf.mtf_filter(pan, gain, ratio, float32=True)
    return upsample(_sample_at_ms_centres(filtered, ratio), ratio)


def _sample_at_ms_centres(image: np.ndarray, ratio: int) -> np.ndarray:
    """Values of a low-passed PAN-grid image at the MS pixel centres (h, w).

    MS pixel i is centred on PAN coordinate r*i + r/2 (``upsample`` module): for an
    even ratio that is PAN pixel r*i + r/2 (the toolbox's decimation offset); for an
    odd ratio it falls half-way between pixels r*i + r//2 and r*i + r//2 + 1, and we
    average the two (linear interpolation, exact enough on a low-passed image). So
    the re-interpolated low-pass stays aligned with the PAN for every ratio.
    """
    start = ratio // 2
    if ratio % 2 == 0:
        return image[start::ratio, start::ratio]
    rows = 0.5 * (image[start::ratio] + image[start + 1 :: ratio])
    return 0.5 * (rows[:, start::ratio] + rows[:, start + 1 :: ratio])


def _equalise(image: np.ndarray, spread: float, mean: float, target_spread: float):
    """Affine map of ``image`` to the target mean and std (flat image -> the mean)."""
    scale = target_spread / spread if spread > 0.0 else 0.0
    return (image - image.mean()) * scale + mean


def _starck_murtagh_lowpass(image: np.ndarray, ratio: int) -> np.ndarray:
    """B3-spline "a trous" approximation at level ceil(log2 ratio), mirrored borders."""
    from scipy.ndimage import correlate1d  # here, not at start-up: brovey never needs scipy

    levels = max(1, math.ceil(math.log2(ratio)))
    out = image
    for level in range(levels):
        kernel = np.zeros(4 * 2**level + 1)
        kernel[:: 2**level] = _B3_SPLINE
        for axis in (0, 1):
            out = correlate1d(out, kernel, axis=axis, mode="reflect")
    return out


def _check_pan_lms(pan, lms, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    pan64 = np.asarray(pan, dtype=dtype)
    lms64 = np.asarray(lms, dtype=dtype)
    if pan64.ndim != 2:
        raise PansharpenError(f"PAN must be one band (H, W), got shape {pan64.shape}")
    if lms64.ndim != 3 or lms64.shape[0] < 1:
        raise PansharpenError(
            f"the upsampled MS must be (bands, H, W), got shape {lms64.shape}"
        )
    if lms64.shape[1:] != pan64.shape:
        raise PansharpenError(
            f"the upsampled MS is {lms64.shape[1]} x {lms64.shape[2]} but the PAN is "
            f"{pan64.shape[0]} x {pan64.shape[1]}: upsample the MS onto the PAN grid first"
        )
    return pan64, lms64


def _check_ms(ms, lms64: np.ndarray, ratio) -> np.ndarray:
    ratio = _check_ratio(ratio)
    ms64 = np.asarray(ms, dtype=np.float64)
    bands, height, width = lms64.shape
    if ms64.ndim != 3 or ms64.shape[0] != bands:
        raise PansharpenError(
            f"the MS must be ({bands}, h, w) like the upsampled MS, got shape {ms64.shape}"
        )
    if (ms64.shape[1] * ratio, ms64.shape[2] * ratio) != (height, width):
        raise PansharpenError(
            f"the MS is {ms64.shape[1]} x {ms64.shape[2]} and the PAN {height} x {width}: "
            f"with ratio {ratio} the PAN must be exactly {ratio} times the MS size"
        )
    return ms64


def _check_ratio(ratio) -> int:
    if int(ratio) != ratio or ratio < 1:
        raise PansharpenError(
            f"the PAN/MS resolution ratio must be a positive integer, got {ratio!r}"
        )
    return int(ratio)


def _check_divisible(shape: tuple[int, int], ratio: int) -> None:
    if shape[0] % ratio or shape[1] % ratio:
        raise PansharpenError(
            f"the PAN window is {shape[0]} x {shape[1]}, not a whole number of MS pixels "
            f"at ratio {ratio}; cut windows on the MS grid"
        )

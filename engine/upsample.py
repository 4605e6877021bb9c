"""Upsampling of the MS image onto the PAN grid (the "LMS").

Grid convention (fixed project-wide)
------------------------------------
MS pixel ``i`` (0-based) is centred on PAN pixel ``r*i + r/2`` for an even ratio
``r``. In general coordinates, LMS row ``y`` samples the MS at the MS pixel-centre
coordinate ``u = (y - r/2) / r = y/r - 1/2``; columns likewise. This is the phase of
the pansharpening toolbox's ``interp23tap`` (its first doubling puts MS sample ``i``
at ``2i+1``, every later doubling puts sample ``p`` at ``2p``, so MS sample ``i``
lands on ``r*i + r/2``), of its Wald degradation (decimation with offset ``r/2``),
and of Landsat's native grids (PAN pixel ``2i+1`` centred on MS pixel ``i``). The
engine resamples inputs with any other phase onto this grid before they reach this
module. Every interpolator here uses the same phase, so the methods agree:

* even ``r``: decimating the LMS with offset ``r/2`` and step ``r`` gives back the MS
  (both interpolators are interpolating filters);
* odd ``r`` (3): the MS centres fall between PAN pixels (``u`` is never an integer
  for integer ``y``), so no LMS pixel reproduces an MS sample exactly.

Borders
-------
The toolbox filters with circular borders (``imfilter(..., 'circular')``), which
wraps the opposite image edge into each border. We mirror instead: the MS is
extended by half-sample symmetric reflection (``... c b a | a b c ...``, mirror
about the MS image edge) and then interpolated with no further border rule, so a
real image border never sees the far side of the image. Inside the image (further
than :func:`context_pixels` MS pixels from an edge) results equal the toolbox's.

Output is float32; ``(h, w)`` input gives ``(H, W)`` output, ``(B, h, w)`` gives
``(B, H, W)``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import PansharpenError

# The 23-tap polynomial interpolator of Aiazzi et al. (2002), as tabulated in the
# pansharpening toolbox (interp23tap.m: CDF23 = 2 * [0.5 0.305334091185 0
# -0.072698593239 0 ...]). The even-offset taps are 0 apart from the centre (1), so
# a doubling keeps every input sample and only the odd-offset taps below make the
# new half-way samples: tap t (t = 1..6) weighs the input samples at distance
# t - 1/2 (in input samples) on each side. They sum to 1/2 per side.
_CDF23_ODD_TAPS = 2.0 * np.array(
    [
        0.305334091185,
        -0.072698593239,
        0.021809577942,
        -0.005192756653,
        0.000807762146,
        -0.000060081482,
    ]
)
# Symmetric 12-tap kernel giving the sample half-way between x[j-1] and x[j] when
# correlated with origin 0 (centre index 6), and between x[j] and x[j+1] with
# origin -1.
_HALFWAY_KERNEL = np.concatenate([_CDF23_ODD_TAPS[::-1], _CDF23_ODD_TAPS]).astype(np.float32)
_HALF_TAPS = len(_CDF23_ODD_TAPS)  # 6 input samples each side

_KEYS_A = -0.5  # Keys (1981) cubic convolution parameter; MATLAB's and GDAL's choice
_BICUBIC_CONTEXT = 2  # taps at floor(u)-1 .. floor(u)+2 with |u - i| <= 1/2


def context_pixels(ratio: int) -> int:
    """MS pixels of context needed on each side of a window for exact results.

    An LMS window computed from an MS window extended by this many pixels on every
    side equals the same window of the LMS of the whole image (the tiled engine reads
    this margin). interp23tap: 6 for ratio 2, 8 for 4, 10 for 8 (see
    :func:`_interp23tap_reach`); Keys bicubic: 2.
    """
    ratio = _check_ratio(ratio)
    if ratio == 1:
        return 0
    if _is_power_of_two(ratio):
        return _interp23tap_reach(ratio)
    return _BICUBIC_CONTEXT


@lru_cache(maxsize=None)
def _interp23tap_reach(ratio: int) -> int:
    """Farthest MS pixel (from the MS pixel under it) that any LMS sample depends on.

    Follows the cascade exactly: a stage-k sample at MS coordinate u either is a
    sample of stage k-1 (kept by the doubling) or is made from the 12 stage-(k-1)
    samples at u +- (t - 1/2) * spacing, t = 1..6. Positions are binary fractions,
    so the float arithmetic is exact.
    """

    @lru_cache(maxsize=None)
    def support(u: float, stage: int) -> tuple[float, float]:
        if stage == 0:
            return u, u
        spacing = 2.0 ** -(stage - 1)  # grid step of the stage's input
        if u % spacing == 0:
            return support(u, stage - 1)
        ends = [
            support(u + sign * (t - 0.5) * spacing, stage - 1)
            for t in range(1, _HALF_TAPS + 1)
            for sign in (-1, 1)
        ]
        return min(lo for lo, _ in ends), max(hi for _, hi in ends)

    stages = ratio.bit_length() - 1
    reach = 0.0
    for s in range(ratio):
        lo, hi = support(s / ratio - 0.5, stages)  # LMS phase s of MS pixel 0
        reach = max(reach, -lo, hi)
    return int(reach)


def upsample(ms: np.ndarray, ratio: int) -> np.ndarray:
    """Upsample MS to the PAN grid: interp23tap for ratios 2, 4, 8, bicubic otherwise.

    This is the literature's standard choice (docs/design.md: interp23tap for
    power-of-two ratios, bicubic as the fallback).
    """
    ratio = _check_ratio(ratio)
    if ratio > 1 and _is_power_of_two(ratio):
        return interp23tap(ms, ratio)
    return bicubic(ms, ratio)


def interp23tap(ms: np.ndarray, ratio: int) -> np.ndarray:
    """The toolbox's 23-tap polynomial interpolator, by successive separable doublings.

    ``ratio`` must be a power of 2. The first doubling places input sample ``i`` at
    ``2i+1``, later doublings place sample ``p`` at ``2p`` (toolbox phase, see the
    module docstring). The MS is mirror-extended by :func:`context_pixels` pixels,
    interpolated, and the extension cut away again (toolbox: circular borders).
    Computed by :func:`_separable` (3x faster than filtering stage by stage).
    """
    ratio = _check_ratio(ratio)
    if not _is_power_of_two(ratio):
        raise PansharpenError(
            f"interp23tap needs a power-of-two ratio, got {ratio}; use bicubic (or "
            "upsample(), which chooses) for other ratios"
        )
    image, squeeze = _as_stack(ms)
    if ratio == 1:
        return _finish(image.copy(), squeeze)
    return _finish(_separable(image, "interp23tap", ratio), squeeze)


def _separable(image: np.ndarray, kind: str, ratio: int) -> np.ndarray:
    """Mirror-extend a (bands, h, w) stack, then :func:`_interpolate` it."""
    pad = _context(kind, ratio)
    work = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
    return _interpolate(work, kind, ratio, pad)


def _interpolate(work: np.ndarray, kind: str, ratio: int, pad: int) -> np.ndarray:
    """Upsample the rows then the columns of a stack extended by ``pad``; the inner part.

    Each 1-D interpolator is linear, so it is applied as one banded matrix
    (:func:`_block_operator`, built from the 1-D definition itself) to blocks of
    :data:`_BLOCK` input samples: a few BLAS products per axis instead of one filter
    pass per tap or stage and the interleaving copies; equal to the definition to
    float32 rounding.
    """
    operator = _block_operator(kind, ratio)
    return _apply_along_last(_apply_along_rows(work, operator, ratio, pad), operator, ratio, pad)


def upsample_window(window: np.ndarray, ratio: int) -> np.ndarray:
    """The LMS of a (bands, h, w) MS window without its :func:`context_pixels` border.

    The window already carries its context (the tiled engine reads it, mirrored at the
    image's edges like :func:`upsample`'s extension), so it is interpolated as it is:
    no second extension, and no LMS computed for the border only to be cut away
    (issue 18: a quarter of the work of a 256-row brovey strip). Equal to the same
    part of ``upsample`` of the whole image.
    """
    ratio = _check_ratio(ratio)
    image, squeeze = _as_stack(window)
    if ratio == 1:
        return _finish(image.copy(), squeeze)
    kind = "interp23tap" if _is_power_of_two(ratio) else "bicubic"
    lms = _interpolate(image, kind, ratio, context_pixels(ratio))  # may be a view: no copy to make it contiguous
    return lms[0] if squeeze else lms


# Input samples per block: the block's matrix has 2 x context more rows than inputs of
# its own, so small blocks waste multiplications on zeros and large ones on the band
# structure; 16 was fastest of 8-128 on a 1024-pixel ratio-4 tile.
_BLOCK = 16
# Bytes of copied column blocks per BLAS product (:func:`_apply_along_last`): they stay in
# the core's cache.
_CHUNK_BYTES = 2 << 20


@lru_cache(maxsize=None)
def _block_operator(kind: str, ratio: int) -> np.ndarray:
    """The 1-D ``kind`` interpolator of ``_BLOCK`` samples with their context, as a matrix.

    Row ``k`` is the response to an impulse at input ``k`` of a block of
    ``_BLOCK + 2 * context`` samples, restricted to the ``ratio * _BLOCK`` outputs of
    the block's own samples: ``block @ M`` upsamples a block along its last axis.
    """
    pad = _context(kind, ratio)
    impulses = np.eye(_BLOCK + 2 * pad, dtype=np.float32)[None]
    return np.ascontiguousarray(_along(kind)(impulses, 2, ratio, pad)[0])


def _context(kind: str, ratio: int) -> int:
    """MS samples of mirror extension the 1-D ``kind`` interpolator needs each side."""
    return _BICUBIC_CONTEXT if kind == "bicubic" else context_pixels(ratio)


def _along(kind: str):
    """The 1-D definition of ``kind``: ``f(stack, axis, ratio, pad)`` upsamples one axis."""
    return _cubic_along if kind == "bicubic" else _cascade


def _cascade(x: np.ndarray, axis: int, ratio: int, pad: int) -> np.ndarray:
    """interp23tap along one axis of a stack extended by ``pad`` samples each side."""
    stages = ratio.bit_length() - 1
    for stage in range(stages):
        # The last doubling drops the extension (pad * ratio output samples, i.e.
        # pad * ratio / 2 of its input) before interleaving.
        drop = pad * ratio // 2 if stage == stages - 1 else 0
        x = _double(x, axis, first=stage == 0, drop=drop)
    return x


def _blocks(inner: int):
    """(start, stop) of consecutive ``_BLOCK``-sample blocks covering ``inner`` samples."""
    return ((lo, min(lo + _BLOCK, inner)) for lo in range(0, inner, _BLOCK))


def _apply_along_rows(x: np.ndarray, operator: np.ndarray, ratio: int, pad: int) -> np.ndarray:
    """Upsample a (bands, rows + 2 pad, cols) stack along its rows: M^T @ row block."""
    bands, rows, cols = x.shape
    inner = rows - 2 * pad
    out = np.empty((bands, ratio * inner, cols), np.float32)
    transposed = np.ascontiguousarray(operator.T)
    for band in range(bands):
        for lo, hi in _blocks(inner):
            np.matmul(transposed[: ratio * (hi - lo), : hi - lo + 2 * pad], x[band, lo : hi + 2 * pad],
                      out=out[band, ratio * lo : ratio * hi])
    return out


def _apply_along_last(x: np.ndarray, operator: np.ndarray, ratio: int, pad: int) -> np.ndarray:
    """Upsample a (bands, rows, cols + 2 pad) stack along its columns: blocks @ M.

    The overlapping column blocks of a few rows at a time are copied side by side
    (one row of ``_BLOCK + 2 pad`` samples per block, about ``_CHUNK_BYTES``), so one
    BLAS product writes those rows of the output in place. Block by block, each
    product's result had to be copied into its columns (issue 18: the LMS of a
    4096 x 256, 4-band strip 1.7-2x faster, docs/performance.md).
    """
    bands, rows, cols = x.shape
    inner = cols - 2 * pad
    count, width = -(-inner // _BLOCK), _BLOCK + 2 * pad
    flat = x.reshape(bands * rows, cols)
    if count * _BLOCK + 2 * pad > cols:  # a last, partial block: zeros beyond it
        flat = np.pad(flat, ((0, 0), (0, count * _BLOCK + 2 * pad - cols)))
    out = np.empty((flat.shape[0], count * ratio * _BLOCK), np.float32)
    step_row, step = flat.strides
    chunk = max(1, _CHUNK_BYTES // (count * width * 4))
    for lo in range(0, flat.shape[0], chunk):
        part = flat[lo : lo + chunk]
        blocks = np.lib.stride_tricks.as_strided(part, (part.shape[0], count, width), (step_row, _BLOCK * step, step))
        np.matmul(np.ascontiguousarray(blocks).reshape(-1, width), operator,
                  out=out[lo : lo + chunk].reshape(-1, ratio * _BLOCK))
    return out.reshape(bands, rows, -1)[..., : ratio * inner]


def bicubic(ms: np.ndarray, ratio: int) -> np.ndarray:
    """Keys cubic convolution (a = -0.5) for any integer ratio, same phase as interp23tap.

    LMS sample ``y = r*i + s`` reads the MS at ``u = i + (s - r/2)/r`` with the four
    taps around ``u``; borders are mirror-extended like interp23tap. This is an
    interpolating filter: for even ``r`` the phase ``s = r/2`` returns the MS sample.
    """
    ratio = _check_ratio(ratio)
    image, squeeze = _as_stack(ms)
    return _finish(_separable(image, "bicubic", ratio), squeeze)


def _double(x: np.ndarray, axis: int, first: bool, drop: int = 0) -> np.ndarray:
    """One interp23tap doubling along ``axis``, dropping ``drop`` input samples (and
    their new neighbours) at each end. Values within the filter's reach of the ends
    are wrong (``mode`` is irrelevant); the caller's mirror extension absorbs them."""
    if first:
        # Sample i goes to 2i+1; position 2i is half-way between x[i-1] and x[i].
        halfway = _correlate_nearest(x, _HALFWAY_KERNEL, axis, origin=0)
        parts = (halfway, x)
    else:
        # Sample p goes to 2p; position 2p+1 is half-way between x[p] and x[p+1].
        halfway = _correlate_nearest(x, _HALFWAY_KERNEL, axis, origin=-1)
        parts = (x, halfway)
    if drop:
        inner = [slice(None)] * x.ndim
        inner[axis] = slice(drop, x.shape[axis] - drop)
        parts = tuple(part[tuple(inner)] for part in parts)
    return _interleave(parts, axis)


def _cubic_along(x: np.ndarray, axis: int, ratio: int, pad: int) -> np.ndarray:
    """Keys cubic upsampling by ``ratio`` along ``axis`` of the samples
    ``pad .. n - pad - 1`` (the rest is the mirror extension): one 4-tap correlation
    per output phase."""
    inner = [slice(None)] * x.ndim
    inner[axis] = slice(pad, x.shape[axis] - pad)
    phases = []
    for s in range(ratio):
        offset = (s - ratio / 2.0) / ratio  # u - i, in [-1/2, 1/2)
        base = int(np.floor(offset))  # -1 or 0: taps at i + base - 1 .. i + base + 2
        weights = np.array(_keys_weights(offset - base), dtype=np.float32)
        phase = _correlate_nearest(x, weights, axis, origin=-1 - base)
        phases.append(phase[tuple(inner)])
    return _interleave(phases, axis)


def _correlate_nearest(x: np.ndarray, weights: np.ndarray, axis: int, origin: int) -> np.ndarray:
    """``scipy.ndimage.correlate1d(x, weights, axis, mode="nearest", origin=origin)``:
    ``out[i] = sum_j weights[j] x[i + j - c]`` with ``c = len(weights) // 2 + origin``.
    Only ever run on the small impulse stacks of :func:`_block_operator`."""
    centre = len(weights) // 2 + origin
    n = x.shape[axis]
    widths = [(0, 0)] * x.ndim
    widths[axis] = (centre, len(weights) - 1 - centre)
    padded = np.pad(x, widths, mode="edge")
    return sum(float(w) * np.take(padded, np.arange(j, j + n), axis=axis) for j, w in enumerate(weights))


def _keys_weights(t: float) -> tuple[float, float, float, float]:
    """Weights of the taps at distances t+1, t, 1-t, 2-t from the sample point."""
    a = _KEYS_A

    def kernel(d: float) -> float:
        d = abs(d)
        if d <= 1.0:
            return (a + 2.0) * d**3 - (a + 3.0) * d**2 + 1.0
        if d < 2.0:
            return a * d**3 - 5.0 * a * d**2 + 8.0 * a * d - 4.0 * a
        return 0.0

    return kernel(t + 1.0), kernel(t), kernel(1.0 - t), kernel(2.0 - t)


def _interleave(parts, axis: int) -> np.ndarray:
    """Interleave equally shaped arrays along ``axis``: out[k*i + j] = parts[j][i]."""
    stacked = np.stack(parts, axis=axis + 1)
    shape = list(parts[0].shape)
    shape[axis] *= len(parts)
    return stacked.reshape(shape)


def _as_stack(ms: np.ndarray):
    array = np.asarray(ms)
    if array.ndim == 2:
        return array[None].astype(np.float32, copy=False), True
    if array.ndim == 3:
        return array.astype(np.float32, copy=False), False
    raise PansharpenError(
        f"expected an MS image shaped (bands, rows, cols) or (rows, cols), got shape "
        f"{array.shape}"
    )


def _finish(stack: np.ndarray, squeeze: bool) -> np.ndarray:
    out = np.ascontiguousarray(stack, dtype=np.float32)
    return out[0] if squeeze else out


def _check_ratio(ratio) -> int:
    if int(ratio) != ratio or ratio < 1:
        raise PansharpenError(
            f"the PAN/MS resolution ratio must be a positive integer, got {ratio!r}"
        )
    return int(ratio)


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0

"""The check behind ``auto``: does the deep model win on THIS scene?

A shipped model fits a pair by band count and ratio, yet it may lose to a classical
method on a sensor or a landscape it never saw. Before committing, the engine sharpens
a content-rich sample of the user's own scene at reduced resolution (Wald's protocol
on the user's inputs: the sample's MS is the reference, no ground truth needed) with
the candidate deep model and with the classical methods, scores each with Q2n, and
keeps the best.

Project choices, named: the sample is the ``SAMPLE`` x ``SAMPLE`` PAN window (whole MS
pixels, fully valid) with the most PAN gradient energy, found on a decimated read of
the PAN (a flat field or cloud says little about sharpening); candidates beside the
deep model are ``families.CLASSICAL_CANDIDATES``: ``gsa``, ``mtf-glp-hpm`` and, since session 19,
``mtf-glp-hpm-h`` (the best classical methods on every scene of our benchmark); Q2n decides (it weighs spectral and spatial fidelity
together), SAM and ERGAS are reported. A deep model is kept unless a classical method
beats it by more than ``MARGIN`` Q2n. The deep model is scored at the anchor share
the run will take (``anchor.default_share`` unless the user gave one): from session 17 to 20
the check chose the share with the best Q2n on its sample among 0, 0.25 and 0.5, and on
the left-out inputs that choice scored worse on every index, on average, than the fixed
share (``anchor``'s module doc, "The share is fixed"). A scene
too small for a sample whose degraded copy has the pixels of a ``MIN_REDUCED`` x
``MIN_REDUCED`` square is not checked (``benchmarks/guard_resolution.py``: on our left-out
scenes the check's margin had the sign of the true one with a 320-pixel sample at ratio 4,
80 pixels once degraded, and not with 256 or 128; on the SpaceNet-6 tiles' 150-pixel reduced
inputs it picked a method up to 0.019 Q2n below the best classical one). ``auto`` then runs
the deep model, at the same share, as a deep method named by the user runs there: on the
ten left-out inputs too small to check it scored -0.0003 to +0.0249 Q2n against the best of the
classical methods, GDAL's and OTB's (the 8-band WorldView-3 patches at 8 bits, gsa 0.9399 against
0.9396; +0.0002 to +0.0249 at the share 0.5, which lost more SAM: ``docs/losses.md``),
where mtf-glp-hpm alone fell up to 0.011 below OTB's BundleToPerfectSensor (docs/adaptation.md,
"The fallback").

A classical method that wins the Q2n test replaces the deep model only if it also does no
worse at the sample's own scale, where the user's product is made: HQNR (no reference
needed) of both on the sample as it is (``confirm_at_full``). Q2n at reduced resolution
does not see everything a user gets: on the leave-one-scene-out inputs the test alone
chose gsa for SpaceNet-6 tile 1's 8-bit product by 0.003 Q2n on its sample, where fose's
HQNR was 0.909 against gsa's 0.749 on the same sample (0.910 against 0.746 on the whole
tile), and mtf-glp-hpm for the 8-band WorldView-2 scene by 0.003 (HQNR on the sample
0.966 against 0.931; 0.944 against 0.898 on the whole scene). ``docs/adaptation.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import binary_dilation

from .anchor import ANCHOR
from .classical import CLASSICAL
from .errors import PansharpenError
from .evaluate import Pair, sharpen_arrays
from .families import CLASSICAL_CANDIDATES
from .mtf import wald_degrade
from .pairs import FULL_BORDER

SAMPLE = 512  # PAN pixels a side of the checked window (at most)
MARGIN = 0.0  # Q2n a classical method must win by to replace the deep model
OVERVIEW = 256  # pixels a side of the decimated PAN read that finds the sample
MIN_REDUCED = 80  # the sample's degraded copy needs the pixels of this square to be checked


@dataclass
class Verdict:
    """What the check measured and chose."""

    method: str
    weights: str | None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    undecided: bool = False  # the scene is too small for the check (module doc)
    anchor: float = ANCHOR  # the anchor share the deep model was scored at
    sample: Pair | None = field(default=None, repr=False)  # what was checked: a second check reuses it
    full: dict[str, float] = field(default_factory=dict)  # HQNR on the sample as it is (``confirm_at_full``)

    def summary(self) -> str:
        """"fose: Q2n 0.931 (anchor 0.625), gsa: Q2n 0.950 on a 512 x 512 sample of this scene ..."."""
        if self.undecided:
            return (f"this scene gives only a {self.size[1]} x {self.size[0]} sample, too small for the "
                    "check to tell the methods apart")
        parts = ", ".join(f"{name}: Q2n {s['Q2n']:.3f}" + ("" if name in CLASSICAL else f" (anchor {self.anchor:g})")
                          for name, s in self.scores.items())
        text = f"{parts} on a {self.size[1]} x {self.size[0]} sample of this scene (reduced resolution)"
        if self.full:
            text += "; HQNR at its own scale " + ", ".join(f"{n}: {v:.3f}" for n, v in self.full.items())
        return text

    @property
    def best(self) -> str:
        return max(self.scores, key=lambda n: self.scores[n]["Q2n"])

    def loses(self, name: str) -> bool:
        """Beaten on Q2n by more than ``MARGIN`` and, where measured, not ahead on HQNR."""
        best = self.best
        beaten = best != name and self.scores[best]["Q2n"] > self.scores[name]["Q2n"] + MARGIN
        return beaten and not (name in self.full and self.full[name] > self.full[best])


def content_window(pair, size: int = SAMPLE) -> tuple[int, int, int, int]:
    """(row, col, height, width) in the output window of the sample: a multiple of
    ratio^2 a side, on whole MS pixels, fully valid, with the most PAN detail. Where no
    window of ``size`` lies wholly inside the valid data (a scene footprint in nodata
    fill narrower than the sample), the largest smaller one that does: each try 3/4 of
    the last a side, down to about 8 MS pixels."""
    r = pair.ratio
    win = pair.window
    px, py = pair.ms_phase
    y_first, x_first = (r - py) % r, (r - px) % r  # first row/col starting an MS pixel
    unit = r * r
    h = min(size, (win.height - y_first) // unit * unit)
    w = min(size, (win.width - x_first) // unit * unit)
    if h < 8 * r or w < 8 * r:
        raise PansharpenError("the overlap is too small to check the methods on a sample")
    step = max(1, math.ceil(max(win.width, win.height) / OVERVIEW))
    band = pair.pan_ds.GetRasterBand(pair.pan_band_index)
    ov = band.ReadAsArray(win.x0, win.y0, win.width, win.height,
                          buf_xsize=max(1, win.width // step), buf_ysize=max(1, win.height // step))
    ov = ov.astype(np.float32)
    nodata = pair.pan_nodata
    bad = ~np.isfinite(ov) | ((ov == nodata) if nodata is not None else False)
    if pair.fill is not None:  # fill around the scene without a nodata value (raster_io.edge_fill)
        bad |= ov == pair.fill
    if pair.pan_mask is not None:  # an alpha band or a mask beside the PAN
        bad |= pair.pan_mask.ReadAsArray(win.x0, win.y0, win.width, win.height,
                                         buf_xsize=ov.shape[1], buf_ysize=ov.shape[0]) == 0
    gy, gx = np.gradient(np.where(bad, np.nanmean(np.where(bad, np.nan, ov)), ov))
    energy = np.where(bad, 0.0, np.hypot(gx, gy))
    near_bad = binary_dilation(bad) if bad.any() else bad  # a decimated read can miss a fill edge by a pixel
    sums = [np.pad(a.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1) for a in (energy, near_bad)]
    least = -(-8 * r // unit) * unit
    while True:
        at = _richest_clean_window(*sums, max(1, h // step), max(1, w // step))
        if at is not None or max(h, w) <= least:
            break
        h, w = (max(least, n * 3 // 4 // unit * unit) for n in (h, w))
    if at is None:
        raise PansharpenError("no fully valid sample of the scene to check the methods on")
    y = y_first + min((at[0] * step) // r * r, (win.height - y_first - h) // r * r)
    x = x_first + min((at[1] * step) // r * r, (win.width - x_first - w) // r * r)
    return max(y, y_first), max(x, x_first), h, w


def _richest_clean_window(energy, bad, bh: int, bw: int) -> tuple[int, int] | None:
    """Top-left (overview pixels) of the bh x bw window with no bad pixel and the most
    energy, among windows a quarter of their side apart; None where each has a bad one.
    ``energy`` and ``bad``: summed-area tables (one row and column of zeros first)."""
    box = lambda t, i, j: t[i + bh, j + bw] - t[i, j + bw] - t[i + bh, j] + t[i, j]
    best, best_at = -np.inf, None
    for i in range(0, max(1, energy.shape[0] - bh), max(1, bh // 4)):
        for j in range(0, max(1, energy.shape[1] - bw), max(1, bw // 4)):
            total = box(energy, i, j)
            if box(bad, i, j) == 0 and total > best:
                best, best_at = total, (i, j)
    return best_at


def read_sample(pair, size: int = SAMPLE) -> Pair:
    """The sample window of a ``RasterPair`` as an in-memory pair (digital numbers)."""
    r = pair.ratio
    y, x, h, w = content_window(pair, size)
    px, py = pair.ms_phase
    pan, pan_ok = pair.read_pan((y, y + h), (x, x + w))
    k, j = (y + py) // r, (x + px) // r
    ms, ms_ok = pair.read_ms((k, k + h // r), (j, j + w // r))
    if not (pan_ok.all() and ms_ok.all()):
        raise PansharpenError("no fully valid sample of the scene to check the methods on")
    return Pair(pan.astype(np.float32), ms.astype(np.float32), r, pair.scale, pair.sensor)


def score_candidates(sample: Pair, candidates: dict[str, str | None], *, device: str = "auto",
                     half: bool = True, prepare_method=None, consistent: bool = True,
                     anchor: float = ANCHOR, register: bool = False) -> dict[str, dict[str, float]]:
    """Q2n, SAM, ERGAS of each candidate (name -> weights file or None; a deep one at the
    anchor share ``anchor``) on the sample's Wald-degraded copy, against the sample's MS."""
    from . import quality

    r = sample.ratio
    pan_lr, ms_lr = wald_degrade(sample.pan, sample.ms, r, sample.sensor)
    reduced = Pair(pan_lr.astype(np.float32), ms_lr.astype(np.float32), r, sample.scale, sample.sensor)
    block = min(32, *sample.ms.shape[1:])  # a small scene: one block of its size
    scores = {}
    for name, weights in candidates.items():
        fused = sharpen_arrays(reduced, name, weights=weights, device=device, half=half,
                               prepare_method=prepare_method, consistent=consistent, anchor=anchor,
                               register=register)
        scores[name] = {"Q2n": quality.q2n(fused, sample.ms, block=block, shift=block),
                        "SAM": quality.sam(fused, sample.ms), "ERGAS": quality.ergas(fused, sample.ms, r)}
    return scores


def check(pair, method: str, weights: str | None, *, device: str = "auto", half: bool = True,
          size: int = SAMPLE, prepare_method=None, consistent: bool = True,
          anchor: float = ANCHOR, register: bool = False) -> Verdict:
    """Score ``method`` (a deep model, at the anchor share ``anchor``) against the classical
    candidates on a sample of ``pair`` and return the verdict (the best by Q2n, the deep
    model on a tie)."""
    return judge(read_sample(pair, size), method, weights, device=device, half=half,
                 prepare_method=prepare_method, consistent=consistent, anchor=anchor, register=register)


def confirm_at_full(sample: Pair, candidates: dict[str, str | None], **options) -> dict[str, float]:
    """HQNR of each candidate (name -> weights or None) sharpening the sample as it is
    (``options``: those of ``score_candidates``), its values below zero cut as storing
    cuts them where the MS has none."""
    from . import quality

    border = min(FULL_BORDER, min(sample.pan.shape) // 8)
    floor = 0.0 if (sample.ms >= 0).all() else -np.inf
    scores = {}
    for name, weights in candidates.items():
        fused = np.maximum(sharpen_arrays(sample, name, weights=weights, **options), floor)
        scores[name] = quality.full_indices(fused, sample.pan, sample.ms, sample.ratio, sample.sensor,
                                            border=border)["HQNR"]
    return scores


def too_small(shape: tuple[int, int], ratio: int) -> bool:
    """Whether a sample of ``shape`` PAN pixels is too small for the check (module doc)."""
    return shape[0] * shape[1] < (MIN_REDUCED * ratio) ** 2


def judge(sample: Pair, method: str, weights: str | None, **options) -> Verdict:
    """``check``'s verdict on a sample in hand (``options``: those of ``score_candidates``)."""
    if too_small(sample.pan.shape, sample.ratio):
        return Verdict(method, weights, {}, sample.pan.shape, undecided=True, sample=sample)
    candidates = {method: weights, **{c: None for c in CLASSICAL_CANDIDATES if c != method}}
    scores = score_candidates(sample, candidates, **options)
    verdict = Verdict(method, weights, scores, sample.pan.shape, anchor=options.get("anchor", ANCHOR),
                      sample=sample)
    if verdict.loses(method):
        verdict.full = confirm_at_full(sample, {method: weights, verdict.best: None}, **options)
        if verdict.loses(method):
            verdict.method, verdict.weights = verdict.best, None
    return verdict

"""Evaluate methods on a real PAN/MS pair, at reduced (Wald) or full resolution.

Reduced resolution: PAN and MS are degraded by Wald's protocol (``mtf.wald_degrade``),
each method sharpens the degraded pair through the same tiled engine as ``sharpen``,
and the result is scored against the original MS. Full resolution: each method
sharpens the pair as it is and is scored without reference (QNR, HQNR). Indices are
computed on digital numbers, for the whole image and as the mean over tiles of
``EVAL_TILE`` pixels (the size of the PanCollection reduced-resolution test images is
256; ours is smaller so that the 1280 x 1280 test scenes give several tiles).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import quality, registration
from .classical import CLASSICAL
from .errors import PansharpenError
from .anchor import ANCHOR
from .methods import deep_options, prepare
from .mtf import wald_degrade
from .pairs import FULL_BORDER, read_mat_pair, read_whole_ms
from .raster_io import RasterPair
from .sensors import canonical
from .streaming import ArraySource, run_tiled
from .tiling import DEFAULT_OVERLAP

EVAL_TILE = 128  # pixels of the scored image (PAN grid of the sharpened product)
BASELINE = "lms"  # the MS interpolated to the PAN grid: the "EXP" baseline of the toolbox


@dataclass
class Pair:
    """PAN (H, W) and MS (B, H/r, W/r) in digital numbers on the aligned grid."""

    pan: np.ndarray
    ms: np.ndarray
    ratio: int
    scale: float
    sensor: str | None


def load_pair(pan: str, ms: str, pan_band: int | None = None, sensor: str | None = None) -> Pair:
    """Read a whole pair into memory: a MATLAB .mat pair, or two rasters GDAL opens."""
    if pan.lower().endswith(".mat"):
        return _load_mat(pan, sensor)
    pair = RasterPair(pan, ms, pan_band, sensor)
    _, pan_data, _, ms_data, _ = read_whole_ms(pair)  # PAN and MS on exactly the same ground
    return Pair(pan_data, ms_data, pair.ratio, pair.scale, pair.sensor)


def _load_mat(path: str, sensor: str | None) -> Pair:
    mat = read_mat_pair(path, np.float32, default_ratio=4)
    return Pair(mat.pan, mat.ms, mat.ratio, mat.scale, canonical(sensor or mat.sensor))


def sharpen_arrays(pair: Pair, method_name: str, *, weights=None, device="auto",
                   tile=None, overlap=DEFAULT_OVERLAP, progress=None, half: bool = True,
                   prepare_method=None, consistent: bool = True, anchor: float = ANCHOR,
                   register: bool = False) -> np.ndarray:
    """Run a method over in-memory arrays through the tiled engine; (B, H, W) DN.
    ``prepare_method`` replaces ``methods.prepare`` (as in ``pipeline.sharpen``);
    ``consistent`` False keeps deep outputs unprojected (``consistency``), ``anchor``
    is the classical share of a deep output (``anchor``), ``register`` moves a deep
    method's PAN onto the MS first (``registration``)."""
    if method_name == BASELINE:
        from .upsample import upsample

        return upsample(pair.ms, pair.ratio).astype(np.float32)
    height, width = pair.pan.shape
    out = np.zeros((pair.ms.shape[0], height, width), dtype=np.float32)
    options = deep_options(method_name, consistent, anchor)
    if register and method_name not in CLASSICAL:
        pair, _ = registration.align(pair)
    method = (prepare_method or prepare)(method_name, ratio=pair.ratio, bands=pair.ms.shape[0],
                                         sensor=pair.sensor, weights=weights, device=device, half=half,
                                         **options)

    def sink(y0, x0, values, valid):
        out[:, y0:y0 + values.shape[1], x0:x0 + values.shape[2]] = values

    source = ArraySource(pair.pan, pair.ms, pair.ratio, pair.scale)
    run_tiled(source, method, height, width, sink, tile=tile, overlap=overlap, progress=progress)
    return out


def _crop_to(pair: Pair, multiple: int) -> Pair:
    """Crop so the PAN size is a multiple of ``multiple`` (Wald degradation needs it)."""
    r = pair.ratio
    h = pair.pan.shape[0] // multiple * multiple
    w = pair.pan.shape[1] // multiple * multiple
    if h == 0 or w == 0:
        raise PansharpenError(f"The pair is too small to evaluate: at least {multiple} PAN pixels a side.")
    return Pair(pair.pan[:h, :w], pair.ms[:, :h // r, :w // r], r, pair.scale, pair.sensor)


def tiles_mean(score, fused: np.ndarray, *others: np.ndarray, tile: int, scale_of=None) -> dict:
    """Mean of ``score(fused_tile, *other_tiles)`` over non-overlapping tiles of ``fused``.

    ``scale_of`` gives each other array's size relative to ``fused`` (1 for the same
    grid, 1/ratio for the MS).
    """
    height, width = fused.shape[-2:]
    rows, cols = height // tile, width // tile
    if rows == 0 or cols == 0:
        return {}
    scale_of = scale_of or [1.0] * len(others)
    results = []
    for i in range(rows):
        for j in range(cols):
            parts = [fused[..., i * tile:(i + 1) * tile, j * tile:(j + 1) * tile]]
            for array, s in zip(others, scale_of):
                t = int(round(tile * s))
                parts.append(array[..., i * t:(i + 1) * t, j * t:(j + 1) * t])
            results.append(score(*parts))
    return {key: float(np.mean([r[key] for r in results])) for key in results[0]}


def evaluate(pan: str, ms: str, methods: list[str], *, protocol: str = "reduced",
             sensor: str | None = None, pan_band: int | None = None, weights=None,
             device: str = "auto", tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
             progress=None) -> dict:
    """Score each method on the pair; returns a JSON-ready report."""
    if protocol not in ("reduced", "full"):
        raise PansharpenError(f"Unknown protocol {protocol!r}: use reduced or full.")
    if not methods:
        raise PansharpenError("No methods given: list them, e.g. --methods brovey,gsa,mtf-glp-hpm.")
    pair = load_pair(pan, ms, pan_band, sensor)
    report = evaluate_pair(pair, methods, protocol=protocol, weights=weights, device=device,
                           tile=tile, overlap=overlap, progress=progress)
    return {"protocol": report.pop("protocol"), "pan": pan, "ms": ms, **report}


def evaluate_pair(pair: Pair, methods: list[str], *, protocol: str = "reduced", weights=None,
                  device: str = "auto", tile: int | None = None, overlap: int = DEFAULT_OVERLAP, progress=None,
                  external: dict | None = None, fused_out: dict | None = None) -> dict:
    """Score methods on an in-memory pair (see module doc); a JSON-ready report.

    ``weights``: one file for every deep method, or a dict method -> file.
    ``external``: more methods as functions ``f(run_pair) -> (B, H, W) DN`` (e.g. another
    tool), scored the same way. ``fused_out``, when given, receives each fused image.
    """
    if protocol not in ("reduced", "full"):
        raise PansharpenError(f"Unknown protocol {protocol!r}: use reduced or full.")
    r = pair.ratio
    if protocol == "reduced":
        pair = _crop_to(pair, r * r)
        pan_lr, ms_lr = wald_degrade(pair.pan, pair.ms, r, pair.sensor)
        target = pair.ms
        run_pair = Pair(pan_lr.astype(np.float32), ms_lr.astype(np.float32), r, pair.scale, pair.sensor)
    else:
        pair = _crop_to(pair, r)
        run_pair = pair
    report = {
        "protocol": protocol, "ratio": r, "sensor": pair.sensor,
        "scale": pair.scale, "size": list(run_pair.pan.shape), "eval_tile": EVAL_TILE,
        "border": 0 if protocol == "reduced" else FULL_BORDER, "methods": {},
    }
    runners = {name: None for name in methods}
    runners.update(external or {})
    for name, runner in runners.items():
        start = time.perf_counter()
        if runner is not None:
            fused = np.asarray(runner(run_pair), dtype=np.float32)
        else:
            file = weights.get(name) if isinstance(weights, dict) else weights
            fused = sharpen_arrays(run_pair, name, weights=file, device=device, tile=tile,
                                   overlap=overlap, progress=progress(name) if progress else None)
        seconds = time.perf_counter() - start
        if fused_out is not None:
            fused_out[name] = fused
        if protocol == "reduced":
            whole = quality.reduced_indices(fused, target, r)
            mean = tiles_mean(lambda f, t: quality.reduced_indices(f, t, r), fused, target, tile=EVAL_TILE)
        else:
            whole = quality.full_indices(fused, pair.pan, pair.ms, r, pair.sensor, border=FULL_BORDER)
            mean = tiles_mean(lambda f, p, m: quality.full_indices(f, p, m, r, pair.sensor, border=0),
                              fused, pair.pan, pair.ms, tile=max(EVAL_TILE, 32 * r), scale_of=[1.0, 1.0 / r])
        report["methods"][name] = {"whole": whole, "tiles_mean": mean, "seconds": seconds}
    return report


def format_table(report: dict) -> str:
    """A plain-text table: one row per method, whole-image and tile-mean indices."""
    methods = report["methods"]
    if not methods:
        return "(no methods)"
    keys = list(next(iter(methods.values()))["whole"])
    head = f"{'method':14s}" + "".join(f"{k:>11s}" for k in keys) + "".join(f"{'mean ' + k:>13s}" for k in keys) + f"{'seconds':>9s}"
    lines = [
        f"{report['protocol']} resolution, ratio {report['ratio']}, sensor {report['sensor'] or 'unknown'}, "
        f"size {report['size'][0]} x {report['size'][1]}, tiles of {report['eval_tile']}",
        head, "-" * len(head),
    ]
    for name, res in methods.items():
        mean = res["tiles_mean"]
        lines.append(
            f"{name:14s}" + "".join(f"{res['whole'][k]:11.4f}" for k in keys)
            + "".join(f"{mean.get(k, math.nan):13.4f}" for k in keys) + f"{res['seconds']:9.2f}"
        )
    return "\n".join(lines)


def format_scores(scores: dict) -> str:
    return "\n".join(f"{k:12s} {v:.4f}" for k, v in scores.items())

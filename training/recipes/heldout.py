"""Scoring on the held-out region: every method, GDAL's pansharpening, and speed.

The held-out region is the validation strip of the training split (the right-most
``val_fraction`` of the MS columns, never seen by training). Reduced resolution
(Wald's protocol) gives SAM, ERGAS, Q2n, SCC against the strip's MS; full resolution
gives D_lambda, D_s, QNR, HQNR on the strip as it is (``engine.evaluate.evaluate_pair``,
the same tiled engine a user runs).
"""
from __future__ import annotations

import statistics
import time

import numpy as np
from osgeo import gdal

from ...engine import registry
from ...engine.evaluate import Pair, evaluate_pair

CLASSICAL = ("brovey", "gihs", "gsa", "mtf-glp-hpm")
BASELINE = "lms"
GDAL = "gdal:pansharp"
REDUCED_KEYS = ("SAM", "ERGAS", "Q2n", "SCC")
FULL_KEYS = ("D_lambda", "D_s", "QNR", "HQNR")
PICTURE = ("brovey", "gsa", "fose", "ksdiff")  # with PAN and LMS


def gdal_pansharpen(pair: Pair) -> np.ndarray:
    """What ``gdal:pansharp`` runs with its defaults: GDAL's weighted Brovey with equal
    weights 1/B and cubic resampling of the MS (``gdal.CreatePansharpenedVRT``).

    The MS geotransform puts MS pixel m over PAN pixels [r m + 1/2, r (m + 1) + 1/2),
    the engine's aligned grid, so GDAL's cubic LMS and ours sample the same phase."""
    r, (bands, h, w) = pair.ratio, pair.ms.shape
    mem = gdal.GetDriverByName("MEM")
    pan = mem.Create("", pair.pan.shape[1], pair.pan.shape[0], 1, gdal.GDT_Float32)
    pan.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    pan.GetRasterBand(1).WriteArray(pair.pan.astype(np.float32))
    ms = mem.Create("", w, h, bands, gdal.GDT_Float32)
    ms.SetGeoTransform((0.5, float(r), 0.0, -0.5, 0.0, -float(r)))
    for b in range(bands):
        ms.GetRasterBand(b + 1).WriteArray(pair.ms[b].astype(np.float32))
    weights = ",".join([repr(1.0 / bands)] * bands)
    spectral = "".join(f'<SpectralBand dstBand="{b + 1}"></SpectralBand>' for b in range(bands))
    xml = ('<VRTDataset subClass="VRTPansharpenedDataset"><PansharpeningOptions>'
           '<Algorithm>WeightedBrovey</Algorithm>'
           f'<AlgorithmOptions><Weights>{weights}</Weights></AlgorithmOptions>'
           f'<Resampling>Cubic</Resampling>{spectral}</PansharpeningOptions></VRTDataset>')
    vrt = gdal.CreatePansharpenedVRT(xml, pan.GetRasterBand(1),
                                     [ms.GetRasterBand(b + 1) for b in range(bands)])
    data = vrt.ReadAsArray().astype(np.float32)
    return data.reshape(bands, *pair.pan.shape)


def score(heldout: Pair, weights: dict[str, str], device: str = "cpu") -> tuple[dict, dict]:
    """(reports {"reduced": ..., "full": ...}, full-resolution fused images of the
    picture's methods). ``weights``: deep method -> file (methods without one are skipped)."""
    methods = [m for m in registry.names() if m in weights] + list(CLASSICAL) + [BASELINE]
    fused: dict = {}
    reports = {}
    for protocol in ("reduced", "full"):
        keep = {} if protocol == "full" else None
        reports[protocol] = evaluate_pair(heldout, methods, protocol=protocol, weights=weights,
                                          device=device, external={GDAL: gdal_pansharpen},
                                          fused_out=keep)
        if keep is not None:
            fused = {k: v for k, v in keep.items() if k in PICTURE + (BASELINE,)}
    return reports, fused


def latency(path: str, tile: int = 512, repeats: int = 2) -> dict:
    """Seconds per ``tile`` x ``tile`` PAN tile on the CPU (median of ``repeats`` after a
    warm-up; one run for the 50-step teacher), with the torch thread count."""
    import torch

    from ...engine.models import count_parameters, load

    model = load(path, device="cpu")
    r, b = model.ratio, model.bands
    rng = np.random.default_rng(0)
    pan = rng.uniform(0, 1, (tile, tile)).astype(np.float32)
    lms = rng.uniform(0, 1, (b, tile, tile)).astype(np.float32)
    ms = rng.uniform(0, 1, (b, tile // r, tile // r)).astype(np.float32)
    runs = 1 if model.architecture == "dm50" else repeats
    if runs > 1:
        model(pan, lms, ms)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(pan, lms, ms)
        times.append(time.perf_counter() - start)
    return {"seconds_per_tile": statistics.median(times), "tile": tile,
            "threads": torch.get_num_threads(), "parameters": count_parameters(model.model)}


def rows(report: dict, keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """method -> {index: whole-image value} of a report."""
    return {name: {k: res["whole"][k] for k in keys} for name, res in report["methods"].items()}

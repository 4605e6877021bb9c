"""A scene whose PAN is simulated from its own bands: how the deep models do on a PAN of
another spectral response than their training sensors'.

    .venv/bin/python benchmarks/simulated_pan.py [--pan rgb|mean|vis-nir] [--weights DIR] [--family landsat8]

The truth is the Landsat-8 scene's blue, green, red and NIR bands at 30 m (600 x 624, from
``../shared/data/landsat8``); the PAN is a weighted mean of those bands (``--pan``: "rgb" the
visible three, like Landsat's own PAN; "mean" all four; "vis-nir" weights 0.1, 0.25, 0.35,
0.3); the MS is the truth degraded by 4 (``engine.mtf.degrade_to_ms_scale``, the generic
MTF). Prints Q2n, SAM and ERGAS against the truth for gsa and mtf-glp-hpm and for the deep
models in ``--weights`` (``DIR/<arch>.safetensors``; default the shipped vhr4 ones), each as
``sharpen`` runs it, stored as UInt16. ``--family landsat8``: the shipped landsat8 models at
ratio 2 instead, on the MS columns their recipe held out (the rest of the scene trained them).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

from diffusion_pansharpening.engine import quality
from diffusion_pansharpening.engine.evaluate import Pair, sharpen_arrays
from diffusion_pansharpening.engine.mtf import degrade_to_ms_scale, sensor_gains

ROOT = Path(__file__).resolve().parents[1]
PANS = {"rgb": (1 / 3, 1 / 3, 1 / 3, 0.0), "mean": (0.25, 0.25, 0.25, 0.25), "vis-nir": (0.1, 0.25, 0.35, 0.3)}


def scene(pan_kind: str, ratio: int = 4, columns: slice = slice(0, 624)) -> tuple[Pair, np.ndarray]:
    folder = ROOT.parent / "shared" / "data" / "landsat8"
    truth = np.stack([gdal.Open(str(folder / f"l8_B{b}.tif")).ReadAsArray().astype(np.float32)
                      for b in (2, 3, 4, 5)])[:, :600, columns]
    pan = np.tensordot(np.asarray(PANS[pan_kind], np.float32), truth, 1).astype(np.float32)
    gains, _ = sensor_gains(None, 4)
    ms = degrade_to_ms_scale(truth, gains, ratio).astype(np.float32)
    return Pair(pan, ms, ratio, 65535.0, None), truth


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pan", choices=sorted(PANS), default="rgb")
    p.add_argument("--weights", type=Path, default=None, help="folder of <arch>.safetensors (shipped vhr4 by default)")
    p.add_argument("--family", choices=("vhr4", "landsat8"), default="vhr4",
                   help="landsat8: its shipped models at ratio 2 on their held-out columns")
    args = p.parse_args(argv)
    shipped = ROOT / "resources" / "weights"
    if args.family == "landsat8":
        first = json.loads((shipped / "landsat8-quality.json").read_text())["heldout_columns"][0]
        pair, truth = scene(args.pan, 2, slice(first, 624))
    else:
        pair, truth = scene(args.pan)
    folder = args.weights
    path = (lambda a: str(folder / f"{a}.safetensors")) if folder else (
        lambda a: str(shipped / f"{args.family}-{a}.safetensors"))
    print(f"PAN simulated as '{args.pan}' {PANS[args.pan]}; weights {folder or 'shipped ' + args.family}")
    for method, weights in [("gsa", None), ("mtf-glp-hpm", None)] + [(a, path(a)) for a in ("fose", "ksdiff", "e2e")]:
        fused = np.clip(np.round(sharpen_arrays(pair, method, weights=weights, device="cpu")), 0, 65535)
        s = quality.reduced_indices(fused, truth, pair.ratio)
        print(f"{method:12s} Q2n {s['Q2n']:.4f}  SAM {s['SAM']:.3f}  ERGAS {s['ERGAS']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

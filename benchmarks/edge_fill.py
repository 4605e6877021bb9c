"""A scene in zero fill without a nodata value: what it did to the methods, and what
``raster_io.edge_fill`` gives back.

    .venv/bin/python benchmarks/edge_fill.py [--out FOLDER]

The bundled Landsat-8 sample, Wald-degraded once (its MS the reference), written as
GeoTIFFs three ways: as it is; with its top-left part (x/W + y/H < 0.6) set to 0 in the
PAN and every MS band and no nodata value (the fill of a scene's footprint); the same
with nodata 0 declared. Each is sharpened by ``pansharpen sharpen`` (fose without the
check, auto, mtf-glp-hpm) and scored on the scene's bottom-right part, away from the fill
(x > 0.6 W, y > 0.6 H). To see the fill read as data, run it at a commit before the
detection (31b1804^).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from diffusion_pansharpening.engine import quality
from diffusion_pansharpening.engine.mtf import wald_degrade

ROOT = Path(__file__).resolve().parents[1]

CUT = 0.6
METHODS = ("fose --no-check", "auto", "mtf-glp-hpm")


def write(path, array, like, pixel, nodata=None) -> str:
    array = array if array.ndim == 3 else array[None]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[2], array.shape[1], array.shape[0], gdal.GDT_UInt16)
    gt = like.GetGeoTransform()
    ds.SetGeoTransform((gt[0], pixel, 0, gt[3], 0, -pixel))
    ds.SetProjection(like.GetProjection())
    for b, band in enumerate(array):
        ds.GetRasterBand(b + 1).WriteArray(band)
        if nodata is not None:
            ds.GetRasterBand(b + 1).SetNoDataValue(nodata)
    return str(path)


def in_fill(array) -> np.ndarray:
    out = array.copy()
    rows, cols = np.mgrid[:array.shape[-2], :array.shape[-1]]
    out[..., rows / array.shape[-2] + cols / array.shape[-1] < CUT] = 0
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    folder = Path(args.out or tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    ms_ds, pan_ds = gdal.Open(str(ROOT / "resources/sample/ms.tif")), gdal.Open(str(ROOT / "resources/sample/pan.tif"))
    r = 2
    ms = ms_ds.ReadAsArray().astype(np.float32)
    h, w = ms.shape[1] // r * r, ms.shape[2] // r * r
    ms, pan = ms[:, :h, :w], pan_ds.ReadAsArray().astype(np.float32)[:h * r, :w * r]
    pan_lr, ms_lr = (np.round(a) for a in wald_degrade(pan, ms, r, "LANDSAT8"))
    pixel = abs(ms_ds.GetGeoTransform()[1])  # the degraded PAN takes the MS's pixel
    cases = {"as it is": (pan_lr, ms_lr, None), "in fill, no nodata": (in_fill(pan_lr), in_fill(ms_lr), None),
             "in fill, nodata 0": (in_fill(pan_lr), in_fill(ms_lr), 0)}
    y0, x0 = int(CUT * h), int(CUT * w)
    print("| input | method | Q2n | SAM | ERGAS | what the run said |\n|---|---|---:|---:|---:|---|")
    for n, (case, (p_, m_, nodata)) in enumerate(cases.items()):
        paths = (write(folder / f"pan{n}.tif", p_, ms_ds, pixel, nodata),
                 write(folder / f"ms{n}.tif", m_, ms_ds, pixel * r, nodata))
        for method in METHODS:
            out = folder / f"out{n}.tif"
            run = subprocess.run([str(ROOT / ".venv/bin/pansharpen"), "sharpen", *paths, str(out), "--overwrite",
                                  "--quiet", "--method", *method.split()], capture_output=True, text=True)
            lines = (run.stdout + run.stderr).splitlines()
            said = "; ".join([line.split(" on a ")[0] for line in lines if "heck" in line]
                             + ["0 taken as nodata" for line in lines if "0 in every band" in line])
            fused = gdal.Open(str(out)).ReadAsArray().astype(np.float64)
            s = quality.reduced_indices(fused[:, y0:, x0:], ms[:, y0:, x0:], r)
            print(f"| {case} | {method} | {s['Q2n']:.4f} | {s['SAM']:.3f} | {s['ERGAS']:.3f} | {said} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

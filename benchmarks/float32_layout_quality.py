"""Reduced-resolution quality of fose and e2e in float32 by memory layout and tile size.

Checks that channels-last PyTorch (the CPU float32 default) gives the image of the default
layout, and how far the default tile (``runtime.CHANNELS_LAST_TILE_INPUT``) moves the
indices from the former 384-pixel tile (docs/performance.md, "Deep methods on a quiet
machine"). Wald's protocol on the Landsat-8 PAN crop (1200 x 1200 of B8, B2-B5 beside it)
of ``../shared/data/landsat8``: the landsat8 family's training scene, so the numbers are
a relative comparison, not a quality claim. ``--no-check``, anchor share 0.5.

    DIFFUSION_PANSHARPENING_THREADS=2 .venv/bin/python benchmarks/float32_layout_quality.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from diffusion_pansharpening.engine.models import runtime
from diffusion_pansharpening.engine.mtf import wald_degrade
from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen
from diffusion_pansharpening.engine.quality import reduced_indices

LANDSAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "landsat8"
VARIANTS = (("contiguous, tile 384", 384, False), ("channels-last, tile 384", 384, True),
            ("channels-last, default tile", None, True))


def write(path: Path, stack: np.ndarray, pixel: float, like: gdal.Dataset) -> None:
    gt = like.GetGeoTransform()
    ds = gdal.GetDriverByName("GTiff").Create(str(path), stack.shape[2], stack.shape[1], stack.shape[0],
                                              gdal.GDT_UInt16)
    ds.SetGeoTransform((gt[0], pixel, 0, gt[3], 0, -pixel))
    ds.SetProjection(like.GetProjection())
    for i, band in enumerate(stack):
        ds.GetRasterBand(i + 1).WriteArray(np.clip(np.rint(band), 0, 65535).astype(np.uint16))


class _Contiguous(runtime.DeepModel):
    """The model in PyTorch's default layout (what ran before channels-last)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels_last = False
        self.model = self.model.to(memory_format=torch.contiguous_format)


def main() -> int:
    source = gdal.Open(str(LANDSAT / "l8_B8.tif"))
    pan = source.ReadAsArray()[:1200, :1200].astype(np.float64)
    ms = np.stack([gdal.Open(str(LANDSAT / f"l8_B{b}.tif")).ReadAsArray()[:600, :600]
                   for b in (2, 3, 4, 5)]).astype(np.float64)
    pan_lr, ms_lr = wald_degrade(pan, ms, 2, "LANDSAT8")
    step = source.GetGeoTransform()[1]
    print("| method | layout, tile | SAM | ERGAS | Q2n | SCC |\n|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp / "pan.tif", pan_lr[None], 2 * step, source)
        write(tmp / "ms.tif", ms_lr, 4 * step, source)
        for method in ("fose", "e2e"):
            for label, tile, channels_last in VARIANTS:
                original = runtime.DeepModel
                if not channels_last:
                    runtime.DeepModel = _Contiguous
                try:
                    out = tmp / "fused.tif"
                    sharpen(SharpenRequest(str(tmp / "pan.tif"), str(tmp / "ms.tif"), str(out), method=method,
                                           half=False, tile=tile, check=False, overwrite=True, sensor="LANDSAT8"))
                finally:
                    runtime.DeepModel = original
                s = reduced_indices(gdal.Open(str(out)).ReadAsArray().astype(np.float64), ms, 2)
                print(f"| {method} | {label} | " + " | ".join(f"{s[k]:.5f}" for k in ("SAM", "ERGAS", "Q2n", "SCC"))
                      + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long the internal overviews add to writing an output (issue 14, large outputs).

Builds an uncompressed tiled scratch GeoTIFF like the writer's (4 bands, UInt16, the
bundled sample's sharpened pixels tiled over the size asked for), then times the
writer's DEFLATE copy and ``add_overviews`` on it separately.

    .venv/bin/python benchmarks/overviews.py --size 8000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".build" / "plugins"))

from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen  # noqa: E402
from diffusion_pansharpening.engine.writer import (  # noqa: E402
    CREATION_OPTIONS, FINAL_OPTIONS, add_overviews, overview_factors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000, help="output side in pixels")
    size = parser.parse_args().size
    gdal.UseExceptions()
    with tempfile.TemporaryDirectory() as folder:
        sample = os.path.join(folder, "sample.tif")
        sharpen(SharpenRequest(str(ROOT / "resources/sample/pan.tif"), str(ROOT / "resources/sample/ms.tif"),
                               sample, method="brovey"))
        tile = gdal.Open(sample).ReadAsArray()
        scratch = os.path.join(folder, "scratch.tif")
        ds = gdal.GetDriverByName("GTiff").Create(scratch, size, size, 4, gdal.GDT_UInt16,
                                                  options=CREATION_OPTIONS)
        th, tw = tile.shape[1:]
        for y in range(0, size, th):
            for x in range(0, size, tw):
                block = tile[:, : min(th, size - y), : min(tw, size - x)]
                for b in range(4):
                    ds.GetRasterBand(b + 1).WriteArray(np.ascontiguousarray(block[b]), x, y)
        ds = None
        packed = os.path.join(folder, "packed.tif")
        start = time.perf_counter()
        gdal.Translate(packed, scratch, creationOptions=FINAL_OPTIONS)
        copy = time.perf_counter() - start
        start = time.perf_counter()
        add_overviews(packed)
        overviews = time.perf_counter() - start
    print(f"{size} x {size} x 4 UInt16: DEFLATE copy {copy:.1f} s, overviews "
          f"{overview_factors(size, size)} {overviews:.1f} s (+{100 * overviews / copy:.0f} % of the copy); "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory (RSS) of `pansharpen sharpen` against raster size: it must stay flat.

Builds PAN/MS pairs of N x N PAN pixels from the real Landsat-8 scene in
../shared/data (a 1200 x 1200 PAN crop and its 600 x 600 MS, upsampled through GDAL
VRTs with the native half-pixel phase kept), sharpens each in a fresh process, and
prints the peak resident memory of that process.

    .venv/bin/python benchmarks/peak_memory.py [--sizes 2000,16000] [--method brovey]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "landsat8"


def make_pair(size: int, folder: Path) -> tuple[str, str]:
    """A size x size PAN VRT and its size/2 MS VRT on Landsat's native phase."""
    from osgeo import gdal

    gdal.UseExceptions()
    pan_src = gdal.Open(str(SCENE / "l8_B8.tif"))
    x0, y0, px = pan_src.GetGeoTransform()[0], pan_src.GetGeoTransform()[3], 15.0 * 1200 / size
    pan = str(folder / f"pan_{size}.vrt")
    gdal.Translate(pan, pan_src, format="VRT", srcWin=[0, 0, 1200, 1200], width=size, height=size,
                   resampleAlg="bilinear", outputBounds=[x0, y0, x0 + size * px, y0 - size * px])
    stack = gdal.BuildVRT(str(folder / "stack.vrt"), [str(SCENE / f"l8_B{b}.tif") for b in (2, 3, 4, 5)],
                          separate=True)
    ms = str(folder / f"ms_{size}.vrt")
    half = size // 2
    mx, my = x0 + px / 2, y0 - px / 2  # MS grid half a PAN pixel east/south: Landsat's phase
    gdal.Translate(ms, stack, format="VRT", srcWin=[0, 0, 600, 600], width=half, height=half,
                   resampleAlg="bilinear", outputBounds=[mx, my, mx + half * 2 * px, my - half * 2 * px])
    return pan, ms


def run_one(pan: str, ms: str, out: str, method: str, tile: int) -> dict:
    """Sharpen in this process and report its peak RSS (called in a child process)."""
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    start = time.perf_counter()
    result = sharpen(SharpenRequest(pan, ms, out, method=method, tile=tile, overwrite=True))
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"pixels": result.info.width * result.info.height, "seconds": seconds,
            "peak_rss_mib": peak_kib / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,16000")
    parser.add_argument("--method", default="brovey")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--child", nargs=3, metavar=("PAN", "MS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*args.child, args.method, args.tile)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT / ".build") as tmp:
        folder = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            pan, ms = make_pair(size, folder)
            out = str(folder / f"out_{size}.tif")
            child = subprocess.run(
                [sys.executable, __file__, "--method", args.method, "--tile", str(args.tile),
                 "--child", pan, ms, out], check=True, capture_output=True, text=True)
            row = json.loads(child.stdout.strip().splitlines()[-1])
            row["size"] = size
            rows.append(row)
            Path(out).unlink()
            print(f"PAN {size:>6} x {size:<6} method {args.method:12s} {row['seconds']:8.1f} s  "
                  f"{row['pixels'] / row['seconds'] / 1e6:6.2f} MP/s  peak RSS {row['peak_rss_mib']:8.1f} MiB",
                  flush=True)
    base = rows[0]["peak_rss_mib"]
    for row in rows[1:]:
        print(f"peak RSS at {row['size']} minus at {rows[0]['size']}: {row['peak_rss_mib'] - base:+.1f} MiB "
              f"for {row['pixels'] / rows[0]['pixels']:.0f}x the pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: sharpen the bundled Landsat-8 sample through the plugin's Processing
algorithm run by qgis_process.bin, and write a GeoTIFF plus PNG quicklooks."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qgis_env import ROOT, qgis_process  # noqa: E402

from diffusion_pansharpening.engine.quicklook import quicklook, stretch_limits, rgb_bands  # noqa: E402
from diffusion_pansharpening.engine.raster_io import open_raster  # noqa: E402

SAMPLE = ROOT / "resources" / "sample"
OUT = ROOT / "out" / "demo"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    output = OUT / "sample_sharpened.tif"
    result = qgis_process(
        ["run", "diffusion_pansharpening:pansharpen", "--",
         f"PAN={SAMPLE / 'pan.tif'}", f"MS={SAMPLE / 'ms.tif'}", "METHOD=auto",
         f"OUTPUT={output}"],
        home=ROOT / ".build" / "qgis-home",
    )
    print(result.stdout)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        print("The demo failed: see the messages above.", file=sys.stderr)
        return result.returncode
    ds = open_raster(str(output), "result")
    limits = stretch_limits(ds, rgb_bands(ds))
    sharp_png = quicklook(str(output), str(OUT / "sample_sharpened.png"), limits=limits)
    ms_png = quicklook(str(SAMPLE / "ms.tif"), str(OUT / "sample_ms.png"), limits=limits,
                       max_size=1024)
    print(f"Sharpened GeoTIFF: {output}")
    print(f"Quicklook (true colour): {sharp_png}")
    print(f"The MS before sharpening, same stretch: {ms_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

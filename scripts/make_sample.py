"""Regenerate the bundled sample in resources/sample/ from the CC0 Landsat-8 scene.

Crops PAN (B8, 15 m) and MS (B2-B5, 30 m) over the same ground, keeping Landsat's
native grids: the MS grid starts half a PAN pixel east/south of the PAN grid.
Run: .venv/bin/python scripts/make_sample.py
"""
from pathlib import Path

from osgeo import gdal

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "landsat8"
OUT = ROOT / "resources" / "sample"
MS_WINDOW = (250, 100, 300, 300)  # xoff, yoff, xsize, ysize in MS pixels
BANDS = {"B2": "blue", "B3": "green", "B4": "red", "B5": "nir"}
CREATION = ["COMPRESS=DEFLATE", "PREDICTOR=2", "TILED=YES"]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    x, y, w, h = MS_WINDOW
    gdal.Translate(str(OUT / "pan.tif"), str(SCENE / "l8_B8.tif"),
                   srcWin=[2 * x, 2 * y, 2 * w, 2 * h], creationOptions=CREATION)
    stack = gdal.BuildVRT("", [str(SCENE / f"l8_{b}.tif") for b in BANDS], separate=True)
    ms = gdal.Translate(str(OUT / "ms.tif"), stack, srcWin=[x, y, w, h], creationOptions=CREATION)
    for i, name in enumerate(BANDS.values(), start=1):
        ms.GetRasterBand(i).SetDescription(name)
    ms = None
    pan = gdal.Open(str(OUT / "pan.tif"), gdal.GA_Update)
    pan.GetRasterBand(1).SetDescription("pan")
    pan = None


if __name__ == "__main__":
    main()

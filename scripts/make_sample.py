"""Regenerate the bundled sample in resources/sample/ from the CC0 Landsat-8 scene.

Crops PAN (B8, 15 m) and MS (B2-B5, 30 m) over the same ground, keeping Landsat's
native grids: the MS grid starts half a PAN pixel east/south of the PAN grid, so the
MS is cut on whole MS pixels (x0, y0) and the PAN at (2 x0, 2 y0), and PAN pixel
(2i+1, 2j+1) stays centred on MS pixel (i, j).
Run: .venv/bin/python scripts/make_sample.py
"""
from pathlib import Path

from osgeo import gdal

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "landsat8"
OUT = ROOT / "resources" / "sample"
# xoff, yoff, xsize, ysize in MS pixels: the cloud-free town, roads and fields in the
# scene's lower right (PAN columns 600-1253, rows 900-1205), below the cumulus field
MS_WINDOW = (300, 450, 327, 153)
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

"""The benchmark inputs: the bundled sample and two large scenes built from real data.

* ``sample``: the bundled Landsat-8 crop (654 x 306 PAN, 4 bands, ratio 2).
* ``landsat8``: the real Landsat-8 scene upsampled to N x N PAN through GDAL VRTs on
  its native half-pixel phase (``peak_memory.make_pair``).
* ``worldview2``: the GRIP WorldView-2 pair (1280 x 1280 PAN, 8 bands, ratio 4, no
  georeferencing). Project choice: it is written to GeoTIFFs with a made-up north-up
  geotransform (EPSG:32633, origin 500000 E / 5000000 N, 0.5 m PAN and 2 m MS pixels)
  on corner-aligned grids, as very-high-resolution products deliver them, and then
  tiled (copies side by side, real pixel size kept) to N x N PAN through a mosaic VRT.
  Corner-aligned grids are not the engine's centred phase, so the engine resamples
  the MS onto it: that cost is part of this scene's timings, as for a user's product.

Every scene is described by a :class:`Scene`; files go to a folder the caller owns
(the real imagery is only read, never copied into the project).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from peak_memory import make_pair

gdal.UseExceptions()

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "sample"
WV2_MAT = ROOT.parent / "shared" / "data" / "grip" / "imgWV2.mat"
WV2_EPSG, WV2_ORIGIN = 32633, (500000.0, 5000000.0)  # made up: the .mat has no georeferencing
WV2_PAN_PIXEL, WV2_RATIO = 0.5, 4


@dataclass(frozen=True)
class Scene:
    name: str
    pan: str
    ms: str
    width: int  # PAN pixels
    height: int
    bands: int
    ratio: int
    note: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sample_scene() -> Scene:
    pan, ms = SAMPLE / "pan.tif", SAMPLE / "ms.tif"
    for path in (pan, ms):
        if not path.exists():
            raise FileNotFoundError(f"bundled sample {path} is missing (scripts/make_sample.py makes it)")
    return _describe("sample", str(pan), str(ms), "bundled Landsat-8 crop (resources/sample)")


def landsat_scene(size: int, folder: Path) -> Scene:
    """The Landsat-8 scene upsampled to ``size`` x ``size`` PAN (even size: ratio 2)."""
    size -= size % 2
    pan, ms = make_pair(size, folder)
    return _describe("landsat8", pan, ms,
                     f"Landsat-8 OLI 1200 x 1200 PAN crop upsampled (bilinear VRT) to {size} x {size}, native phase")


def worldview2_scene(size: int, folder: Path) -> Scene:
    """The GRIP WorldView-2 pair tiled to ``size`` x ``size`` PAN (size rounded down to x4)."""
    size -= size % WV2_RATIO
    pan_tif, ms_tif = _worldview2_geotiffs(folder)
    pan = _mosaic(pan_tif, folder / f"wv2_pan_{size}.vrt", size, WV2_PAN_PIXEL)
    ms = _mosaic(ms_tif, folder / f"wv2_ms_{size}.vrt", size // WV2_RATIO, WV2_PAN_PIXEL * WV2_RATIO)
    return _describe("worldview2", pan, ms,
                     f"GRIP WorldView-2 1280 x 1280 PAN tiled to {size} x {size} (made-up georeferencing, "
                     "corner-aligned 0.5 m / 2 m grids)")


def _describe(name: str, pan: str, ms: str, note: str) -> Scene:
    pan_ds, ms_ds = gdal.Open(pan), gdal.Open(ms)
    ratio = round(pan_ds.RasterXSize / ms_ds.RasterXSize)
    return Scene(name, pan, ms, pan_ds.RasterXSize, pan_ds.RasterYSize, ms_ds.RasterCount, ratio, note)


def _worldview2_geotiffs(folder: Path) -> tuple[Path, Path]:
    """The .mat pair as two GeoTIFFs on corner-aligned, made-up north-up grids (once per folder)."""
    pan_tif, ms_tif = folder / "wv2_pan.tif", folder / "wv2_ms.tif"
    if pan_tif.exists() and ms_tif.exists():
        return pan_tif, ms_tif
    if not WV2_MAT.exists():
        raise FileNotFoundError(f"real imagery {WV2_MAT} is missing (see ../shared/data/README.md)")
    from scipy.io import loadmat

    mat = loadmat(str(WV2_MAT))
    pan = np.asarray(mat["I_PAN"], dtype=np.uint16)
    ms = np.moveaxis(np.asarray(mat["I_MS"], dtype=np.uint16), -1, 0)
    _write_geotiff(pan_tif, pan[None], WV2_PAN_PIXEL)
    _write_geotiff(ms_tif, ms, WV2_PAN_PIXEL * WV2_RATIO)
    return pan_tif, ms_tif


def _write_geotiff(path: Path, stack: np.ndarray, pixel: float) -> None:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(WV2_EPSG)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), stack.shape[2], stack.shape[1], stack.shape[0],
                                              gdal.GDT_UInt16, options=["TILED=YES"])
    ds.SetGeoTransform((WV2_ORIGIN[0], pixel, 0.0, WV2_ORIGIN[1], 0.0, -pixel))
    ds.SetProjection(srs.ExportToWkt())
    for band, plane in enumerate(stack, start=1):
        ds.GetRasterBand(band).WriteArray(plane)
    ds.FlushCache()


def _mosaic(source: Path, vrt: Path, size: int, pixel: float) -> str:
    """A size x size VRT of copies of ``source`` side by side (the last ones cut)."""
    src = gdal.Open(str(source))
    w, h, bands = src.RasterXSize, src.RasterYSize, src.RasterCount
    pieces = [(col * w, row * h) for row in range(math.ceil(size / h)) for col in range(math.ceil(size / w))]
    lines = [f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">',
             f"<SRS>{_xml_escape(src.GetProjection())}</SRS>",
             "<GeoTransform>{}, {}, 0, {}, 0, {}</GeoTransform>".format(WV2_ORIGIN[0], pixel, WV2_ORIGIN[1], -pixel)]
    for band in range(1, bands + 1):
        lines.append(f'<VRTRasterBand dataType="UInt16" band="{band}">')
        for x, y in pieces:
            cw, ch = min(w, size - x), min(h, size - y)
            lines.append(
                f'<SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename>'
                f"<SourceBand>{band}</SourceBand>"
                f'<SrcRect xOff="0" yOff="0" xSize="{cw}" ySize="{ch}"/>'
                f'<DstRect xOff="{x}" yOff="{y}" xSize="{cw}" ySize="{ch}"/></SimpleSource>')
        lines.append("</VRTRasterBand>")
    lines.append("</VRTDataset>")
    vrt.write_text("\n".join(lines))
    return str(vrt)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

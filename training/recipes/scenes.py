"""The real scenes of ``../shared/data`` by name, for training and for the
leave-one-scene-out benchmark.

A scene is one acquisition (one place, one sensor): the three SpaceNet-6 tiles are one
scene (neighbouring tiles of one Rotterdam strip: leaving one tile out while training on
its neighbours would not be an unseen place), the WorldView-3 patches are one scene
(the set comes ready-made from one provider; no full-resolution pair; their MS is
degraded again from the ground truth by the engine's own protocol:
``datasets.rewald_patches``). Each scene
belongs to the families whose bands it can give: an 8-band WorldView scene also gives
the 4-band VHR family its blue, green, red and NIR1 bands.

``load(name, family)`` returns a list of parts, each either a
``training.datasets.ScenePair`` (a full-resolution pair in DN, to be degraded by Wald's
protocol) or a ``PatchSet`` of ready reduced-resolution patches (WorldView-3).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.sensors import WORLDVIEW_4_BANDS as WV_TO_4

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Scene:
    name: str
    title: str
    families: tuple[str, ...]
    licence: str


SCENES: dict[str, Scene] = {s.name: s for s in (
    Scene("ikonos", "GRIP IKONOS pair imgIK.mat (PAN 1280 x 1280, 4 bands, 11-bit)", ("vhr4",), "grip"),
    Scene("wv2", "GRIP WorldView-2 pair imgWV2.mat (PAN 1280 x 1280, 8 bands, 11-bit)", ("vhr4", "wv8"), "grip"),
    Scene("wv3", "100 WorldView-3 Wald-simulated patches wv3_patches/train.mat (64 x 64, 8 bands; "
          "MS degraded again from their ground truth by our protocol)",
          ("vhr4", "wv8"), "wv3_patches"),
    Scene("spacenet6", "SpaceNet-6 WorldView-2 tiles 1-3 over Rotterdam (PAN 600 x 600, 4 bands; valid rows only)",
          ("vhr4",), "spacenet6"),
    Scene("landsat8", "USGS Landsat-8 OLI B2-B5 + B8 (PAN 1207 x 1254 at 15 m)", ("landsat8",), "landsat8"),
)}


def family_scenes(family: str) -> list[str]:
    return [s.name for s in SCENES.values() if family in s.families]


def check_data() -> None:
    if not DATA.is_dir():
        raise PansharpenError(f"the shared imagery is missing: expected {DATA} (see ../shared/data/README.md)")


def load(name: str, family: str) -> list:
    """The scene's parts for ``family`` (module doc)."""
    if name not in SCENES:
        raise PansharpenError(f"unknown scene {name!r}; known: {', '.join(SCENES)}")
    if family not in SCENES[name].families:
        raise PansharpenError(f"scene {name} has no data for the {family} family")
    check_data()
    from diffusion_pansharpening.training import datasets

    if name == "ikonos":
        return [_named(datasets.read_mat_pair(DATA / "grip" / "imgIK.mat"), "IKONOS")]
    if name == "wv2":
        scene = _named(datasets.read_mat_pair(DATA / "grip" / "imgWV2.mat"), "WV2")
        if family == "vhr4":
            scene.ms = scene.ms[list(WV_TO_4)]
        return [scene]
    if name == "wv3":
        patches = datasets.rewald_patches(datasets.read_mat_patches(DATA / "wv3_patches" / "train.mat", sensor="WV3"))
        if family == "vhr4":
            pick = lambda t: t[:, list(WV_TO_4)]
            patches = datasets.PatchSet(pick(patches.gt), pick(patches.lms), pick(patches.ms), patches.pan,
                                        patches.scale, patches.ratio, patches.sensor, patches.source)
        return [patches]
    if name == "spacenet6":
        return [_spacenet_tile(i) for i in (1, 2, 3)]
    return [_landsat8()]


def _named(scene, sensor: str):
    scene.sensor = sensor
    return scene


def _spacenet_tile(i: int):
    """One SpaceNet-6 tile cropped to its block of fully valid MS rows (tiles 2 and 3
    are about a third nodata, at the top)."""
    from diffusion_pansharpening.training import datasets
    from osgeo import gdal

    folder = DATA / "spacenet6_wv2"
    ms_all = gdal.Open(str(folder / f"ms{i}.tif")).ReadAsArray()
    pan_all = gdal.Open(str(folder / f"pan{i}.tif")).ReadAsArray()
    pan_rows = (pan_all > 0).reshape(ms_all.shape[1], 4, -1).all(axis=(1, 2))
    ok_rows = np.nonzero((ms_all > 0).all(axis=(0, 2)) & pan_rows)[0]
    # one more row: the engine reads the corner-aligned MS through a half-pixel warp
    first = int(ok_rows.min()) + 1 if ok_rows.min() > 0 else 0
    vrt = f"/vsimem/spacenet_ms{i}.vrt"
    gdal.Translate(vrt, str(folder / f"ms{i}.tif"), srcWin=[0, first, ms_all.shape[2], ms_all.shape[1] - first])
    pan_vrt = f"/vsimem/spacenet_pan{i}.vrt"
    gdal.Translate(pan_vrt, str(folder / f"pan{i}.tif"),
                   srcWin=[0, 4 * first, 4 * ms_all.shape[2], 4 * (ms_all.shape[1] - first)])
    try:
        scene = datasets.read_geotiff_pair(pan_vrt, vrt, sensor="WV2")
    finally:
        gdal.Unlink(vrt)
        gdal.Unlink(pan_vrt)
    scene.source = f"spacenet6 tile {i}"
    return scene


def _landsat8():
    from diffusion_pansharpening.training import datasets
    from osgeo import gdal

    folder = DATA / "landsat8"
    vrt = "/vsimem/landsat8_ms.vrt"
    gdal.BuildVRT(vrt, [str(folder / f"l8_B{b}.tif") for b in (2, 3, 4, 5)], separate=True)
    try:
        scene = datasets.read_geotiff_pair(folder / "l8_B8.tif", vrt, sensor="LANDSAT8")
    finally:
        gdal.Unlink(vrt)
    return scene

"""Shared fixtures: the real imagery in ../shared/data and the bundled sample.

Tests that need the shared imagery fail (never skip) with a clear message when it is
missing, so a broken checkout cannot pass silently.
"""
import os
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "resources" / "sample"

# Test kinds (markers registered in pyproject.toml), by file name so that a new test needs
# no decorator: ``make test-fast`` runs ``-m unit``, ``make test`` everything. A test (or
# its module) that carries a kind marker itself keeps that one instead: that is how a
# file of one kind holds a test of another.
KINDS = ("unit", "qgis", "slow", "training")
FILE_KINDS = {
    "qgis": ("test_plugin_*.py", "test_reliability_qgis.py", "test_package.py"),
    "training": ("test_training*.py", "test_recipes.py"),
    "slow": ("test_adapt.py", "test_batch.py", "test_benchmarks.py", "test_properties.py",
             "test_imports.py", "test_training_ddp.py"),
}


def pytest_collection_modifyitems(config, items):
    """Mark each test with its kind: its file's kinds, else ``unit``."""
    for item in items:
        if any(m.name in KINDS for m in item.iter_markers()):
            continue
        name = item.path.name
        kinds = [kind for kind, patterns in FILE_KINDS.items() if any(fnmatch(name, p) for p in patterns)]
        for kind in kinds or ["unit"]:
            item.add_marker(kind)



def shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.fail(
            f"real imagery {path} is missing: tests read ../shared/data beside the "
            "project's root (see ../shared/data/README.md)"
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_file("")


@pytest.fixture(scope="session")
def ikonos():
    """The IKONOS pair from the GRIP set: PAN (H, W), MS (B, h, w) as float64 DN, ratio 4."""
    return load_mat_pair(shared_file("grip/imgIK.mat"))


@pytest.fixture(scope="session")
def worldview2():
    """The WorldView-2 pair from the GRIP set: PAN (H, W), MS (8, h, w) float64 DN, ratio 4."""
    return load_mat_pair(shared_file("grip/imgWV2.mat"))


def load_mat_pair(path: Path):
    """(PAN, MS) float64 through the engine's own reader (engine.pairs), as the engine
    and training read the pair."""
    from diffusion_pansharpening.engine.pairs import read_mat_pair

    pair = read_mat_pair(path, np.float64)
    return pair.pan, pair.ms


@pytest.fixture(scope="session")
def sample_paths() -> tuple[str, str]:
    """The bundled Landsat-8 sample: (pan.tif, ms.tif)."""
    pan, ms = SAMPLE / "pan.tif", SAMPLE / "ms.tif"
    for path in (pan, ms):
        if not path.exists():
            pytest.fail(f"bundled sample {path} is missing (scripts/make_sample.py makes it)")
    return str(pan), str(ms)


def read_raster(path) -> np.ndarray:
    """A whole raster as (bands, rows, cols)."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return ds.ReadAsArray().reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)


def write_geotiff(path, data, pixel, gdal_type=None, nbits=None) -> str:
    """A GeoTIFF on a UTM grid with ``pixel`` metres; for pixel > 1 (the MS) the origin
    sits half a PAN pixel east/south, the engine's aligned MS grid (read as is)."""
    from osgeo import gdal, osr

    data = data if data.ndim == 3 else data[None]
    options = [f"NBITS={nbits}"] if nbits else []
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0],
                                              gdal_type or gdal.GDT_UInt16, options=options)
    shift = 0.5 if pixel > 1 else 0.0
    ds.SetGeoTransform((500000.0 + shift, pixel, 0, 4000000.0 - shift, 0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for b, band in enumerate(data):
        ds.GetRasterBand(b + 1).WriteArray(band)
    ds = None
    return str(path)

"""Shared fixtures: the real imagery in ../shared/data and the bundled sample.

Tests that need the shared imagery fail (never skip) with a clear message when it is
missing, so a broken checkout cannot pass silently.
"""
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "resources" / "sample"



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
    from scipy.io import loadmat

    mat = loadmat(str(path))
    pan = np.asarray(mat["I_PAN"], dtype=np.float64)
    ms = np.moveaxis(np.asarray(mat["I_MS"], dtype=np.float64), -1, 0)
    return pan, ms


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

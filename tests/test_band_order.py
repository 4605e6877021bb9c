"""A product whose band names give another order than the model's: the network gets its
own order, the output keeps the file's (engine/band_order.py)."""
import numpy as np
import pytest
from osgeo import gdal

from diffusion_pansharpening.engine.band_order import model_order
from diffusion_pansharpening.engine.families import DEFAULT_WEIGHTS_DIR
from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

from conftest import read_raster

MODEL = ["blue", "green", "red", "NIR"]


@pytest.mark.parametrize("names, order", [
    (["Blue", "Green", "Red", "NIR"], None),  # the model's order
    (["Red", "Green", "Blue", "Near-infrared"], (2, 1, 0, 3)),
    (["R", "G", "B", "band 4"], (2, 1, 0, 3)),  # one unnamed band on each side: paired
    (["band 1", "band 2", "band 3", "band 4"], None),  # names that say nothing
    (["red", "red", "blue", "nir"], None),  # ambiguous
    (["red", "green", "blue"], None),  # another band count
])
def test_the_order_comes_from_names_that_tell(names, order):
    assert model_order(names, MODEL) == order


def rgbn_copy(path, out, names):
    """The MS with its bands as red, green, blue, NIR, described with ``names``."""
    ds = gdal.Translate(str(out), path, bandList=[3, 2, 1, 4])
    for b, name in enumerate(names):
        ds.GetRasterBand(b + 1).SetDescription(name)
    ds = None
    return str(out)


def test_a_red_green_blue_nir_product_gives_the_blue_green_red_nir_result(sample_paths, tmp_path):
    pan, ms = sample_paths
    weights = str(DEFAULT_WEIGHTS_DIR / "landsat8-e2e.safetensors")
    lines = []
    run = lambda m, name: read_raster(sharpen(SharpenRequest(
        pan, m, str(tmp_path / name), method="e2e", weights=weights, device="cpu", check=False),
        log=lines.append).output)
    plain = run(ms, "bgrn.tif")
    assert not any("names its bands" in line for line in lines)
    named = run(rgbn_copy(ms, tmp_path / "rgbn.tif", ["Red", "Green", "Blue", "NIR"]), "named.tif")
    # equal but for values on a rounding tie: float32 products whose order or memory layout
    # differs round by the CPU's kernel (seen: none on an AVX-512 CPU, 1 DN on 0.13 % of the
    # values on an AVX2 one); a wrong order moves the mean by more than 1 DN (below)
    diff = np.abs(named[[2, 1, 0, 3]].astype(np.int64) - plain)
    assert diff.max() <= 1 and (diff > 0).mean() < 5e-3, (diff.max(), (diff > 0).mean())
    assert any("names its bands Red, Green, Blue, NIR; e2e takes them as blue, green, red, NIR" in line
               for line in lines)
    unnamed = run(rgbn_copy(ms, tmp_path / "rgbn0.tif", [f"layer {i}" for i in range(4)]), "unnamed.tif")
    assert np.abs(unnamed[[2, 1, 0, 3]].astype(float) - plain).mean() > 1.0  # what the names fix

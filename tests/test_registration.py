"""PAN-MS co-registration of the deep path (engine/registration.py), on the bundled
Landsat-8 sample and GeoTIFFs made from it."""
import numpy as np
import pytest
from osgeo import gdal

from diffusion_pansharpening.engine import registration
from diffusion_pansharpening.engine.evaluate import load_pair
from diffusion_pansharpening.engine.streaming import ArraySource


@pytest.fixture(scope="module")
def sample(sample_paths):
    return load_pair(*sample_paths)


def test_a_known_shift_of_the_pan_is_found_to_an_eighth_of_a_pixel(sample):
    dy0, dx0, corr = registration.estimate_shift(sample.pan, sample.ms, sample.ratio, sample.sensor)
    assert corr > registration.MIN_CORRELATION
    for shift in ((0.75, -0.5), (-1.5, 1.25)):
        moved = registration.move_pan(sample.pan, shift)
        dy, dx, _ = registration.estimate_shift(moved, sample.ms, sample.ratio, sample.sensor)
        assert abs(dy - (dy0 - shift[0])) <= 0.125 and abs(dx - (dx0 - shift[1])) <= 0.125


def test_a_pan_unlike_the_ms_is_left_alone(sample):
    noise = np.random.default_rng(0).random(sample.pan.shape).astype(np.float32)
    assert not registration.worth_applying(*registration.estimate_shift(noise, sample.ms, sample.ratio))


def test_tiles_read_through_the_source_are_the_whole_pan_moved(sample):
    """Away from the scene's edges a tile of ``Registered`` is the whole PAN moved; a
    nodata pixel is not spread by the spline, and the mask grows around it."""
    shift = (0.625, -1.25)
    whole = registration.move_pan(sample.pan, shift)
    source = registration.Registered(ArraySource(sample.pan, sample.ms, sample.ratio, 65535.0), shift)
    tile, valid = source.read_pan((40, 140), (200, 330))
    assert np.allclose(tile, whole[40:140, 200:330], atol=1e-3) and valid.all()
    assert source.ratio == sample.ratio and source.read_ms((0, 5), (0, 5))[0].shape == (4, 5, 5)

    pan = sample.pan.copy()
    pan[90, 260] = 0.0
    holed = registration.Registered(ArraySource(pan, sample.ms, sample.ratio, 65535.0, nodata=0.0), shift)
    tile, valid = holed.read_pan((40, 140), (200, 330))
    assert not valid[50, 60] and not valid[52, 62] and valid[:40].all()
    assert tile.min() > 0.5 * sample.pan.min()  # the 0 was filled before the move


def test_asked_to_register_the_deep_path_moves_the_pan_and_says_so(sample_paths, sample, tmp_path):
    """A PAN written one and a half pixels off its MS: asked to, sharpen moves it back for
    a deep method (the log says by how much); a classical method, and a deep one not
    asked, leave it."""
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    moved = str(tmp_path / "pan.tif")
    gdal.Translate(moved, sample_paths[0])
    ds = gdal.Open(moved, gdal.GA_Update)
    ds.GetRasterBand(1).WriteArray(np.round(registration.move_pan(sample.pan, (1.5, 0.0))).astype(np.uint16))
    ds = None
    logs = []
    sharpen(SharpenRequest(moved, sample_paths[1], str(tmp_path / "e2e.tif"), method="e2e", device="cpu",
                           check=False, register=True), log=logs.append)
    line = next(m for m in logs if m.startswith("Registration: the PAN moved by "))
    assert float(line.split("moved by ")[1].split(" rows")[0]) == pytest.approx(-1.5, abs=0.25)
    for method, register in (("brovey", True), ("e2e", False)):  # False: the default
        logs.clear()
        sharpen(SharpenRequest(moved, sample_paths[1], str(tmp_path / f"{method}-{register}.tif"), method=method,
                               device="cpu", check=False, register=register), log=logs.append)
        assert not any("Registration" in m for m in logs)

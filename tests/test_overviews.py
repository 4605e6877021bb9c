"""Internal overviews in the written GeoTIFF (issue 14, large outputs): QGIS draws a
large result at once instead of reading every pixel at every zoom."""
import os

import numpy as np
from osgeo import gdal

from conftest import read_raster


def test_overview_factors_halve_until_the_longer_side_is_under_256():
    from diffusion_pansharpening.engine.writer import overview_factors

    assert overview_factors(20000, 20000) == [2, 4, 8, 16, 32, 64]
    assert overview_factors(654, 306) == [2]
    assert overview_factors(300, 200) == []


def test_the_output_carries_internal_averaged_overviews(sample_paths, tmp_path):
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    pan, ms = sample_paths
    out = tmp_path / "sharp.tif"
    sharpen(SharpenRequest(pan, ms, str(out), method="brovey"))
    assert sorted(os.listdir(tmp_path)) == ["sharp.tif"]  # inside the file: no .ovr beside it
    ds = gdal.Open(str(out))
    full = read_raster(out).astype(np.float64)
    for b in range(ds.RasterCount):
        band = ds.GetRasterBand(b + 1)
        assert band.GetOverviewCount() == 1
        overview = band.GetOverview(0)
        assert (overview.XSize, overview.YSize) == ((ds.RasterXSize + 1) // 2, (ds.RasterYSize + 1) // 2)
        h, w = ds.RasterYSize // 2 * 2, ds.RasterXSize // 2 * 2
        blocks = full[b, :h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        got = overview.ReadAsArray()[: h // 2, : w // 2].astype(np.float64)
        assert np.abs(got - blocks).max() <= 1.0  # AVERAGE of each 2 x 2 block, rounded
    assert ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"


def is_cog(path) -> bool:
    return gdal.Open(str(path)).GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"


def test_cog_on_request_from_the_command_line(sample_paths, tmp_path):
    from diffusion_pansharpening.engine.cli import main

    pan, ms = sample_paths
    plain, cog = tmp_path / "plain.tif", tmp_path / "cog.tif"
    assert main(["sharpen", pan, ms, str(plain), "--method", "brovey", "--quiet"]) == 0
    assert main(["sharpen", pan, ms, str(cog), "--method", "brovey", "--quiet", "--cog"]) == 0
    assert not is_cog(plain) and is_cog(cog)
    assert gdal.Open(str(cog)).GetRasterBand(1).GetOverviewCount() >= 1
    np.testing.assert_array_equal(read_raster(cog), read_raster(plain))
    assert sorted(os.listdir(tmp_path)) == ["cog.tif", "plain.tif"]

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


def test_no_overviews_on_request_the_same_pixels(sample_paths, tmp_path):
    """Issue 18: ``--no-overviews`` writes the full resolution alone (the format
    gdal_pansharpen.py writes), as a GeoTIFF and as a COG, the pixels unchanged."""
    from diffusion_pansharpening.engine.cli import main

    pan, ms = sample_paths
    paths = {name: tmp_path / f"{name}.tif" for name in ("plain", "bare", "bare-cog")}
    for name, extra in (("plain", []), ("bare", ["--no-overviews"]), ("bare-cog", ["--no-overviews", "--cog"])):
        assert main(["sharpen", pan, ms, str(paths[name]), "--method", "brovey", "--quiet", *extra]) == 0
    assert gdal.Open(str(paths["plain"])).GetRasterBand(1).GetOverviewCount() == 1
    for name in ("bare", "bare-cog"):
        ds = gdal.Open(str(paths[name]))
        assert [ds.GetRasterBand(b + 1).GetOverviewCount() for b in range(ds.RasterCount)] == [0] * ds.RasterCount
        np.testing.assert_array_equal(read_raster(paths[name]), read_raster(paths["plain"]))
    assert is_cog(paths["bare-cog"]) and not is_cog(paths["bare"])
    assert sorted(os.listdir(tmp_path)) == ["bare-cog.tif", "bare.tif", "plain.tif"]


def test_overviews_written_on_the_way_average_whole_blocks(tmp_path):
    """Issue 18: the writer averages each overview level from its strips as they are
    written, whatever the cells (rows crossing the 256-row strips): each overview pixel
    is the mean of its f x f block (of the pixels there are, at the right and bottom
    edges), rounded half up; where the size is a multiple of the factor, that is GDAL's
    AVERAGE (which otherwise spreads the last, partial block over the row)."""
    from diffusion_pansharpening.engine.writer import GeoTiffWriter

    rng = np.random.default_rng(18)
    height, width, bands = 1100, 1030, 3  # odd overview sizes at 4 and 8
    data = rng.integers(0, 4000, (bands, height, width)).astype(np.float32)
    out = tmp_path / "strips.tif"
    rows, cols = [0, 300, 301, 700, 1100], [0, 513, 1030]
    with GeoTiffWriter(str(out), width=width, height=height, bands=bands, geotransform=(0, 1, 0, 0, 0, -1),
                       crs_wkt="", data_type="UInt16", nodata=None, band_names=["a", "b", "c"]) as writer:
        for y0, y1 in zip(rows[:-1], rows[1:]):
            for x0, x1 in zip(cols[:-1], cols[1:]):
                writer.write(y0, x0, data[:, y0:y1, x0:x1])
        writer.commit()
    ds = gdal.Open(str(out))
    np.testing.assert_array_equal(ds.ReadAsArray(), data.astype(np.uint16))
    reference = gdal.Translate("", ds, format="MEM")
    reference.BuildOverviews("AVERAGE", [2])  # 1100 x 1030: whole 2 x 2 blocks
    for band in range(1, bands + 1):
        got = ds.GetRasterBand(band)
        assert got.GetOverviewCount() == 2
        np.testing.assert_array_equal(got.GetOverview(0).ReadAsArray(),
                                      reference.GetRasterBand(band).GetOverview(0).ReadAsArray())
        for level, f in enumerate((2, 4)):
            padded = np.pad(data[band - 1].astype(np.float64), ((0, -height % f), (0, -width % f)),
                            constant_values=np.nan)
            blocks = padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f)
            want = np.floor(np.nanmean(blocks, axis=(1, 3)) + 0.5)
            np.testing.assert_array_equal(got.GetOverview(level).ReadAsArray(), want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strips.tif"]


def test_without_overviews_gdal_rounds_the_floats_as_the_engine_would(tmp_path):
    """Issue 18: with no overviews and no nodata value the writer hands float32 cells to
    GDAL, which rounds and clamps them while it fills its blocks; a cell with invalid
    pixels (an internal mask) takes the engine's own rounding in the same strip. The
    file equals ``to_dtype`` of the values, near-ties included."""
    from diffusion_pansharpening.engine.writer import GeoTiffWriter, to_dtype

    rng = np.random.default_rng(7)
    height, width, bands = 300, 520, 2
    data = rng.uniform(-50, 70000, (bands, height, width)).astype(np.float32)
    data[0, :5, :50] = np.float32(1000.5) - np.arange(50, dtype=np.float32) * np.float32(1e-4)  # near-ties
    valid = np.ones((height, width), bool)
    valid[10:20, 300:310] = False
    out = tmp_path / "floats.tif"
    with GeoTiffWriter(str(out), width=width, height=height, bands=bands, geotransform=(0, 1, 0, 0, 0, -1),
                       crs_wkt="", data_type="UInt16", nodata=None, band_names=["a", "b"],
                       overviews=False) as writer:
        assert writer._gdal_casts(None) and not writer._gdal_casts(valid)
        for x0, x1 in ((0, 260), (260, 520)):
            cell_valid = valid[:, x0:x1]
            writer.write(0, x0, data[:, :, x0:x1], None if cell_valid.all() else cell_valid)
        writer.commit()
    ds = gdal.Open(str(out))
    want = to_dtype(data, np.uint16)
    np.testing.assert_array_equal(ds.ReadAsArray()[:, valid], want[:, valid])
    assert (ds.GetRasterBand(1).GetMaskBand().ReadAsArray() == 0).sum() == (~valid).sum()

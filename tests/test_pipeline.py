"""The file-to-file job on real GeoTIFFs: grid, georeferencing, streaming, nodata, cancel."""
import os

import numpy as np
import pytest
from osgeo import gdal, osr

from conftest import SHARED_DATA, read_raster
from diffusion_pansharpening.engine.errors import Cancelled, PansharpenError
from diffusion_pansharpening.engine.pipeline import SharpenRequest, inspect_pair, sharpen

gdal.UseExceptions()


def _sharpen(pan, ms, out, **kw):
    return sharpen(SharpenRequest(pan=str(pan), ms=str(ms), output=str(out), **kw))


def test_sample_output_is_on_the_pan_grid(sample_paths, tmp_path):
    pan, ms = sample_paths
    result = _sharpen(pan, ms, tmp_path / "out.tif", method="brovey")
    out, pan_ds, ms_ds = gdal.Open(result.output), gdal.Open(pan), gdal.Open(ms)
    assert (out.RasterXSize, out.RasterYSize) == (pan_ds.RasterXSize, pan_ds.RasterYSize)
    assert out.GetGeoTransform() == pytest.approx(pan_ds.GetGeoTransform())
    assert osr.SpatialReference(out.GetProjection()).IsSame(osr.SpatialReference(pan_ds.GetProjection()))
    assert out.RasterCount == 4
    assert [out.GetRasterBand(b + 1).GetDescription() for b in range(4)] == ["blue", "green", "red", "nir"]
    assert out.GetRasterBand(1).DataType == ms_ds.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert out.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    assert out.GetRasterBand(1).GetBlockSize() == [256, 256]
    # Landsat's half-pixel offset is the engine's native phase: no resampling
    assert not result.info.resampled and result.info.ratio == 2
    # the sharpened bands follow the PAN's detail: high-pass correlation with the PAN
    data = read_raster(result.output).astype(float)
    p = read_raster(pan)[0].astype(float)
    hp = lambda a: a - (np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1)) / 4
    assert np.corrcoef(hp(data[2])[5:-5, 5:-5].ravel(), hp(p)[5:-5, 5:-5].ravel())[0, 1] > 0.5
    assert os.listdir(tmp_path) == ["out.tif"]  # scratch files are gone


def test_float32_on_request(sample_paths, tmp_path):
    pan, ms = sample_paths
    out = _sharpen(pan, ms, tmp_path / "f.tif", method="brovey", float32=True).output
    assert gdal.Open(out).GetRasterBand(1).DataType == gdal.GDT_Float32


@pytest.mark.parametrize("method", ["brovey", "mtf-glp-hpm"])
def test_tiles_blend_into_the_untiled_result(sample_paths, tmp_path, method):
    """Pixel-wise methods give the same image whatever the tiling (halo + exact upsampling)."""
    pan, ms = sample_paths
    whole = read_raster(_sharpen(pan, ms, tmp_path / "a.tif", method=method, tile=1024, float32=True).output)
    tiled = read_raster(_sharpen(pan, ms, tmp_path / "b.tif", method=method, tile=128, overlap=16, float32=True).output)
    if method == "brovey":
        np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=0.5)
    else:  # tile-local PAN equalisation: blended seams keep differences small
        assert np.median(np.abs(tiled - whole) / whole) < 0.01


def test_memory_stays_bounded_by_the_overlap_strip():
    from diffusion_pansharpening.engine.tiling import TileGrid

    grid = TileGrid(4000, 4000, 512, 32)
    blender = grid.blender()
    peak = 0
    for t in grid:
        blender.add(t, np.ones((1, t.y1 - t.y0, t.x1 - t.x0), np.float32))
        peak = max(peak, blender.pending_pixels)
    assert peak <= 2 * 32 * 4000 + 512 * 512
    assert blender.pending_pixels == 0


def test_pixelwise_strips_are_whole_block_rows_of_the_full_width():
    """Issue 18: a pixel-wise method gets disjoint full-width strips of whole output
    blocks, about a tile's pixels each, unless one block row is over twice a tile."""
    from diffusion_pansharpening.engine.tiling import TileGrid, strip_rows

    assert strip_rows(1024, 4096, 256) == 256
    assert strip_rows(1024, 1000, 256) == 1024 // 256 * 256
    assert strip_rows(1024, 300, 256) == 3328  # 1024 * 1024 // 300 // 256 * 256
    assert strip_rows(1024, 9000, 256) is None  # 256 x 9000 > 2 x 1024 x 1024
    grid = TileGrid(1000, 700, 1024, 0, strip_rows=256)
    assert grid.disjoint and not TileGrid(1000, 700, 256, 32).disjoint
    assert [(t.y0, t.y1, t.x0, t.x1) for t in grid] == [(0, 256, 0, 700), (256, 512, 0, 700),
                                                        (512, 768, 0, 700), (768, 1000, 0, 700)]


def test_cancel_leaves_no_file(sample_paths, tmp_path):
    pan, ms = sample_paths
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        sharpen(SharpenRequest(pan, ms, str(tmp_path / "c.tif"), method="brovey", tile=128, overlap=16),
                cancelled=cancelled)
    assert os.listdir(tmp_path) == []


def test_progress_reaches_one(sample_paths, tmp_path):
    pan, ms = sample_paths
    seen = []
    sharpen(SharpenRequest(pan, ms, str(tmp_path / "p.tif"), method="gihs", tile=256), progress=seen.append)
    # the 654 x 306 sample in tiles of 256 (overlap 32): 3 x 2 tiles, one report each
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) == 6


def test_different_crs_is_warped_and_said(sample_paths, tmp_path):
    pan, ms = sample_paths
    ms_geo = str(tmp_path / "ms_4326.tif")
    # as many pixels as the MS: about 30 m each way (GDAL's default square degrees are
    # 29 x 34 m at this latitude, which reads as a ratio of 2.1)
    size = gdal.Open(ms)
    gdal.Warp(ms_geo, ms, dstSRS="EPSG:4326", resampleAlg="cubic", width=size.RasterXSize,
              height=size.RasterYSize)
    info = inspect_pair(pan, ms_geo)
    assert not info.same_crs and info.ratio == 2
    assert any("reprojected" in w for w in info.warnings)
    result = _sharpen(pan, ms_geo, tmp_path / "o.tif", method="brovey")
    out = gdal.Open(result.output)
    assert osr.SpatialReference(out.GetProjection()).GetAuthorityCode(None) == "32616"
    ref = read_raster(_sharpen(pan, ms, tmp_path / "r.tif", method="brovey").output).astype(float)
    got = read_raster(result.output).astype(float)
    # the footprint shrinks a little (reprojected bounds); inside, the images agree well
    h, w = min(ref.shape[1], got.shape[1]), min(ref.shape[2], got.shape[2])
    assert np.corrcoef(ref[2, 20:h - 20, 20:w - 20].ravel(), got[2, 20:h - 20, 20:w - 20].ravel())[0, 1] > 0.95


def test_corner_aligned_ms_is_resampled_to_the_native_phase(sample_paths, tmp_path):
    pan, ms = sample_paths
    shifted = str(tmp_path / "corner.tif")
    ms_ds = gdal.Open(ms)
    gt = list(ms_ds.GetGeoTransform())
    gt[0] -= 7.5  # corner-aligned with the PAN, as VHR products are
    gt[3] += 7.5
    w, h = ms_ds.RasterXSize, ms_ds.RasterYSize
    gdal.Translate(shifted, ms, outputBounds=[gt[0], gt[3], gt[0] + w * 30, gt[3] - h * 30])
    info = inspect_pair(pan, shifted)
    assert info.resampled and any("not aligned" in w for w in info.warnings)
    assert _sharpen(pan, shifted, tmp_path / "o.tif", method="gsa").info.ratio == 2


def test_nodata_of_either_input_gives_nodata(sample_paths, tmp_path):
    pan, ms = sample_paths
    ms_nd, pan_nd = str(tmp_path / "ms_nd.tif"), str(tmp_path / "pan_nd.tif")
    gdal.Translate(ms_nd, ms)
    gdal.Translate(pan_nd, pan)
    ds = gdal.Open(ms_nd, gdal.GA_Update)
    for b in range(4):
        band = ds.GetRasterBand(b + 1)
        band.SetNoDataValue(0)
        band.WriteArray(np.zeros((20, 30), np.uint16), 0, 0)  # MS rows 0-19, cols 0-29
    ds = None
    ds = gdal.Open(pan_nd, gdal.GA_Update)
    ds.GetRasterBand(1).SetNoDataValue(0)
    ds.GetRasterBand(1).WriteArray(np.zeros((10, 10), np.uint16), 300, 200)  # PAN cols 300-309, rows 200-209
    ds = None
    out = gdal.Open(_sharpen(pan_nd, ms_nd, tmp_path / "o.tif", method="gsa").output)
    assert out.GetRasterBand(1).GetNoDataValue() == 0
    data = read_raster(out.GetDescription())
    # MS pixel (i, j) covers PAN rows 2i+1-1 .. 2i+1 (native Landsat phase, shift 0)
    assert (data[:, :40, :60] == 0).all()
    assert (data[:, 200:210, 300:310] == 0).all()
    assert (data[:, 41:200, 61:300] > 0).all()


def test_ratio_three_is_accepted(sample_paths, tmp_path):
    pan, _ = sample_paths
    ms3 = str(tmp_path / "ms3.tif")
    ds = gdal.Open(pan)
    gt = ds.GetGeoTransform()
    # the PAN's extent, rounded down to whole 45 m pixels
    w, h = ds.RasterXSize // 3 * 3, ds.RasterYSize // 3 * 3
    stack = gdal.BuildVRT("", [str(SHARED_DATA / "landsat8" / f"l8_B{b}.tif") for b in (2, 3, 4)], separate=True)
    gdal.Warp(ms3, stack, outputBounds=[gt[0], gt[3] - h * 15, gt[0] + w * 15, gt[3]],
              xRes=45, yRes=45, resampleAlg="average")
    result = _sharpen(pan, ms3, tmp_path / "o.tif", method="brovey")
    assert result.info.ratio == 3 and result.info.bands == 3


# --- bad input: a clear message, and no output file ---------------------------------

def _refused(tmp_path, match, **request):
    out = tmp_path / "refused" / "out.tif"
    out.parent.mkdir(exist_ok=True)
    request.setdefault("output", str(out))
    request.setdefault("method", "brovey")
    with pytest.raises(PansharpenError, match=match):
        sharpen(SharpenRequest(**request))
    assert os.listdir(out.parent) == []  # neither the output nor any scratch file


def test_no_overlap(sample_paths, tmp_path):
    pan, ms = sample_paths
    far = str(tmp_path / "far.tif")
    ms_ds = gdal.Open(ms)
    gt, w, h = ms_ds.GetGeoTransform(), ms_ds.RasterXSize, ms_ds.RasterYSize
    gdal.Translate(far, ms, outputBounds=[gt[0] + 1e5, gt[3], gt[0] + 1e5 + w * 30, gt[3] - h * 30])
    _refused(tmp_path, "do not overlap", pan=pan, ms=far)


def test_multiband_pan_needs_a_band(sample_paths, tmp_path):
    _, ms = sample_paths
    _refused(tmp_path, "PAN raster has 4 bands: choose", pan=ms, ms=ms)


def test_non_integer_ratio(sample_paths, tmp_path):
    pan, ms = sample_paths
    odd = str(tmp_path / "odd.tif")
    gdal.Warp(odd, ms, xRes=37.5, yRes=37.5)
    _refused(tmp_path, r"2\.500 times the PAN pixel.*must be one of 2, 3, 4", pan=pan, ms=odd)


def test_not_a_raster(sample_paths, tmp_path):
    pan, _ = sample_paths
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    _refused(tmp_path, "not a raster GDAL can read", pan=pan, ms=str(text))


def test_missing_file(sample_paths, tmp_path):
    _, ms = sample_paths
    _refused(tmp_path, "PAN file .*missing.tif does not exist", pan=str(tmp_path / "missing.tif"), ms=ms)


def test_output_folder_not_writable(sample_paths, tmp_path):
    pan, ms = sample_paths
    with pytest.raises(PansharpenError, match="not writable"):
        sharpen(SharpenRequest(pan, ms, "/proc/sharpened.tif", method="brovey"))
    assert not os.path.exists("/proc/sharpened.tif")


def test_existing_output_refused_unless_overwrite(sample_paths, tmp_path):
    pan, ms = sample_paths
    out = tmp_path / "exists.tif"
    out.write_bytes(b"precious")
    with pytest.raises(PansharpenError, match="already exists"):
        _sharpen(pan, ms, out, method="brovey")
    assert out.read_bytes() == b"precious"
    _sharpen(pan, ms, out, method="brovey", overwrite=True)
    assert gdal.Open(str(out)).RasterCount == 4


def test_unknown_method_lists_the_choices(sample_paths, tmp_path):
    pan, ms = sample_paths
    _refused(tmp_path, "Unknown method 'magic': choose one of brovey", pan=pan, ms=ms, method="magic")


@pytest.mark.parametrize("data_type,scale", [("Byte", 255.0), ("Int16", 32767.0), ("Float32", 1.0), ("UInt16", 65535.0)])
def test_each_data_type_is_read_kept_and_scaled(sample_paths, tmp_path, data_type, scale):
    pan, ms = sample_paths
    options = ["-ot", data_type] + (["-scale", "0", "65535", "0", "255"] if data_type == "Byte" else [])
    if data_type == "Float32":
        options += ["-scale", "0", "65535", "0", "1"]
    pan_t, ms_t = str(tmp_path / "pan.tif"), str(tmp_path / "ms.tif")
    gdal.Translate(pan_t, pan, options=options)
    gdal.Translate(ms_t, ms, options=options)
    result = _sharpen(pan_t, ms_t, tmp_path / "o.tif", method="gsa")
    assert result.info.scale == scale and result.info.data_type == data_type
    out = gdal.Open(result.output)
    assert gdal.GetDataTypeName(out.GetRasterBand(1).DataType) == data_type
    ms_mean = read_raster(ms_t).astype(float).mean()
    assert read_raster(result.output).astype(float).mean() == pytest.approx(ms_mean, rel=0.05)


def test_nbits_and_sensor_set_the_scale(sample_paths, tmp_path):
    pan, ms = sample_paths
    ms11 = str(tmp_path / "ms11.tif")
    gdal.Translate(ms11, ms, creationOptions=["NBITS=15"])
    assert inspect_pair(pan, ms11).scale == 2 ** 15 - 1
    assert inspect_pair(pan, ms, sensor="WorldView-2").scale == 2047
    assert inspect_pair(pan, ms, sensor="GaoFen-2").scale == 1023

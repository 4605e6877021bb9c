"""Classical methods: agreement with GDAL, gains over the LMS on real imagery, and
the spectral properties each method is built to have."""
import numpy as np
import pytest
from osgeo import gdal
from scipy.ndimage import laplace

from diffusion_pansharpening.engine import mtf
from diffusion_pansharpening.engine.classical import (
    CLASSICAL,
    ClassicalMethod,
    _glp_lowpass,
    brovey,
    gihs,
    gsa,
    mtf_glp_hpm,
    mtf_glp_hpm_haze,
)
from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.upsample import upsample

gdal.UseExceptions()
RATIO = 4


def write_geotiff(path, array, pixel_size):
    """A north-up uint16 GeoTIFF whose top-left corner is the same for PAN and MS."""
    stack = array[None] if array.ndim == 2 else array
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), stack.shape[2], stack.shape[1], stack.shape[0], gdal.GDT_UInt16
    )
    ds.SetGeoTransform((500000.0, pixel_size, 0.0, 4000000.0, 0.0, -pixel_size))
    for index, band in enumerate(stack, start=1):
        ds.GetRasterBand(index).WriteArray(band)
    ds.FlushCache()
    return ds


def gdal_weighted_brovey(tmp_path, pan, ms):
    """GDAL's own pansharpening (VRTPansharpenedDataset, no weights given, so GDAL's
    defaults: weighted Brovey, cubic resampling), plus the LMS as GDAL computes it:
    the MS read onto the PAN grid with cubic resampling into the PAN's data type
    (gdalpansharpen.cpp keeps the upsampled bands in the PAN's type)."""
    pan_ds = write_geotiff(tmp_path / "pan.tif", pan, 1.0)
    ms_ds = write_geotiff(tmp_path / "ms.tif", ms, float(RATIO))
    bands = ms.shape[0]
    xml = (
        '<VRTDataset subClass="VRTPansharpenedDataset"><PansharpeningOptions>'
        + "".join(f'<SpectralBand dstBand="{i + 1}"></SpectralBand>' for i in range(bands))
        + "</PansharpeningOptions></VRTDataset>"
    )
    vrt = gdal.CreatePansharpenedVRT(
        xml, pan_ds.GetRasterBand(1), [ms_ds.GetRasterBand(i + 1) for i in range(bands)]
    )
    assert (vrt.RasterCount, vrt.RasterYSize, vrt.RasterXSize) == (bands, *pan.shape)
    assert vrt.GetRasterBand(1).DataType == gdal.GDT_UInt16
    fused = vrt.ReadAsArray()
    lms = ms_ds.ReadAsArray(
        buf_xsize=pan.shape[1],
        buf_ysize=pan.shape[0],
        buf_type=gdal.GDT_UInt16,
        resample_alg=gdal.GRIORA_Cubic,
    )
    return fused, lms


def test_brovey_agrees_with_gdal_on_ikonos(tmp_path, ikonos):
    pan, ms = ikonos
    pan = pan[256:512, 256:512].astype(np.uint16)
    ms = ms[:, 64:128, 64:128].astype(np.uint16)
    fused_by_gdal, lms = gdal_weighted_brovey(tmp_path, pan, ms)

    ours = brovey(pan.astype(np.float64), lms.astype(np.float64))
    ours = np.clip(np.round(ours), 0, 65535).astype(np.int64)

    # Every pixel, borders included: GDAL's resampling here is the same read.
    difference = np.abs(ours - fused_by_gdal.astype(np.int64))
    assert difference.max() <= 1
    assert np.mean(difference > 0) < 0.01  # only rounding ties differ
    # The comparison has teeth: PAN detail really changed the LMS.
    assert np.abs(fused_by_gdal.astype(np.int64) - lms).mean() > 20


def reduced_resolution(pair, sensor, size=512):
    """Wald's protocol on a crop: (PAN_lr, MS_lr, LMS, reference MS)."""
    pan, ms = pair
    pan = pan[:size, :size]
    reference = ms[:, : size // RATIO, : size // RATIO]
    pan_lr, ms_lr = mtf.wald_degrade(pan, reference, RATIO, sensor)
    lms = upsample(ms_lr, RATIO).astype(np.float64)
    return pan_lr, ms_lr, lms, reference


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


def detail_correlation(image, reference):
    """Mean over bands of the correlation of Laplacian high-passes."""
    return float(
        np.mean(
            [
                np.corrcoef(laplace(np.asarray(image[k], np.float64)).ravel(),
                            laplace(reference[k]).ravel())[0, 1]
                for k in range(reference.shape[0])
            ]
        )
    )


@pytest.mark.parametrize("method", ["brovey", "gihs", "gsa", "mtf-glp-hpm", "mtf-glp-hpm-h"])
@pytest.mark.parametrize("scene, sensor", [("ikonos", "IKONOS"), ("worldview2", "WV2")])
def test_methods_beat_the_lms_at_reduced_resolution(request, scene, sensor, method):
    pan_lr, ms_lr, lms, reference = reduced_resolution(request.getfixturevalue(scene), sensor)
    fused = CLASSICAL[method].run(pan_lr, lms, ms_lr, RATIO, sensor)
    assert fused.shape == lms.shape and fused.dtype == np.float32
    assert rmse(fused, reference) < 0.9 * rmse(lms, reference)
    assert detail_correlation(fused, reference) > detail_correlation(lms, reference) + 0.4


@pytest.fixture(scope="module")
def ikonos_tile(ikonos):
    """A full-resolution IKONOS window: PAN 128 x 128, MS 4 x 32 x 32, LMS."""
    pan, ms = ikonos
    ms = ms[:, 100:132, 60:92]
    pan = pan[400:528, 240:368]
    return pan, ms, upsample(ms, RATIO).astype(np.float64)


def test_brovey_keeps_band_ratios_and_follows_the_pan(ikonos_tile):
    pan, _, lms = ikonos_tile
    fused = brovey(pan, lms).astype(np.float64)
    np.testing.assert_allclose(fused[0] / fused[2], lms[0] / lms[2], rtol=1e-5)
    # The pseudo-PAN of the output (equal weights) is the PAN itself.
    np.testing.assert_allclose(fused.mean(axis=0), pan, rtol=1e-5)
    np.testing.assert_allclose(brovey(2.0 * pan, lms), 2.0 * fused, rtol=1e-5)


def test_brovey_weights_and_zero_pseudo_pan():
    lms = np.array([[[2.0, 0.0]], [[6.0, 0.0]]])
    pan = np.array([[8.0, 5.0]])
    # pseudo = 0.25*2 + 0.75*6 = 5 -> factor 8/5; pseudo 0 -> output 0 (as GDAL).
    fused = brovey(pan, lms, weights=[0.25, 0.75])
    np.testing.assert_allclose(fused[:, 0, 0], [3.2, 9.6], rtol=1e-6)
    assert np.all(fused[:, 0, 1] == 0.0)
    with pytest.raises(PansharpenError, match="one weight per band"):
        brovey(pan, lms, weights=[1.0])


def test_gihs_injects_the_same_detail_into_every_band(ikonos_tile):
    pan, _, lms = ikonos_tile
    injected = gihs(pan, lms).astype(np.float64) - lms
    for k in range(1, lms.shape[0]):
        np.testing.assert_allclose(injected[k], injected[0], atol=1e-3)
    # P = injected + I is the PAN equalised to I: same mean and standard deviation.
    intensity = lms.mean(axis=0)
    equalised = injected[0] + intensity
    assert equalised.mean() == pytest.approx(intensity.mean(), rel=1e-6)
    assert equalised.std() == pytest.approx(intensity.std(), rel=1e-4)


def test_gsa_injects_one_detail_image_with_band_gains(ikonos_tile):
    pan, ms, lms = ikonos_tile
    injected = (gsa(pan, lms, ms, RATIO).astype(np.float64) - lms).reshape(lms.shape[0], -1)
    singular = np.linalg.svd(injected, compute_uv=False)
    assert singular[1] < 1e-4 * singular[0]  # rank one: g_k * (PAN - I)
    # The output keeps the band means of the LMS (toolbox's final mean equalisation).
    np.testing.assert_allclose(injected.mean(axis=1), 0.0, atol=1e-2)


def hpm_literal(pan, lms, sensor):
    """MTF-GLP-HPM step by step as the toolbox writes it, band by band."""
    gains, _ = mtf.sensor_gains(sensor, lms.shape[0])
    spread = np.std(mtf.mtf_filter(pan, 0.3, RATIO))
    out = np.empty_like(lms)
    for k in range(lms.shape[0]):
        equalised = (pan - pan.mean()) * lms[k].std() / spread + lms[k].mean()
        low = mtf.mtf_filter(equalised, gains[k], RATIO)
        low = upsample(low[RATIO // 2 :: RATIO, RATIO // 2 :: RATIO], RATIO)
        out[k] = lms[k] * equalised / low
    return out


def test_mtf_glp_hpm_follows_the_toolbox_steps(ikonos_tile):
    pan, _, lms = ikonos_tile
    expected = hpm_literal(pan, lms, "IKONOS")
    np.testing.assert_allclose(mtf_glp_hpm(pan, lms, RATIO, "IKONOS"), expected, rtol=1e-4)
    # The sensor matters: other MTF gains give another low-pass.
    assert not np.allclose(mtf_glp_hpm(pan, lms, RATIO, None), expected, rtol=1e-3)


def test_mtf_glp_hpm_modulates_identical_bands_identically(ikonos_tile):
    pan, _, lms = ikonos_tile
    same = np.repeat(lms[:1], 3, axis=0)
    fused = mtf_glp_hpm(pan, same, RATIO).astype(np.float64)
    ratio = fused / same
    np.testing.assert_allclose(ratio[1], ratio[0], rtol=1e-6)
    np.testing.assert_allclose(ratio[2], ratio[0], rtol=1e-6)
    assert ratio[0].std() > 0.05  # it really modulates


def test_mtf_glp_hpm_guards_the_division():
    """A PAN whose equalised low-pass falls to 0 must not blow up."""
    pan = np.zeros((64, 64))
    pan[:, 32:] = 1000.0
    lms = np.full((2, 64, 64), 10.0)
    lms[:, :, 32:] = 12.0
    fused = mtf_glp_hpm(pan, lms, RATIO)
    assert np.all(np.isfinite(fused))
    assert np.abs(fused).max() < 100.0


@pytest.mark.parametrize("method", ["gihs", "gsa", "mtf-glp-hpm", "mtf-glp-hpm-h"])
def test_equalised_methods_ignore_pan_gain_and_offset(ikonos_tile, method):
    pan, ms, lms = ikonos_tile
    run = CLASSICAL[method].run
    np.testing.assert_allclose(
        run(3.0 * pan + 250.0, lms, ms, RATIO, "IKONOS"),
        run(pan, lms, ms, RATIO, "IKONOS"),
        rtol=2e-4,
        atol=2e-2,
    )


@pytest.mark.parametrize("method", sorted(CLASSICAL))
def test_a_pan_equal_to_the_intensity_returns_the_lms(ikonos_tile, method):
    """No detail to inject: a flat tile (flat LMS and PAN equal to it) for every
    method; for Brovey and GIHS also a textured PAN equal to their intensity."""
    pan, ms, lms = ikonos_tile
    flat_ms = np.broadcast_to(ms.mean(axis=(1, 2))[:, None, None], ms.shape)
    flat_lms = upsample(flat_ms, RATIO).astype(np.float64)
    flat_pan = flat_lms.mean(axis=0)
    fused = CLASSICAL[method].run(flat_pan, flat_lms, flat_ms, RATIO, "IKONOS")
    np.testing.assert_allclose(fused, flat_lms, rtol=1e-5)
    if method in ("brovey", "gihs"):
        fused = CLASSICAL[method].run(lms.mean(axis=0), lms, ms, RATIO, "IKONOS")
        np.testing.assert_allclose(fused, lms, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("ratio", [2, 3, 4])
@pytest.mark.parametrize("method", sorted(CLASSICAL))
def test_every_method_keeps_shape_and_float32(method, ratio):
    rng = np.random.default_rng(3)
    ms = rng.uniform(100, 1000, size=(3, 24, 20))
    lms = upsample(ms, ratio)
    pan = rng.uniform(100, 1000, size=lms.shape[1:]).astype(np.uint16)
    fused = CLASSICAL[method].run(pan, lms, ms, ratio, None)
    assert fused.shape == lms.shape
    assert fused.dtype == np.float32
    assert np.all(np.isfinite(fused))


def test_registry_describes_each_method():
    assert set(CLASSICAL) == {"brovey", "gihs", "gsa", "mtf-glp-hpm", "mtf-glp-hpm-h"}
    for name, method in CLASSICAL.items():
        assert isinstance(method, ClassicalMethod) and method.name == name
        assert method.summary and method.halo % 12 == 0
    assert CLASSICAL["brovey"].halo == 0
    assert CLASSICAL["mtf-glp-hpm"].halo >= 20  # at least the 41 x 41 MTF radius


def test_haze_corrected_hpm_leaves_the_darkest_object_as_it_is(ikonos_tile):
    """Where the MS is at each band's darkest value (the haze, L_k), the haze-corrected
    modulation has nothing to scale: the output is L_k whatever the PAN's texture there,
    where MTF-GLP-HPM modulates the same pixels (and turns their spectrum)."""
    pan, ms, _ = ikonos_tile
    ms = np.array(ms, np.float64)
    dark = ms.min(axis=(1, 2)) - 5.0  # a dark object below everything else, in every band
    ms[:, 2:30, 2:30] = dark[:, None, None]
    lms = upsample(ms, RATIO).astype(np.float64)
    inner = (slice(None), slice(48, 80), slice(48, 80))  # away from the object's edges
    hazy = mtf_glp_hpm_haze(pan, lms, ms, RATIO, "IKONOS")
    np.testing.assert_allclose(hazy[inner], np.broadcast_to(dark[:, None, None], hazy[inner].shape), rtol=1e-5)
    plain = mtf_glp_hpm(pan, lms, RATIO, "IKONOS")
    assert np.abs(plain[inner] - dark[:, None, None]).max() > 5.0
    assert np.abs(hazy - plain).max() > 1.0  # elsewhere the two differ too


def test_haze_corrected_hpm_modulates_a_band_the_pan_does_not_see_as_hpm_does(ikonos_tile):
    """Landsat 8's PAN ends short of its NIR band (sensors.Sensor.pan_blind): that band
    gets MTF-GLP-HPM's equalised modulation, the others the haze-corrected one."""
    pan, ms, lms = ikonos_tile
    hazy = mtf_glp_hpm_haze(pan, lms, ms, RATIO, "LANDSAT8")
    plain = mtf_glp_hpm(pan, lms, RATIO, "LANDSAT8")
    np.testing.assert_allclose(hazy[3], plain[3], rtol=1e-5)
    assert np.abs(hazy[:3] - plain[:3]).max() > 1.0
    unknown = mtf_glp_hpm_haze(pan, lms, ms, RATIO, None)  # no sensor: every band as the PAN's
    assert np.abs(unknown[3] - plain[3]).max() > 1.0


def test_hpm_halo_makes_tiles_exact(ikonos):
    """The spatial part of MTF-GLP-HPM (MTF low-pass, decimation, interp23tap) on a
    tile read with the registry's halo equals the whole image's away from the tile
    border; the statistics stay tile-local by design (the engine blends seams)."""
    pan, _ = ikonos
    pan = pan[:384, :384]
    halo = CLASSICAL["mtf-glp-hpm"].halo
    whole = _glp_lowpass(pan, 0.26, RATIO)
    window = (slice(160 - halo, 224 + halo), slice(160 - halo, 224 + halo))
    tile = _glp_lowpass(pan[window], 0.26, RATIO)
    np.testing.assert_allclose(
        tile[halo:-halo, halo:-halo], whole[160:224, 160:224], rtol=0, atol=1e-6 * pan.max()
    )
    short = 4 * RATIO  # without a real halo the tile border shows
    window = (slice(160 - short, 224 + short), slice(160 - short, 224 + short))
    tile = _glp_lowpass(pan[window], 0.26, RATIO)
    assert np.abs(tile[short:-short, short:-short] - whole[160:224, 160:224]).max() > 0.05


def test_shape_mismatches_are_refused():
    lms = np.zeros((4, 32, 32))
    ms = np.zeros((4, 8, 8))
    with pytest.raises(PansharpenError, match="upsample the MS onto the PAN grid"):
        brovey(np.zeros((32, 30)), lms)
    with pytest.raises(PansharpenError, match="PAN must be one band"):
        gihs(np.zeros((1, 32, 32)), lms)
    with pytest.raises(PansharpenError, match="exactly 4 times"):
        gsa(np.zeros((32, 32)), lms, np.zeros((4, 9, 8)), RATIO)
    with pytest.raises(PansharpenError, match=r"\(4, h, w\)"):
        gsa(np.zeros((32, 32)), lms, ms[:3], RATIO)
    with pytest.raises(PansharpenError, match="whole number of MS pixels"):
        mtf_glp_hpm(np.zeros((30, 30)), np.zeros((4, 30, 30)), RATIO)


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_mtf_glp_hpm_low_pass_is_aligned_with_the_pan_at_every_ratio(ratio):
    """A PAN ramp has no detail at MS scale: the MTF filter, the sampling at the MS
    centres and the re-interpolation must give the ramp back at the same phase, so
    nothing is injected away from the borders (a half-pixel slip at ratio 3 would
    modulate every pixel)."""
    size = 192
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    pan = 500.0 + 3.0 * y + 1.5 * x
    rng = np.random.default_rng(ratio)
    lms = upsample(rng.uniform(200, 900, size=(3, size // ratio, size // ratio)), ratio)
    fused = mtf_glp_hpm(pan, lms, ratio).astype(np.float64)
    inner = (slice(None), slice(60, -60), slice(60, -60))
    np.testing.assert_allclose(fused[inner], lms[inner], rtol=2e-5)


@pytest.mark.parametrize("method", sorted(CLASSICAL))
def test_every_method_is_scale_equivariant(ikonos_tile, method):
    """f(c pan, c lms, c ms) = c f(pan, lms, ms): what lets the engine run the classical
    methods on digital numbers instead of normalised values (streaming.read_tile)."""
    pan, ms, lms = ikonos_tile
    run = CLASSICAL[method].run
    reference = run(pan / 2047.0, lms / 2047.0, ms / 2047.0, RATIO, "IKONOS").astype(np.float64)
    in_dn = run(pan.astype(np.float64), lms, ms, RATIO, "IKONOS").astype(np.float64)
    np.testing.assert_allclose(in_dn / 2047.0, reference, rtol=1e-5, atol=1e-7)


def test_the_engine_runs_classical_methods_on_digital_numbers_with_the_same_result(ikonos):
    """A PAN on another scale than the MS (pan_scale != scale): the digital-number path
    equals the normalised one, and brovey's tiles need no overlap."""
    from diffusion_pansharpening.engine.methods import ClassicalTileMethod
    from diffusion_pansharpening.engine.streaming import ArraySource, run_tiled

    pan, ms = ikonos
    pan, ms = pan[:256, :256].astype(np.float32) * 4.0, ms[:, :64, :64].astype(np.float32)

    class Normalised:  # the same method without the equivariance flag
        def __init__(self, method):
            self.method, self.halo, self.scale_equivariant = method, method.halo, False

        def __call__(self, *args):
            return self.method(*args)

    def run(method, overlap, strip_rows=None):
        out = np.zeros((4, 256, 256), np.float32)

        def sink(y0, x0, values, valid):
            out[:, y0:y0 + values.shape[1], x0:x0 + values.shape[2]] = values
        source = ArraySource(pan, ms, RATIO, scale=2047.0, pan_scale=4 * 2047.0)
        run_tiled(source, method, 256, 256, sink, tile=96, overlap=overlap, threads=False, strip_rows=strip_rows)
        return out

    for name in ("brovey", "gsa"):
        method = ClassicalTileMethod(name, RATIO, "IKONOS")
        in_dn, normalised = run(method, 16), run(Normalised(method), 16)
        np.testing.assert_allclose(in_dn, normalised, rtol=2e-5, atol=1e-3)
    brovey = ClassicalTileMethod("brovey", RATIO, "IKONOS")
    assert brovey.pixelwise and not ClassicalTileMethod("gsa", RATIO, "IKONOS").pixelwise
    np.testing.assert_allclose(run(brovey, 0), run(brovey, 16), rtol=1e-6, atol=1e-3)
    # full-width strips (tiling.strip_rows: what the pipeline gives a pixel-wise method)
    np.testing.assert_allclose(run(brovey, 0, strip_rows=40), run(brovey, 16), rtol=1e-6, atol=1e-3)

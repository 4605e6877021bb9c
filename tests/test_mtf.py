"""Sensor MTF filters, MATLAB bicubic imresize and Wald's protocol (engine.mtf)."""
import numpy as np
import pytest

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.mtf import (
    SENSOR_GNYQ,
    degrade_to_ms_scale,
    imresize_bicubic,
    mtf_filter,
    mtf_kernel,
    sensor_gains,
    wald_degrade,
)


def gain_at_ms_nyquist(kernel: np.ndarray, ratio: int) -> float:
    """|H| at (1/(2 ratio), 0) cycles/pixel, read from a zero-padded FFT bin."""
    n = 64 * ratio  # bin n/(2 ratio) is exactly the MS Nyquist frequency
    spectrum = np.abs(np.fft.fft2(kernel, s=(n, n)))
    return float(spectrum[n // (2 * ratio), 0])


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("gnyq", [0.11, 0.15, 0.23, 0.3, 0.365])
@pytest.mark.parametrize("ratio", [2, 4])
def test_kernel_has_the_sensor_gain_at_ms_nyquist(gnyq, ratio):
    kernel = mtf_kernel(gnyq, ratio)
    assert kernel.shape == (41, 41)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-15)
    gain = gain_at_ms_nyquist(kernel, ratio)
    # The toolbox's (N - 1) in the Gaussian width gives gnyq^((N/(N-1))^2) exactly
    # for the sampled Gaussian; the Kaiser window moves it by well under 1e-3.
    assert gain == pytest.approx(gnyq ** ((41 / 40) ** 2), abs=1.5e-3)
    assert gain == pytest.approx(gnyq, abs=0.02)


def second_moment(kernel: np.ndarray) -> float:
    t = np.arange(kernel.shape[0]) - kernel.shape[0] // 2
    return float((kernel * (t[:, None] ** 2 + t[None, :] ** 2)).sum())


def test_smaller_gain_means_wider_kernel():
    widths = [second_moment(mtf_kernel(g, 4)) for g in (0.4, 0.3, 0.2, 0.1)]
    assert widths == sorted(widths)
    # and a larger ratio (lower cutoff) widens it too
    assert second_moment(mtf_kernel(0.3, 4)) > second_moment(mtf_kernel(0.3, 2))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5])
def test_kernel_rejects_gains_outside_0_1(bad):
    with pytest.raises(PansharpenError, match="gain"):
        mtf_kernel(bad, 4)


# ------------------------------------------------------------------ filtering
def test_mtf_filter_keeps_constants_and_uses_one_gain_per_band():
    rng = np.random.default_rng(0)
    image = rng.normal(1000, 100, (2, 60, 50))
    filtered = mtf_filter(image, [0.3, 0.15], 4)
    assert filtered.shape == image.shape and filtered.dtype == np.float64
    np.testing.assert_allclose(filtered[0], mtf_filter(image[0], 0.3, 4), atol=1e-9)
    np.testing.assert_allclose(filtered[1], mtf_filter(image[1], 0.15, 4), atol=1e-9)
    assert filtered[1].std() < filtered[0].std() < image[0].std()
    np.testing.assert_allclose(mtf_filter(np.full((30, 30), 7.0), 0.3, 4), 7.0, atol=1e-9)


def test_mtf_filter_matches_direct_replicate_convolution():
    from scipy.ndimage import correlate

    rng = np.random.default_rng(1)
    band = rng.normal(0, 1, (48, 40))
    direct = correlate(band, mtf_kernel(0.29, 4), mode="nearest")
    np.testing.assert_allclose(mtf_filter(band, 0.29, 4), direct, atol=1e-10)


@pytest.mark.parametrize("shape", [(48, 40), (61, 37)])
def test_mtf_filter_in_float32_matches_direct_convolution(shape):
    """The float32 path (one FFT against a cached kernel spectrum) gives the direct
    filter's values to float32 precision, on sizes of either parity, twice in a row."""
    from scipy.ndimage import correlate

    band = np.random.default_rng(2).normal(1000, 100, shape)
    direct = correlate(band, mtf_kernel(0.29, 4), mode="nearest")
    for _ in range(2):
        np.testing.assert_allclose(mtf_filter(band, 0.29, 4, float32=True), direct, rtol=2e-6, atol=1e-3)


def test_mtf_filter_rejects_wrong_gain_count():
    with pytest.raises(PansharpenError, match="3 MTF gains"):
        mtf_filter(np.zeros((4, 20, 20)), [0.3, 0.3, 0.3], 4)


# ------------------------------------------------------------------ imresize
def test_imresize_keeps_a_constant_and_gives_matlab_sizes():
    out = imresize_bicubic(np.full((3, 17, 13), 5.0), 0.25)
    assert out.shape == (3, 5, 4)  # ceil(17/4), ceil(13/4), as MATLAB
    np.testing.assert_allclose(out, 5.0, atol=1e-12)
    assert imresize_bicubic(np.ones((1280, 1280)), 0.25).shape == (320, 320)
    assert imresize_bicubic(np.ones((10, 6)), 2).shape == (20, 12)


def test_imresize_shrinks_a_ramp_to_the_mid_pixel_positions():
    # MATLAB maps output pixel u (1-based) to input x = 4u - 1.5, i.e. 0-based 4i + 1.5:
    # the mean of the four input pixels it replaces. The widened cubic kernel is
    # symmetric and sums to 1, so a ramp is reproduced wherever no tap is mirrored
    # (the kernel reaches 8 pixels each side).
    ramp = np.tile(np.arange(64.0), (3, 1))
    out = imresize_bicubic(ramp, 0.25)
    expected = 4 * np.arange(16) + 1.5
    np.testing.assert_allclose(out[0, 2:-2], expected[2:-2], atol=1e-12)
    # First output by hand: taps at 0-based j = -7..10 around x = 1.5, weights
    # cubic((1.5 - j)/4)/4 normalised, and MATLAB's mirror with the edge repeated
    # (j = -1 reads pixel 0, j = -2 pixel 1, ...).
    j = np.arange(-7, 11)
    d = np.abs(1.5 - j) / 4
    w = np.where(d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1, np.where(d <= 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, 0))
    values = np.where(j >= 0, j, -j - 1)
    assert out[0, 0] == pytest.approx((w * values).sum() / w.sum(), abs=1e-12)
    assert out[0, 0] != pytest.approx(1.5, abs=0.05)  # the mirror does change it
    # a ramp shrunk along rows is untouched along columns
    np.testing.assert_allclose(out[0], out[-1], atol=1e-12)


def test_imresize_enlarges_a_ramp_to_matlab_positions():
    # Enlarging by 2: output u (1-based) samples x = u/2 + 1/4, 0-based k/2 - 1/4.
    out = imresize_bicubic(np.tile(np.arange(20.0), (2, 1)), 2)
    k = np.arange(40)
    np.testing.assert_allclose(out[0, 4:-4], (k / 2 - 0.25)[4:-4], atol=1e-12)


def test_imresize_antialiasing_removes_a_nyquist_checkerboard():
    checker = (np.indices((64, 64)).sum(axis=0) % 2) * 2.0 - 1.0
    out = imresize_bicubic(checker, 0.25)
    assert np.abs(out[2:-2, 2:-2]).max() < 1e-12


# ------------------------------------------------------------------ sensors
def test_sensor_gains_lookup():
    ms, pan = sensor_gains("wv3", 8)
    np.testing.assert_allclose(ms, [0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315])
    assert pan == 0.14
    for alias in ("WorldView-2", "WV2", "worldview2"):
        ms, pan = sensor_gains(alias, 8)
        np.testing.assert_allclose(ms, [0.35] * 7 + [0.27])
        assert pan == 0.11
    assert sensor_gains("QuickBird", 4)[1] == 0.15
    np.testing.assert_allclose(sensor_gains("IKONOS", 4)[0], [0.26, 0.28, 0.29, 0.28])
    np.testing.assert_allclose(sensor_gains("GeoEye-1", 4)[0], 0.23)
    for unknown in (None, "GF2", "Pleiades"):
        ms, pan = sensor_gains(unknown, 5)
        np.testing.assert_allclose(ms, [0.3] * 5)
        assert pan == 0.15
    assert {"QB", "IKONOS", "GEOEYE1", "WV2", "WV3", "GF2"} <= set(SENSOR_GNYQ)


def test_sensor_with_other_band_count_is_an_error():
    with pytest.raises(PansharpenError, match="8 MS bands"):
        sensor_gains("WV2", 5)


def test_four_band_worldview_product_gets_blue_green_red_nir1_gains():
    ms, _ = sensor_gains("WV3", 4)
    np.testing.assert_allclose(ms, [0.355, 0.360, 0.365, 0.335])


# ------------------------------------------------------------------ Wald
def block_mean(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape
    return image.reshape(h // size, size, w // size, size).mean(axis=(1, 3))


def test_wald_degrade_ikonos_shapes_and_decimation(ikonos):
    pan, ms = ikonos
    pan_lr, ms_lr = wald_degrade(pan, ms, 4, "IKONOS")
    assert pan_lr.shape == (320, 320) and ms_lr.shape == (4, 80, 80)
    gains, _ = sensor_gains("IKONOS", 4)
    np.testing.assert_allclose(ms_lr, mtf_filter(ms, gains, 4)[:, 2::4, 2::4])
    np.testing.assert_allclose(pan_lr, imresize_bicubic(pan, 0.25))
    # the low-resolution PAN is the antialiased 4x4 average, closely
    assert np.corrcoef(pan_lr.ravel(), block_mean(pan, 4).ravel())[0, 1] > 0.99


def test_wald_degrade_ikonos_decimation_phase(ikonos):
    pan, ms = ikonos
    _, ms_lr = wald_degrade(pan, ms, 4, "IKONOS")
    # The degraded MS (80 x 80) must sit on the same ground as the PAN averaged in
    # 16 x 16 blocks: the correlation peaks at zero shift.
    intensity = ms_lr.mean(axis=0)[2:-2, 2:-2]
    pan_blocks = block_mean(pan, 16)
    scores = {}
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            shifted = pan_blocks[2 + dy : 78 + dy, 2 + dx : 78 + dx]
            scores[(dy, dx)] = np.corrcoef(intensity.ravel(), shifted.ravel())[0, 1]
    assert max(scores, key=scores.get) == (0, 0)


def test_wald_degrade_needs_divisible_shapes():
    with pytest.raises(PansharpenError, match="crop it to 80 x 80"):
        wald_degrade(np.zeros((328, 328)), np.zeros((4, 82, 82)), 4)
    with pytest.raises(PansharpenError, match="4 times the MS size"):
        wald_degrade(np.zeros((320, 320)), np.zeros((4, 40, 40)), 4)
    with pytest.raises(PansharpenError, match="crop it to"):
        degrade_to_ms_scale(np.zeros((3, 30, 32)), 0.3, 4)

"""Upsampling to the PAN grid: phase, interpolation, borders, tiling exactness."""
import numpy as np
import pytest

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.upsample import (
    bicubic,
    context_pixels,
    interp23tap,
    upsample,
    upsample_window,
)
from diffusion_pansharpening.engine.arrays import mirror_pad

INTERP23_RATIOS = (2, 4, 8)
BICUBIC_RATIOS = (2, 3, 4)
CASES = [(interp23tap, r) for r in INTERP23_RATIOS] + [(bicubic, r) for r in BICUBIC_RATIOS]
IDS = [f"{f.__name__}-{r}" for f, r in CASES]


def polynomial_image(size: int, degree: int, coords=None) -> np.ndarray:
    """A separable polynomial in MS pixel-centre coordinates (rows and columns)."""
    u = np.arange(size, dtype=np.float64) if coords is None else coords
    rows = 1000.0 * (u / size) ** degree + 3.0 * u
    cols = 200.0 * (u / size) ** degree - 0.5 * u
    return rows[:, None] + cols[None, :]


def lms_coords(size: int, ratio: int) -> np.ndarray:
    """MS pixel-centre coordinate sampled by each LMS row: u = y/r - 1/2."""
    return np.arange(size * ratio) / ratio - 0.5


@pytest.mark.parametrize("interpolate, ratio", CASES, ids=IDS)
def test_constant_stays_constant_everywhere(interpolate, ratio):
    ms = np.full((3, 20, 24), 1234.5)
    lms = interpolate(ms, ratio)
    assert lms.shape == (3, 20 * ratio, 24 * ratio)
    assert lms.dtype == np.float32
    np.testing.assert_allclose(lms, 1234.5, rtol=2e-6)


@pytest.mark.parametrize(
    "interpolate, ratio, degree",
    [(interp23tap, r, 3) for r in INTERP23_RATIOS] + [(bicubic, r, 2) for r in BICUBIC_RATIOS],
    ids=[f"interp23tap-{r}-cubic" for r in INTERP23_RATIOS]
    + [f"bicubic-{r}-quadratic" for r in BICUBIC_RATIOS],
)
def test_polynomials_reproduced_at_the_project_phase(interpolate, ratio, degree):
    """Pins the phase: LMS row y samples the MS at u = y/r - 1/2 (linear terms), and
    the polynomial order each interpolator reproduces (23-tap: at least cubic;
    Keys: quadratic)."""
    size = 40
    lms = interpolate(polynomial_image(size, degree), ratio).astype(np.float64)
    u = lms_coords(size, ratio)
    expected = polynomial_image(size, degree, coords=u)
    cut = (context_pixels(ratio) + 1) * ratio
    inner = (slice(cut, -cut), slice(cut, -cut))
    np.testing.assert_allclose(lms[inner], expected[inner], atol=2e-3)
    # A phase off by one PAN pixel would be wrong by the slope 3/r per row.
    shifted = polynomial_image(size, degree, coords=u + 1.0 / ratio)
    assert np.abs(lms[inner] - shifted[inner]).max() > 1.0


def test_bicubic_is_only_quadratic_exact():
    """Keys a = -0.5 does not reproduce cubics: tells the two interpolators apart."""
    size, ratio = 40, 3
    lms = bicubic(polynomial_image(size, 3), ratio).astype(np.float64)
    expected = polynomial_image(size, 3, coords=lms_coords(size, ratio))
    cut = 3 * ratio
    assert np.abs(lms[cut:-cut, cut:-cut] - expected[cut:-cut, cut:-cut]).max() > 5e-4


@pytest.mark.parametrize(
    "interpolate, ratio",
    [(interp23tap, r) for r in INTERP23_RATIOS] + [(bicubic, 2), (bicubic, 4)],
)
def test_decimating_at_offset_half_ratio_gives_back_the_ms(interpolate, ratio):
    rng = np.random.default_rng(ratio)
    ms = rng.uniform(0, 2047, size=(2, 17, 23))
    lms = interpolate(ms, ratio)
    half = ratio // 2
    np.testing.assert_allclose(lms[:, half::ratio, half::ratio], ms, rtol=1e-6, atol=1e-3)


def test_interp23tap_impulse_response_is_the_cdf23_filter():
    """An MS impulse at i0 lands on 2*i0 + 1 and spreads with the toolbox's taps
    2 * [0.305334091185, -0.072698593239, ...] at odd distances."""
    ms = np.zeros((30, 30))
    ms[15, 15] = 1.0
    lms = interp23tap(ms, 2)
    centre = 2 * 15 + 1
    row = lms[centre]
    taps = 2 * np.array(
        [0.305334091185, -0.072698593239, 0.021809577942, -0.005192756653,
         0.000807762146, -0.000060081482]
    )
    assert row[centre] == pytest.approx(1.0)
    for t, tap in enumerate(taps, start=1):
        assert row[centre + 2 * t - 1] == pytest.approx(tap, abs=1e-7)
        assert row[centre - 2 * t + 1] == pytest.approx(tap, abs=1e-7)
        assert row[centre + 2 * t] == 0.0
    assert np.count_nonzero(row) == 13


@pytest.mark.parametrize("interpolate, ratio", CASES, ids=IDS)
def test_borders_mirror_instead_of_wrapping(interpolate, ratio):
    """The toolbox's circular borders would pull the last column into the first ones."""
    ms = np.zeros((24, 24))
    ms[:, -1] = 1000.0
    lms = interpolate(ms, ratio)
    assert np.all(lms[:, : 4 * ratio] == 0.0)
    # Mirrored, the right border sees the bright column twice: it stays bright.
    assert lms[:, -1].min() > 900.0


@pytest.mark.parametrize("ratio", [2, 3, 4, 8])
def test_window_with_context_equals_crop_of_whole(ratio):
    """What the tiled engine relies on, to float32 rounding (the BLAS products round by
    the kernel OpenBLAS picks for each shape: exact on an AVX-512 CPU, within 8e-4 on
    an AVX2 one, for values up to 2047); one pixel less of context is not enough."""
    rng = np.random.default_rng(7)
    ms = rng.uniform(0, 2047, size=(3, 64, 72)).astype(np.float32)
    whole = upsample(ms, ratio)
    r0, r1, c0, c1 = 27, 41, 30, 47
    margin = context_pixels(ratio)

    def window(m):
        part = upsample(ms[:, r0 - m : r1 + m, c0 - m : c1 + m], ratio)
        return part[:, m * ratio : (r1 - r0 + m) * ratio, m * ratio : (c1 - c0 + m) * ratio]

    expected = whole[:, r0 * ratio : r1 * ratio, c0 * ratio : c1 * ratio]
    np.testing.assert_allclose(window(margin), expected, rtol=0, atol=1e-3)
    # The engine's own call: the window with its context, interpolated as it is.
    inner = upsample_window(ms[:, r0 - margin : r1 + margin, c0 - margin : c1 + margin], ratio)
    np.testing.assert_allclose(inner, expected, rtol=0, atol=1e-3)
    # At the image's edge the context is the mirror image (raster_io's reads).
    edge = mirror_pad(ms[:, : r1 + margin, c0 - margin : c1 + margin], ((margin, 0), (0, 0)))
    np.testing.assert_allclose(upsample_window(edge, ratio),
                               whole[:, : r1 * ratio, c0 * ratio : c1 * ratio], rtol=0, atol=1e-3)
    if ratio in (2, 3):  # at 4 and 8 the farthest taps' products fall below float32 rounding
        assert np.abs(window(margin - 1) - expected).max() > 0.1


def test_context_pixels_values():
    assert [context_pixels(r) for r in (1, 2, 3, 4, 8)] == [0, 6, 2, 8, 10]


def test_upsample_chooses_the_interpolator():
    rng = np.random.default_rng(1)
    ms = rng.uniform(0, 100, size=(2, 12, 10))
    np.testing.assert_array_equal(upsample(ms, 4), interp23tap(ms, 4))
    np.testing.assert_array_equal(upsample(ms, 2), interp23tap(ms, 2))
    np.testing.assert_array_equal(upsample(ms, 3), bicubic(ms, 3))
    assert not np.allclose(interp23tap(ms, 4), bicubic(ms, 4))


def test_shapes_for_one_band_and_stacks():
    band = np.ones((5, 7), dtype=np.uint16)
    assert upsample(band, 2).shape == (10, 14)
    assert upsample(band, 4).shape == (20, 28)
    assert upsample(band, 3).shape == (15, 21)
    assert upsample(band[None].repeat(4, 0), 4).shape == (4, 20, 28)
    assert upsample(band, 3).dtype == np.float32


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(PansharpenError, match="power-of-two"):
        interp23tap(np.zeros((4, 4)), 3)
    with pytest.raises(PansharpenError, match="positive integer"):
        upsample(np.zeros((4, 4)), 2.5)
    with pytest.raises(PansharpenError, match="bands, rows, cols"):
        upsample(np.zeros((1, 2, 4, 4)), 2)


@pytest.mark.parametrize("kind, ratio", [("interp23tap", r) for r in INTERP23_RATIOS] + [("bicubic", 3)])
def test_block_matrices_equal_the_filters_applied_axis_by_axis(kind, ratio):
    """The fast path (banded block products, partial last blocks included) gives the
    1-D definitions applied along rows then columns."""
    from diffusion_pansharpening.engine import upsample as module

    image = np.random.default_rng(5).uniform(0, 2000, size=(2, 37, 23)).astype(np.float32)
    pad, along = module._context(kind, ratio), module._along(kind)
    work = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric").astype(np.float64)
    expected = along(along(work, 1, ratio, pad), 2, ratio, pad)
    fast = (interp23tap if kind == "interp23tap" else bicubic)(image, ratio)
    assert fast.shape == expected.shape == (2, 37 * ratio, 23 * ratio)
    np.testing.assert_allclose(fast, expected, rtol=0, atol=2e-6 * 2000 * 4)

"""Pansharpening quality indices (engine.quality): known values, properties, real data."""
import numpy as np
import pytest
from scipy.ndimage import zoom

from diffusion_pansharpening.engine import quality
from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.mtf import mtf_filter, sensor_gains, wald_degrade
from diffusion_pansharpening.engine.quality import (
    IDEAL,
    d_lambda,
    d_lambda_khan,
    d_s,
    ergas,
    full_indices,
    hqnr,
    q2n,
    q_index,
    qnr,
    reduced_indices,
    sam,
    scc,
)


def upsample(ms: np.ndarray, ratio: int = 4) -> np.ndarray:
    """Plain cubic upsampling on the pixel-edge-aligned grid (tests only)."""
    return zoom(ms, (1, ratio, ratio), order=3, grid_mode=True, mode="nearest")


def synthetic_dn(bands=4, size=64, seed=0) -> np.ndarray:
    """Smooth, correlated, integer 11-bit-like bands (DN), as real imagery is."""
    rng = np.random.default_rng(seed)
    base = mtf_filter(rng.normal(0, 400, (size, size)), 0.3, 2)
    stack = [600 + 150 * b + (1.0 + 0.2 * b) * base + rng.normal(0, 20, (size, size)) for b in range(bands)]
    return np.round(np.clip(stack, 1, 2047))


# ----------------------------------------------------------- identity / ideal
def test_identity_gives_ideal_reduced_indices():
    reference = synthetic_dn(bands=8)
    values = reduced_indices(reference, reference, 4)
    assert set(values) == {"SAM", "ERGAS", "Q2n", "SCC"}
    for name, value in values.items():
        assert value == pytest.approx(IDEAL[name], abs=1e-9), name


def test_replicated_ms_has_zero_d_lambda():
    # Pixel replication keeps every block statistic of the MS: the Q of each band
    # pair on a 32 x 32 PAN-grid block equals that on the 8 x 8 MS block below it.
    ms = synthetic_dn(bands=4, size=64)
    fused = np.repeat(np.repeat(ms, 4, axis=1), 4, axis=2)
    assert d_lambda(fused, ms) == pytest.approx(0.0, abs=1e-12)


def test_ideal_values_of_all_indices():
    assert IDEAL == {
        "SAM": 0.0, "ERGAS": 0.0, "Q2n": 1.0, "SCC": 1.0, "D_lambda": 0.0,
        "D_s": 0.0, "QNR": 1.0, "D_lambda_K": 0.0, "HQNR": 1.0,
    }
    assert qnr(0.0, 0.0) == 1.0
    assert qnr(0.1, 0.2) == pytest.approx(0.9 * 0.8)
    assert qnr(0.1, 0.2, alpha=2, beta=0) == pytest.approx(0.81)


# ----------------------------------------------------------- hand-computable
def test_sam_of_two_known_spectra():
    reference = np.array([[[1.0, 1.0]], [[0.0, 1.0]]])  # pixels (1, 0) and (1, 1)
    fused = np.array([[[0.0, 2.0]], [[1.0, 2.0]]])  # pixels (0, 1) and (2, 2)
    assert sam(fused, reference) == pytest.approx(45.0)  # (90 + 0) / 2
    # a zero pixel is left out of the mean, as the toolbox does
    reference3 = np.concatenate([reference, [[[0.0, 0.0]], [[0.0, 0.0]]]], axis=2)
    fused3 = np.concatenate([fused, [[[3.0, 0.0]], [[0.0, 0.0]]]], axis=2)
    assert sam(fused3, reference3) == pytest.approx(45.0)


def test_sam_ignores_a_scale_factor():
    reference = synthetic_dn()
    assert sam(1.7 * reference, reference) == pytest.approx(0.0, abs=1e-5)
    assert ergas(1.7 * reference, reference, 4) > 10


def test_ergas_of_a_constant_offset():
    reference = synthetic_dn()
    offset = 25.0
    means = reference.mean(axis=(1, 2))
    expected = 100 / 4 * np.sqrt(np.mean(offset**2 / means**2))
    assert ergas(reference + offset, reference, 4) == pytest.approx(expected, rel=1e-12)
    assert ergas(reference + offset, reference, 2) == pytest.approx(2 * expected, rel=1e-12)


@pytest.mark.parametrize("bands", [3, 4, 8])
def test_q2n_of_a_constant_shift_is_the_mean_bias_term(bands):
    # Q2n normalises both images per block with the reference's mean mu and std s:
    # the reference becomes mean 1 in each band, the shifted image mean 1 + c/s.
    # Their covariance structure is identical, so only the mean-bias factor
    # 2|m1||m2| / (|m1|^2 + |m2|^2) is left; zero-padded bands (3 -> 4) have mean 1
    # in both.
    reference = synthetic_dn(bands=bands, size=64)
    c = 40.0
    padded = 1 << int(np.ceil(np.log2(bands)))
    expected = []
    for by in range(2):
        for bx in range(2):
            block = reference[:, 32 * by : 32 * by + 32, 32 * bx : 32 * bx + 32]
            s = block.std(axis=(1, 2), ddof=1)
            m1 = np.ones(padded)
            m2 = np.concatenate([1 + c / s, np.ones(padded - bands)])
            expected.append(2 * np.linalg.norm(m1) * np.linalg.norm(m2) / (m1 @ m1 + m2 @ m2))
    value = q2n(reference + c, reference)
    assert value == pytest.approx(np.mean(expected), abs=1e-9)
    assert value < 0.99


def test_q2_equals_the_complex_number_formula():
    # With 2 bands Q2n is the complex-valued Q: pixels z = x1 + i x2 after the
    # per-block normalisation, covariance E[z_r conj(z_f)] - m_r conj(m_f).
    rng = np.random.default_rng(3)
    reference = np.round(rng.uniform(200, 1800, (2, 32, 32)))
    fused = np.round(0.6 * reference + 0.4 * rng.uniform(200, 1800, (2, 32, 32)))
    mu = reference.mean(axis=(1, 2), keepdims=True)
    s = reference.std(axis=(1, 2), ddof=1, keepdims=True)
    zr = (reference - mu) / s + 1
    zf = (fused - mu) / s + 1
    zr, zf = (zr[0] + 1j * zr[1]).ravel(), (zf[0] + 1j * zf[1]).ravel()
    mr, mf = zr.mean(), zf.mean()
    cov = np.mean(zr * np.conj(zf)) - mr * np.conj(mf)
    var_r = np.mean(np.abs(zr - mr) ** 2)
    var_f = np.mean(np.abs(zf - mf) ** 2)
    expected = abs(cov) * 2 / (var_r + var_f) * 2 * abs(mr) * abs(mf) / (abs(mr) ** 2 + abs(mf) ** 2)
    assert q2n(fused, reference) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n", [4, 8])
def test_hypercomplex_product_follows_the_toolbox(n):
    # The toolbox's recursion (a, b)(c, d) = (ac - conj(d) b, conj(a) conj(d) + c conj(b))
    # is normed, |x y| = |x| |y| (a sign slip in the recursion breaks this), and
    # z conj(z) = |z|^2 is real, which Q2n's variance terms rely on.
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, 50)), rng.normal(size=(n, 50))
    product = quality._hyper_mult(x, y)
    np.testing.assert_allclose(
        np.linalg.norm(product, axis=0), np.linalg.norm(x, axis=0) * np.linalg.norm(y, axis=0), rtol=1e-12
    )
    square = quality._hyper_mult(x, quality._conj(x))
    np.testing.assert_allclose(square[0], (x**2).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(square[1:], 0, atol=1e-12)


def test_hypercomplex_product_quirk_of_the_toolbox():
    # Unlike textbook quaternions, the toolbox's product conjugates the second half
    # of y when x = 1: 1 * (c0, c1, d0, d1) = (c0, c1, d0, -d1). We keep it so the
    # Q4/Q8 values match the toolbox's.
    one = np.array([1.0, 0, 0, 0])
    y = np.array([2.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(quality._hyper_mult(one, y), [2, 3, 5, -7])


def test_permuting_bands_lowers_q2n_and_raises_sam():
    reference = synthetic_dn(bands=4)
    permuted = reference[[1, 0, 3, 2]]
    assert q2n(permuted, reference) < q2n(reference, reference) - 0.05
    assert sam(permuted, reference) > sam(reference, reference) + 1.0


def test_q2n_of_reflectance_is_that_of_the_digital_numbers():
    """The toolbox's uint16 cast would round [0, 1] data to two levels; Q2n brings data that
    are not whole numbers to a 16-bit range first, and leaves digital numbers as they are."""
    reference = synthetic_dn(bands=4)
    fused = upsample(reference[:, ::4, ::4]) + np.random.default_rng(1).normal(0, 15, reference.shape)
    dn = q2n(fused, reference)
    assert 0.3 < dn < 0.99
    assert q2n(fused / 2047, reference / 2047) == pytest.approx(dn, abs=2e-3)
    assert q2n(fused * 0.01, reference * 0.01) == pytest.approx(dn, abs=2e-3)  # hundredths of DN
    assert q2n(np.round(fused), reference) == q2n(np.round(fused), reference + 0.0)  # whole numbers: as cast


def test_q_index_of_a_scaled_band():
    # Q(a, k a) = 4 k^2 / (1 + k^2)^2 in every window: 0.64 for k = 2.
    a = synthetic_dn(bands=1)[0]
    assert q_index(a, a) == pytest.approx(1.0)
    assert q_index(a, 2 * a) == pytest.approx(0.64)
    assert q_index(a, 2 * a, sliding=True) == pytest.approx(0.64)
    assert q_index(a, a + 100) < 1.0


def test_scc_uses_sobel_gradients():
    reference = synthetic_dn(bands=2)
    # a gain leaves the normalised gradients, hence SCC, unchanged
    assert scc(1.7 * reference, reference) == pytest.approx(1.0)
    # an offset changes only the frame where the zero-padded Sobel sees the edge
    assert 0.9 < scc(reference + 300, reference) < 1.0
    # blurring weakens and reshapes the gradients: SCC falls as the blur grows
    mild, strong = mtf_filter(reference, 0.4, 4), mtf_filter(reference, 0.1, 4)
    assert 0.2 < scc(strong, reference) < scc(mild, reference) < 0.99


# ----------------------------------------------------------- input checks
def test_bad_inputs_are_reported():
    a = synthetic_dn(bands=4, size=64)
    with pytest.raises(PansharpenError, match="same shape"):
        sam(a, a[:3])
    with pytest.raises(PansharpenError, match="bands, rows, columns"):
        ergas(a[0], a[0], 4)
    with pytest.raises(PansharpenError, match="smaller than one Q2n block"):
        q2n(a[:, :16, :16], a[:, :16, :16])
    with pytest.raises(PansharpenError, match="smaller than one Q window"):
        q_index(a[0, :8, :8], a[0, :8, :8])
    with pytest.raises(PansharpenError, match="3 bands but the MS has 4"):
        d_lambda(np.zeros((3, 256, 256)), a)
    with pytest.raises(PansharpenError, match="not 4 times"):
        d_s(np.ones((4, 128, 128)), np.ones((128, 128)), a, 4)
    with pytest.raises(PansharpenError, match="PAN"):
        full_indices(np.ones((4, 256, 256)), np.ones((250, 250)), a, 4)
    with pytest.raises(PansharpenError, match="NaN"):
        sam(a * np.nan, a)


# ----------------------------------------------------------- real imagery
def test_plain_upsampling_on_worldview2_is_plausible(worldview2):
    pan, ms = worldview2
    _, ms_lr = wald_degrade(pan, ms, 4, "WV2")
    values = reduced_indices(upsample(ms_lr), ms, 4)
    assert all(np.isfinite(v) for v in values.values())
    assert 0.5 < values["Q2n"] < 0.99
    assert 1.0 < values["SAM"] < 15.0
    assert 0.5 < values["ERGAS"] < 20.0
    assert 0.0 < values["SCC"] < 0.99
    ideal = reduced_indices(ms, ms, 4)
    assert values["SAM"] > ideal["SAM"] and values["ERGAS"] > ideal["ERGAS"]
    assert values["Q2n"] < ideal["Q2n"] and values["SCC"] < ideal["SCC"]


def inject_detail(pan, lms, gain, sensor):
    """Additive PAN detail (PAN minus its MTF low-pass), scaled to each band's spread."""
    _, pan_gnyq = sensor_gains(sensor, lms.shape[0])
    detail = pan - mtf_filter(pan, pan_gnyq, 4)
    return lms + gain * detail[None] * lms.std(axis=(1, 2), keepdims=True) / pan.std()


@pytest.mark.parametrize("fixture, sensor", [("ikonos", "IKONOS"), ("worldview2", "WV2")])
def test_detail_injection_lowers_d_s_on_real_pairs(fixture, sensor, request):
    pan, ms = request.getfixturevalue(fixture)
    pan, ms = pan[384:896, 384:896], ms[:, 96:224, 96:224]
    lms = upsample(ms)
    plain = full_indices(lms, pan, ms, 4, sensor)
    fused = full_indices(inject_detail(pan, lms, 0.3, sensor), pan, ms, 4, sensor)
    overdone = full_indices(inject_detail(pan, lms, 1.5, sensor), pan, ms, 4, sensor)
    for values in (plain, fused, overdone):
        assert set(values) == {"D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR"}
        assert all(0.0 <= v <= 1.0 for v in values.values()), values
        assert values["QNR"] == pytest.approx((1 - values["D_lambda"]) * (1 - values["D_s"]))
        assert values["HQNR"] == pytest.approx((1 - values["D_lambda_K"]) * (1 - values["D_s"]))
    # D_s measures whether the fused bands relate to PAN as the MS relates to the
    # degraded PAN: missing detail (plain upsampling) and too much detail both raise it.
    assert fused["D_s"] < plain["D_s"]
    assert fused["D_s"] < overdone["D_s"]
    # injected PAN detail perturbs the inter-band relations: D_lambda grows with it
    assert plain["D_lambda"] < fused["D_lambda"] < overdone["D_lambda"]


def test_public_full_resolution_functions_agree_with_full_indices(ikonos):
    pan, ms = ikonos
    pan, ms = pan[:256, :256], ms[:, :64, :64]
    fused = inject_detail(pan, upsample(ms), 0.3, "IKONOS")
    values = full_indices(fused, pan, ms, 4, "IKONOS", border=0)
    assert values["D_lambda"] == pytest.approx(d_lambda(fused, ms))
    assert values["D_s"] == pytest.approx(d_s(fused, pan, ms, 4, sensor="IKONOS"))
    assert values["D_lambda_K"] == pytest.approx(d_lambda_khan(fused, ms, 4, "IKONOS"))
    assert values["HQNR"] == pytest.approx(hqnr(fused, pan, ms, 4, "IKONOS"))
    # the default border (21 -> 24 PAN / 6 MS pixels) changes the values, not the ranges
    cut = full_indices(fused, pan, ms, 4, "IKONOS")
    assert cut["D_s"] != values["D_s"] and 0 <= cut["D_s"] <= 1

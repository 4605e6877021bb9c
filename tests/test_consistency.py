"""The spectral-consistency projection (engine/consistency.py) on real imagery."""
import numpy as np
import pytest

from diffusion_pansharpening.engine import consistency, quality
from diffusion_pansharpening.engine.evaluate import Pair, load_pair, sharpen_arrays
from diffusion_pansharpening.engine.families import DEFAULT_WEIGHTS_DIR
from diffusion_pansharpening.engine.streaming import ArraySource, run_tiled
from diffusion_pansharpening.engine.upsample import upsample


@pytest.fixture(scope="module")
def landsat(sample_paths):
    return load_pair(*sample_paths)


def test_projection_restores_band_means_and_the_ms(landsat):
    """A colour-shifted image (gain and offset per band) comes back to the MS's band
    means, and degraded again it is much closer to the MS."""
    r, gains = landsat.ratio, consistency.gains_for("LANDSAT8", 4)
    lms = upsample(landsat.ms, r)
    shifted = lms * np.array([0.8, 0.9, 1.1, 1.2], np.float32)[:, None, None] + 50
    out = consistency.project(shifted, landsat.ms, r, gains)
    err = lambda f: np.abs(f.mean(axis=(1, 2)) / landsat.ms.mean(axis=(1, 2)) - 1).max()
    assert err(shifted) > 0.05 and err(out) < 0.002
    mismatch = lambda f: np.abs(consistency.degrade(f, gains, r) - landsat.ms).mean()
    assert mismatch(out) < 0.2 * mismatch(shifted)


def test_the_ratio_projection_scales_dark_pixels_instead_of_shifting_them(landsat):
    """``project_ratio`` (the anchored mix's projection) brings a colour-shifted image as
    close to the MS as the additive steps do, keeps every value above the data's zero
    where the additive steps push dark pixels through it, and commutes with a gain and
    that zero's offset (the engine runs it on scene-normalised tiles)."""
    r, gains = landsat.ratio, consistency.gains_for("LANDSAT8", 4)
    ms = landsat.ms.astype(np.float32)
    lms = upsample(ms, r)
    colours = np.array([0.8, 0.9, 1.1, 1.2], np.float32)[:, None, None]
    mismatch = lambda f: np.abs(consistency.degrade(f, gains, r) - ms).mean()
    shifted = lms * colours + 50
    ratio = consistency.project_ratio(shifted, ms, r, gains)
    assert mismatch(ratio) < 0.05 * mismatch(shifted)
    assert mismatch(ratio) < 1.1 * mismatch(consistency.project(shifted, ms, r, gains))
    dark = shifted * np.where(np.arange(lms.shape[1]) % 7 == 0, 0.05, 1.0)[None, :, None]  # dark rows
    assert (consistency.project(dark, ms, r, gains) < 0).any()
    assert (consistency.project_ratio(dark, ms, r, gains) >= 0).all()
    gain, offset = np.float32(0.5), np.array([10, 20, 30, 40], np.float32)[:, None, None]
    moved = consistency.project_ratio(gain * shifted + offset, gain * ms + offset, r, gains, zero=offset)
    np.testing.assert_allclose(moved, gain * ratio + offset, rtol=1e-4, atol=1e-3 * float(ms.std()))
    negative = ms - 2 * ms.mean()  # an MS with values below zero: the additive steps
    np.testing.assert_array_equal(consistency.project_ratio(shifted, negative, r, gains),
                                  consistency.project(shifted, negative, r, gains))


def test_tiled_projection_equals_the_whole_image(landsat):
    """The projection's extra halo keeps tiling exact: small tiles give the image that
    one tile over the whole scene gives."""
    from diffusion_pansharpening.engine.methods import prepare

    method = prepare("e2e", ratio=2, bands=4, sensor="LANDSAT8", device="cpu", half=False, anchor=0.0,
                     weights=str(DEFAULT_WEIGHTS_DIR / "landsat8-e2e.safetensors"))
    assert method.halo == method.method.halo + consistency.extra_halo(2)
    pan, ms = landsat.pan[:256, :256], landsat.ms[:, :128, :128]
    outs = []
    for tile in (96, 256):
        out = np.zeros((4, 256, 256), np.float32)

        def sink(y0, x0, values, valid, out=out):
            out[:, y0:y0 + values.shape[1], x0:x0 + values.shape[2]] = values

        run_tiled(ArraySource(pan, ms, 2, landsat.scale), method, 256, 256, sink, tile=tile, overlap=16)
        outs.append(out)
    assert np.abs(outs[0] - outs[1]).max() < 0.05 * landsat.ms.std()


def test_projection_improves_a_model_that_shifts_the_colours(tmp_path):
    """An untrained e2e (random weights: it shifts every band) on the GRIP WorldView-2
    scene's blue, green, red and NIR1 at reduced resolution: the projection brings the
    band means back to the reference's and raises Q2n."""
    import torch

    from diffusion_pansharpening.engine.models import build, build_metadata, save_weights
    from diffusion_pansharpening.engine.mtf import wald_degrade
    from diffusion_pansharpening.training.recipes import scenes

    torch.manual_seed(0)
    net = build("e2e", "tiny", bands=4)
    meta = build_metadata("e2e", net.config, sensor="WV2", bands=["blue", "green", "red", "NIR"], ratio=4,
                          scale=2047, training_data="none", licence="test")
    meta["normalisation"] = "scene-joint-p1-p99"
    weights = str(tmp_path / "random-e2e.safetensors")
    save_weights(weights, net, meta)
    part = scenes.load("wv2", "vhr4")[0]
    ms, pan = part.ms[:, :160, :160].astype(np.float32), part.pan[:640, :640].astype(np.float32)
    pan_lr, ms_lr = wald_degrade(pan, ms, 4, part.sensor)
    reduced = Pair(pan_lr.astype(np.float32), ms_lr.astype(np.float32), 4, part.scale, part.sensor)
    raw = sharpen_arrays(reduced, "e2e", weights=weights, device="cpu", consistent=False)
    projected = sharpen_arrays(reduced, "e2e", weights=weights, device="cpu")
    before, after = quality.reduced_indices(raw, ms, 4), quality.reduced_indices(projected, ms, 4)
    assert after["Q2n"] > before["Q2n"] + 0.01 and after["ERGAS"] < before["ERGAS"]
    mean_error = lambda f: np.abs(f.mean(axis=(1, 2)) / ms.mean(axis=(1, 2)) - 1).max()
    assert mean_error(projected) < min(0.01, mean_error(raw))

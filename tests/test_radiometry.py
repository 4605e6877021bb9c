"""Scene normalisation: a deep model gives the same image whatever the radiometric
encoding of the scene (11-bit DN, reflectance x 10000 with per-band gains and offsets,
a per-band stretched 8-bit product), while the constant scale does not."""
import json

import numpy as np
import pytest
import torch
from osgeo import gdal

from diffusion_pansharpening.engine import quality
from diffusion_pansharpening.engine.radiometry import NAME, SceneNormalisation
from diffusion_pansharpening.engine.raster_io import RasterPair

from conftest import read_raster, write_geotiff

torch.set_num_threads(1)
GAINS = np.array([4.1, 3.7, 3.3, 2.9])  # reflectance-like x 10000 from 11-bit DN
OFFSETS = np.array([120.0, -50.0, 30.0, 200.0])
PAN_GAIN, PAN_OFFSET = 3.5, 80.0


@pytest.fixture(scope="module")
def crop(ikonos):
    pan, ms = ikonos
    return pan[512:768, 512:768], ms[:, 128:192, 128:192]



def stretch_8bit(x, lo, hi):
    return np.clip(np.round((x - lo) / (hi - lo) * 255.0), 0, 255)


def encodings(crop, folder):
    """(pan path, ms path, back_to_dn(output)) for each stored version of the crop."""
    pan, ms = crop
    g, o = GAINS[:, None, None], OFFSETS[:, None, None]
    ms_lo = np.percentile(ms, 0.5, axis=(1, 2))[:, None, None]
    ms_hi = np.percentile(ms, 99.5, axis=(1, 2))[:, None, None]
    p_lo, p_hi = np.percentile(pan, [0.5, 99.5])
    folder.mkdir(exist_ok=True)
    return {
        "dn11": (write_geotiff(folder / "dn_pan.tif", pan, 1, gdal.GDT_UInt16, nbits=11),
                 write_geotiff(folder / "dn_ms.tif", ms, 4, gdal.GDT_UInt16, nbits=11), lambda y: y),
        "reflectance": (write_geotiff(folder / "r_pan.tif", np.round(pan * PAN_GAIN + PAN_OFFSET), 1, gdal.GDT_UInt16),
                        write_geotiff(folder / "r_ms.tif", np.round(ms * g + o), 4, gdal.GDT_UInt16),
                        lambda y: (y - o) / g),
        "byte": (write_geotiff(folder / "b_pan.tif", stretch_8bit(pan, p_lo, p_hi), 1, gdal.GDT_Byte),
                 write_geotiff(folder / "b_ms.tif", stretch_8bit(ms, ms_lo, ms_hi), 4, gdal.GDT_Byte),
                 lambda y: y / 255.0 * (ms_hi - ms_lo) + ms_lo),
    }


def tiny_weights(path, normalisation):
    """A tiny E2E net with fixed seed: the invariance is a property of the
    normalisation, not of training."""
    from diffusion_pansharpening.engine.models import build, build_metadata, save_weights

    torch.manual_seed(0)
    net = build("e2e", "tiny", bands=4)
    meta = build_metadata("e2e", net.config, sensor="IKONOS", bands=["blue", "green", "red", "NIR"],
                          ratio=4, scale=2047, training_data="none (fixed seed)", licence="test",
                          quality={})
    if normalisation:
        meta["normalisation"] = normalisation
    save_weights(str(path), net, meta)
    return str(path)


def sharpen_all(crop, tmp_path, weights):
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    out = {}
    for name, (pan, ms, back) in encodings(crop, tmp_path / "in").items():
        target = str(tmp_path / f"{name}-{weights.split('/')[-1]}.tif")
        sharpen(SharpenRequest(pan, ms, target, method="e2e", weights=weights, device="cpu",
                               tile=128, overlap=16, float32=True))
        out[name] = back(read_raster(target).astype(np.float64))
    return out


def test_scene_normalisation_makes_the_output_independent_of_the_encoding(crop, tmp_path):
    out = sharpen_all(crop, tmp_path, tiny_weights(tmp_path / "scene.safetensors", NAME))
    reference = out["dn11"]
    # 11-bit DN and reflectance differ by per-band gain/offset (and integer rounding)
    assert quality.q2n(out["reflectance"], reference) > 0.999
    assert np.abs(out["reflectance"] - reference).mean() < 1.0  # DN
    # 8-bit: 256 levels over the 0.5-99.5 % range, clipped outside it
    assert quality.q2n(out["byte"], reference) > 0.98
    assert quality.sam(out["byte"], reference) < 1.0  # degrees


def test_constant_scale_does_not(crop, tmp_path):
    out = sharpen_all(crop, tmp_path, tiny_weights(tmp_path / "constant.safetensors", None))
    assert quality.q2n(out["reflectance"], out["dn11"]) < 0.9
    assert quality.q2n(out["byte"], out["dn11"]) < 0.9


def test_statistics_from_a_raster_pair_equal_those_of_its_arrays(crop, tmp_path):
    pan, ms, _ = encodings(crop, tmp_path)["reflectance"]
    from_files = SceneNormalisation.from_source(RasterPair(pan, ms))
    from_arrays = SceneNormalisation.from_arrays(read_raster(pan)[0], read_raster(ms))
    np.testing.assert_allclose(from_files.ms_offset, from_arrays.ms_offset)
    np.testing.assert_allclose(from_files.ms_span, from_arrays.ms_span)
    assert from_files.pan_offset == pytest.approx(from_arrays.pan_offset)
    # the 1st/99th percentiles of an affine copy are the affine copy of the percentiles
    dn = SceneNormalisation.from_arrays(*crop)
    np.testing.assert_allclose(from_files.ms_span, dn.ms_span * GAINS, rtol=2e-3)
    np.testing.assert_allclose(from_files.ms_offset, dn.ms_offset * GAINS + OFFSETS, rtol=2e-3, atol=2)


def test_nodata_is_left_out_of_the_statistics():
    rng = np.random.default_rng(0)
    ms = rng.uniform(100, 200, (2, 40, 40))
    pan = rng.uniform(100, 200, (160, 160))
    ms[:, :10] = 0
    pan[:40] = 0
    with_nodata = SceneNormalisation.from_arrays(pan, ms, nodata=0)
    clean = SceneNormalisation.from_arrays(pan[40:], ms[:, 10:])
    np.testing.assert_allclose(with_nodata.ms_offset, clean.ms_offset)
    assert with_nodata.pan_offset == pytest.approx(clean.pan_offset)
    x = rng.uniform(0, 300, (2, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(with_nodata.denormalise_ms(with_nodata.normalise_ms(x)), x, rtol=1e-5)


def test_training_patches_are_the_same_for_every_encoding(crop):
    """[data] normalisation = "scene": patches of the DN and of the reflectance scene
    agree, and validation maps predictions back to each scene's own units."""
    from diffusion_pansharpening.training.datasets import ScenePair, region_split
    from diffusion_pansharpening.training.trainer import validate

    pan, ms = crop
    dn = ScenePair(pan, ms, 4, 2047.0, "IKONOS", "dn")
    refl = ScenePair(pan * PAN_GAIN + PAN_OFFSET, ms * GAINS[:, None, None] + OFFSETS[:, None, None],
                     4, 65535.0, "IKONOS", "reflectance")
    (t_dn, v_dn), (t_r, v_r) = (region_split(s, 0.25, 32, 16, "scene") for s in (dn, refl))
    for name in ("gt", "lms", "ms", "pan"):
        torch.testing.assert_close(getattr(t_r, name), getattr(t_dn, name), atol=2e-4, rtol=1e-4)
    assert float(t_dn.gt.mean()) == pytest.approx(0.5, abs=0.25)  # p1..p99 -> about 0..1
    constant = region_split(dn, 0.25, 32, 16)[1]
    lms = lambda b: b["lms"]
    scores = validate(lms, v_dn, 8, torch.device("cpu"))
    expected = validate(lms, constant, 8, torch.device("cpu"))
    for key in ("SAM", "ERGAS", "Q2n"):
        assert scores[key] == pytest.approx(expected[key], rel=1e-3, abs=1e-3)


@pytest.mark.parametrize("option, recorded", [("scene", NAME), (None, None)])
def test_training_config_option_records_the_normalisation(tmp_path, option, recorded, shared_data):
    """``[data] normalisation = "scene"`` trains on scene-normalised patches and says so
    in the weights; without it the weights are as before (constant scale)."""
    from diffusion_pansharpening.engine.families import read_metadata
    from diffusion_pansharpening.training.cli import main as train_main
    from diffusion_pansharpening.training.config import CONFIG_DIR

    text = (CONFIG_DIR / "tiny.toml").read_text()
    data = (f'[data]\npaths = ["{shared_data / "grip" / "imgIK.mat"}"]\nval_fraction = 0.2\n'
            'patch = 64\nstride = 32\ncrop = 160\n'
            + (f'normalisation = "{option}"\n' if option else ""))
    text = text[:text.index("[data]")] + data + text[text.index("[stage]"):]
    config = tmp_path / "config.toml"
    config.write_text(text)
    out = tmp_path / "run"
    assert train_main(["fose", "--stage", "3", "--config", str(config), "--out", str(out),
                       "--no-progress"]) == 0
    meta = read_metadata(out / "e2e.safetensors")
    assert meta.get("normalisation") == recorded
    q2n = json.loads(meta["quality"])["Q2n"]
    assert 0.3 < q2n <= 1.0  # validation mapped back to DN, not clipped to nonsense


def test_statistics_are_the_scenes_not_the_extents(crop, tmp_path):
    """Sharpening a map extent gives the values of the whole-scene run there: the
    statistics come from the whole scene, and tiles share them (no seams)."""
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    pan, ms, _ = encodings(crop, tmp_path / "in")["reflectance"]
    weights = tiny_weights(tmp_path / "scene.safetensors", NAME)
    run = lambda name, extent: read_raster(sharpen(SharpenRequest(
        pan, ms, str(tmp_path / name), method="e2e", weights=weights, device="cpu",
        tile=64, overlap=16, float32=True, extent=extent)).output)
    whole = run("whole.tif", None)
    # PAN pixels 64..192 in x, 32..160 in y (geotransform origin 500000, 4000000; 1 m)
    part = run("part.tif", (500064.0, 4000000.0 - 160, 500192.0, 4000000.0 - 32))
    inner = np.s_[:, 16:-16, 16:-16]
    np.testing.assert_allclose(part[inner], whole[:, 32:160, 64:192][inner], atol=0.05)

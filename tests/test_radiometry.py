"""Scene normalisation: a deep model gives the same image whatever the radiometric
encoding of the scene. The joint kind (the default) is invariant to any gain and offset
applied to all bands alike (11-bit DN, reflectance x 10000, an 8-bit product made with
one stretch); the per-band kind of older weights also to per-band gains and stretches;
the constant scale to neither."""
import json

import numpy as np
import pytest
import torch
from osgeo import gdal

from diffusion_pansharpening.engine import quality
from diffusion_pansharpening.engine.anchor import ANCHOR
from diffusion_pansharpening.engine.radiometry import NAME, RECORDED, SceneNormalisation
from diffusion_pansharpening.engine.raster_io import RasterPair

from conftest import ROOT, read_raster, write_geotiff

torch.set_num_threads(1)
GAINS = np.array([4.1, 3.7, 3.3, 2.9])  # per band: DN to reflectance-like x 10000
OFFSETS = np.array([120.0, -50.0, 30.0, 200.0])
GAIN, OFFSET = 3.5, 80.0  # one for all bands and the PAN (e.g. reflectance x 10000)


@pytest.fixture(scope="module")
def crop(ikonos):
    pan, ms = ikonos
    return pan[512:768, 512:768], ms[:, 128:192, 128:192]


def stretch_8bit(x, lo, hi):
    return np.clip(np.round((x - lo) / (hi - lo) * 255.0), 0, 255)


def encodings(crop, folder, per_band=False):
    """(pan path, ms path, back_to_dn(output)) for each stored version of the crop:
    one gain/offset and one 8-bit stretch for all bands, or (``per_band``) per band."""
    pan, ms = crop
    if per_band:
        g, o, p_g, p_o = GAINS[:, None, None], OFFSETS[:, None, None], GAIN, OFFSET
        ms_lo = np.percentile(ms, 0.5, axis=(1, 2))[:, None, None]
        ms_hi = np.percentile(ms, 99.5, axis=(1, 2))[:, None, None]
        p_lo, p_hi = np.percentile(pan, [0.5, 99.5])
    else:
        g, o, p_g, p_o = GAIN, OFFSET, GAIN, OFFSET
        ms_lo, ms_hi = np.percentile(np.concatenate([ms.ravel(), pan.ravel()]), [0.5, 99.5])
        p_lo, p_hi = ms_lo, ms_hi
    folder.mkdir(exist_ok=True)
    return {
        "dn11": (write_geotiff(folder / "dn_pan.tif", pan, 1, gdal.GDT_UInt16, nbits=11),
                 write_geotiff(folder / "dn_ms.tif", ms, 4, gdal.GDT_UInt16, nbits=11), lambda y: y),
        "reflectance": (write_geotiff(folder / "r_pan.tif", np.round(pan * p_g + p_o), 1, gdal.GDT_UInt16),
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


def sharpen_all(crop, tmp_path, weights, per_band=False):
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    out = {}
    for name, (pan, ms, back) in encodings(crop, tmp_path / "in", per_band).items():
        target = str(tmp_path / f"{name}-{weights.split('/')[-1]}.tif")
        sharpen(SharpenRequest(pan, ms, target, method="e2e", weights=weights, device="cpu",
                               tile=128, overlap=16, float32=True, check=False, consistent=False,
                               anchor=0.0))
        out[name] = back(read_raster(target).astype(np.float64))
    return out


@pytest.mark.parametrize("kind, per_band", [("scene", False), ("scene-band", True)])
def test_scene_normalisation_makes_the_output_independent_of_the_encoding(crop, tmp_path, kind, per_band):
    weights = tiny_weights(tmp_path / f"{kind}.safetensors", RECORDED[kind])
    out = sharpen_all(crop, tmp_path, weights, per_band)
    reference = out["dn11"]
    # 11-bit DN and reflectance differ by a gain/offset (and integer rounding)
    assert quality.q2n(out["reflectance"], reference) > 0.999
    assert np.abs(out["reflectance"] - reference).mean() < 1.0  # DN
    # 8-bit: 256 levels over the 0.5-99.5 % range, clipped outside it
    assert quality.q2n(out["byte"], reference) > 0.98
    assert quality.sam(out["byte"], reference) < 1.0  # degrees


def test_constant_scale_does_not(crop, tmp_path):
    out = sharpen_all(crop, tmp_path, tiny_weights(tmp_path / "constant.safetensors", None))
    assert quality.q2n(out["reflectance"], out["dn11"]) < 0.9
    assert quality.q2n(out["byte"], out["dn11"]) < 0.9


def test_joint_statistics_are_one_mapping_for_all_bands_and_the_pan(crop):
    joint = SceneNormalisation.from_arrays(*crop)
    pan, ms = crop
    lo, hi = np.percentile(ms, [1, 99])
    np.testing.assert_allclose(joint.ms_offset, lo, rtol=1e-6)
    np.testing.assert_allclose(joint.ms_span, hi - lo, rtol=1e-6)
    assert (joint.pan_offset, joint.pan_span) == pytest.approx((lo, hi - lo))
    # band ratios survive: normalised bands differ from the DN ones by one affine map
    x = joint.normalise_ms(ms.astype(np.float32))
    np.testing.assert_allclose(x * (hi - lo) + lo, ms, rtol=1e-4)


@pytest.mark.parametrize("kind, per_band", [("scene", False), ("scene-band", True)])
def test_statistics_from_a_raster_pair_equal_those_of_its_arrays(crop, tmp_path, kind, per_band):
    pan, ms, _ = encodings(crop, tmp_path, per_band)["reflectance"]
    from_files = SceneNormalisation.from_source(RasterPair(pan, ms), kind=kind)
    from_arrays = SceneNormalisation.from_arrays(read_raster(pan)[0], read_raster(ms), kind=kind)
    np.testing.assert_allclose(from_files.ms_offset, from_arrays.ms_offset)
    np.testing.assert_allclose(from_files.ms_span, from_arrays.ms_span)
    assert from_files.pan_offset == pytest.approx(from_arrays.pan_offset)
    # the 1st/99th percentiles of an affine copy are the affine copy of the percentiles
    dn = SceneNormalisation.from_arrays(*crop, kind=kind)
    g, o = (GAINS, OFFSETS) if per_band else (GAIN, OFFSET)
    np.testing.assert_allclose(from_files.ms_span, dn.ms_span * g, rtol=2e-3)
    np.testing.assert_allclose(from_files.ms_offset, dn.ms_offset * g + o, rtol=2e-3, atol=2)


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


@pytest.mark.parametrize("kind, per_band", [("scene", False), ("scene-band", True)])
def test_training_patches_are_the_same_for_every_encoding(crop, kind, per_band):
    """[data] normalisation = "scene": patches of the DN and of the reflectance scene
    agree, and validation maps predictions back to each scene's own units."""
    from diffusion_pansharpening.training.datasets import ScenePair, region_split
    from diffusion_pansharpening.training.trainer import validate

    pan, ms = crop
    dn = ScenePair(pan, ms, 4, 2047.0, "IKONOS", "dn")
    g, o = (GAINS[:, None, None], OFFSETS[:, None, None]) if per_band else (GAIN, OFFSET)
    refl = ScenePair(pan * GAIN + OFFSET, ms * g + o, 4, 65535.0, "IKONOS", "reflectance")
    (t_dn, v_dn), (t_r, v_r) = (region_split(s, 0.25, 32, 16, kind) for s in (dn, refl))
    for name in ("gt", "lms", "ms", "pan"):
        torch.testing.assert_close(getattr(t_r, name), getattr(t_dn, name), atol=2e-4, rtol=1e-4)
    assert float(t_dn.gt.mean()) == pytest.approx(0.5, abs=0.25)  # p1..p99 -> about 0..1
    constant = region_split(dn, 0.25, 32, 16)[1]
    lms = lambda b: b["lms"]
    scores = validate(lms, v_dn, 8, torch.device("cpu"))
    expected = validate(lms, constant, 8, torch.device("cpu"))
    for key in ("SAM", "ERGAS", "Q2n"):
        assert scores[key] == pytest.approx(expected[key], rel=1e-3, abs=1e-3)


@pytest.mark.training  # trains a few steps
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
    """Sharpening a map extent gives the network's values of the whole-scene run there:
    the statistics come from the whole scene, and tiles share them (no seams). (The
    classical anchor's statistics are tile-local, as every classical method's.)"""
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    pan, ms, _ = encodings(crop, tmp_path / "in")["reflectance"]
    weights = tiny_weights(tmp_path / "scene.safetensors", NAME)
    run = lambda name, extent: read_raster(sharpen(SharpenRequest(
        pan, ms, str(tmp_path / name), method="e2e", weights=weights, device="cpu",
        tile=64, overlap=16, float32=True, extent=extent, anchor=0.0)).output)
    whole = run("whole.tif", None)
    # PAN pixels 64..192 in x, 32..160 in y (geotransform origin 500000, 4000000; 1 m)
    part = run("part.tif", (500064.0, 4000000.0 - 160, 500192.0, 4000000.0 - 32))
    inner = np.s_[:, 16:-16, 16:-16]
    np.testing.assert_allclose(part[inner], whole[:, 32:160, 64:192][inner], atol=0.05)


LANDSAT_FOSE = ROOT / "resources" / "weights" / "landsat8-fose.safetensors"


@pytest.mark.slow  # a few seconds: out of make test-fast
def test_the_shipped_model_keeps_its_quality_in_every_encoding(sample_paths):
    """The shipped landsat8 Fose on the real Landsat-8 sample at reduced resolution
    (Wald): the same scene as 16-bit DN, as surface reflectance x 10000 (Landsat
    level-2 scaling, one gain and offset for all bands) and as an 8-bit product made
    with one stretch scores as well in each (8-bit loses what its 256 levels lose); a
    per-band change of gains (what a per-band calibration does) changes the colours
    the model sees and costs it little. Every encoding stays ahead of mtf-glp-hpm, with
    and without the classical anchor."""
    from diffusion_pansharpening.engine.evaluate import Pair, load_pair, sharpen_arrays
    from diffusion_pansharpening.engine.mtf import wald_degrade

    if not LANDSAT_FOSE.exists():
        pytest.fail(f"{LANDSAT_FOSE} is missing (training/recipes/run.py landsat8 makes it)")
    pair = load_pair(*sample_paths)
    pan = pair.pan[:304, :640].astype(np.float64)  # the 654 x 306 sample, whole MS pixels
    ms = pair.ms[:, :152, :320].astype(np.float64)
    pan_lr, ms_lr = wald_degrade(pan, ms, 2)
    lo, hi = np.percentile(np.concatenate([ms_lr.ravel(), pan_lr.ravel()]), [0.5, 99.5])
    band_gain = np.array([1.15, 1.0, 0.9, 0.75])[:, None, None]
    encodings = {  # name: (encode, decode)
        "dn": (lambda x: x, lambda y: y),
        "reflectance": (lambda x: x * 0.275 - 2000.0, lambda y: (y + 2000.0) / 0.275),
        "byte": (lambda x: stretch_8bit(x, lo, hi), lambda y: y / 255.0 * (hi - lo) + lo),
    }

    def score(pair, decode, anchor):
        fused = sharpen_arrays(pair, "fose", weights=str(LANDSAT_FOSE), device="cpu", anchor=anchor)
        return quality.reduced_indices(decode(fused.astype(np.float64)), ms, 2)

    nets, mixed = {}, {}
    for name, (encode, decode) in encodings.items():
        run = Pair(np.float32(encode(pan_lr)), np.float32(encode(ms_lr)), 2, 1.0, None)
        nets[name], mixed[name] = score(run, decode, 0.0), score(run, decode, ANCHOR)
    per_band = Pair(np.float32(pan_lr), np.float32(ms_lr * band_gain), 2, 1.0, None)
    nets["per-band gains"] = score(per_band, lambda y: y / band_gain, 0.0)
    classical = quality.reduced_indices(
        sharpen_arrays(Pair(np.float32(pan_lr), np.float32(ms_lr), 2, 1.0, None), "mtf-glp-hpm"), ms, 2)
    dn = nets["dn"]
    # the network alone keeps its quality in every encoding (8-bit loses what 256 levels lose)
    tolerance = {"reflectance": 1e-4, "byte": 0.006, "per-band gains": 0.003}
    for name, abs_q2n in tolerance.items():
        assert nets[name]["Q2n"] == pytest.approx(dn["Q2n"], abs=abs_q2n), (name, nets)
        assert nets[name]["SAM"] == pytest.approx(dn["SAM"], abs=0.05), (name, nets)
    for name, s in nets.items():
        assert s["Q2n"] > classical["Q2n"] and s["ERGAS"] < classical["ERGAS"], (name, s, classical)
    # with the classical anchor (MTF-GLP-HPM in the data's own units: not offset-invariant)
    # measured: Q2n 0.9476 (DN), 0.9343 (reflectance: its offset costs MTF-GLP-HPM), 0.9444
    # (8-bit), the network alone 0.944 in each: every encoding stays ahead of mtf-glp-hpm,
    # and the two without an offset keep at least the network's quality
    for name, s in mixed.items():
        assert s["Q2n"] > classical["Q2n"], (name, s, classical)
    for name in ("dn", "byte"):
        assert mixed[name]["Q2n"] > nets[name]["Q2n"] - 0.002, (name, mixed[name], nets[name])

"""Choosing a shipped model for a pair, and listing the shipped models."""
import re
import numpy as np
import pytest
import torch
from osgeo import gdal

from diffusion_pansharpening.engine import guard
from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.families import (DEFAULT_WEIGHTS_DIR, ENV_WEIGHTS, choose_model, format_models,
                                                     shipped_models)
from diffusion_pansharpening.engine.methods import default_method, list_methods, prepare
from diffusion_pansharpening.engine.pipeline import SharpenRequest, inspect_pair, sharpen
from diffusion_pansharpening.engine.radiometry import NAME

from conftest import read_raster, write_geotiff

torch.set_num_threads(1)


def save_tiny(path, arch, bands, ratio, quality=None):
    from diffusion_pansharpening.engine.models import build, build_metadata, save_weights

    torch.manual_seed(0)
    net = build(arch, "tiny", bands=bands)
    meta = build_metadata(arch, net.config, sensor="LANDSAT8", bands=["blue", "green", "red", "NIR"][:bands]
                          if bands == 4 else [f"b{i}" for i in range(bands)], ratio=ratio, scale=65535,
                          training_data="none (fixed seed)", licence="test", quality=quality or {})
    meta["normalisation"] = NAME
    save_weights(str(path), net, meta)
    return path


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(ENV_WEIGHTS, str(folder))
    return folder



@pytest.fixture
def three_band_ratio4(ikonos, tmp_path):
    pan, ms = ikonos
    return (write_geotiff(tmp_path / "pan3.tif", pan[None, :128, :128], 1),
            write_geotiff(tmp_path / "ms3.tif", ms[:3, :32, :32], 4))


def test_sample_without_shipped_weights_falls_back_to_classical(sample_paths, weights_dir):
    choice = choose_model(inspect_pair(*sample_paths))
    assert (choice.method, choice.weights, choice.family) == ("mtf-glp-hpm", None, "landsat8")
    assert "no landsat8 model is shipped yet" in choice.reason
    assert "none shipped yet" in format_models(shipped_models())
    assert not {m.name: m for m in list_methods()}["fose"].available


def test_sample_picks_the_shipped_landsat8_fose_and_runs_it(sample_paths, weights_dir, tmp_path):
    save_tiny(weights_dir / "landsat8-fose.safetensors", "fose", 4, 2,
              {"summary": "held-out Landsat-8: Q2n 0.9000"})
    save_tiny(weights_dir / "vhr4-ksdiff.safetensors", "ksdiff", 4, 4)
    info = inspect_pair(*sample_paths)
    choice = choose_model(info)
    assert (choice.method, choice.family) == ("fose", "landsat8")
    assert choice.weights.endswith("landsat8-fose.safetensors")
    assert "4 bands at ratio 2" in choice.reason and "landsat8" in choice.reason
    assert default_method(info) == "fose"
    available = {m.name: m.available for m in list_methods()}
    assert available["fose"] and available["ksdiff"] and not available["dm50"]

    messages = []
    out = tmp_path / "auto.tif"
    result = sharpen(SharpenRequest(*sample_paths, str(out), device="cpu", check=False), log=messages.append)
    assert result.method == "fose"
    assert choice.reason in messages
    assert "Not checked (the check is off): running fose at the anchor share 0.5." in messages  # no sensor named
    fused = read_raster(out).astype(np.float64)
    lms = read_raster(sample_paths[1]).astype(np.float64).repeat(2, 1).repeat(2, 2)
    # a random tiny model, but in the scene's units: band means near the MS's
    assert np.allclose(fused.mean(axis=(1, 2)), lms.mean(axis=(1, 2)), rtol=0.5)

    listing = format_models(shipped_models())
    rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert rows["landsat8"].split()[1:4] == ["fose", "4", "2"]
    assert "Q2n 0.9000" in rows["landsat8"]
    assert rows["vhr4"].split()[1:4] == ["ksdiff", "4", "4"]


def test_auto_checks_the_deep_model_and_takes_the_classical_method_that_beats_it(
        sample_paths, weights_dir, tmp_path):
    """A random tiny fose, without the consistency projection (which alone makes even a
    random network competitive on this sample), stands for a model trained for another
    sensor: the check on a sample of the scene sees it lose and auto runs the best
    classical method instead, saying so with the numbers; asked for by name, fose still
    runs, with a warning."""
    save_tiny(weights_dir / "landsat8-fose.safetensors", "fose", 4, 2)
    messages = []
    result = sharpen(SharpenRequest(*sample_paths, str(tmp_path / "auto.tif"), device="cpu", consistent=False),
                     log=messages.append)
    assert result.method in guard.CLASSICAL_CANDIDATES
    checked = next(m for m in messages if m.startswith("Checked "))
    scores = dict(re.findall(r"([\w-]+): Q2n ([0-9.]+)", checked))
    assert set(scores) == {"fose", *guard.CLASSICAL_CANDIDATES}
    assert float(scores[result.method]) == max(map(float, scores.values())) > float(scores["fose"])
    assert checked.endswith(f"using {result.method}.") and result.reason.endswith(checked)
    hqnr = dict(re.findall(r"([\w-]+): ([0-9.]+)", checked.split("HQNR at its own scale ")[1]))
    assert float(hqnr[result.method]) >= float(hqnr["fose"])  # it wins at the sample's own scale too

    messages.clear()
    result = sharpen(SharpenRequest(*sample_paths, str(tmp_path / "fose.tif"), method="fose", device="cpu",
                                    consistent=False), log=messages.append)
    assert result.method == "fose"
    assert any(m.startswith("Warning: ") and "running fose as asked" in m for m in messages)


def test_a_classical_method_replaces_the_deep_model_only_if_it_also_wins_at_full_resolution():
    """The Q2n test at reduced resolution picks the classical method; HQNR on the sample
    as it is (``guard.confirm_at_full``) must agree, or the deep model stays."""
    from diffusion_pansharpening.engine import guard

    verdict = guard.Verdict("fose", "w.safetensors", {"fose": {"Q2n": 0.870}, "gsa": {"Q2n": 0.872}})
    assert verdict.best == "gsa" and verdict.loses("fose")
    verdict.full = {"fose": 0.909, "gsa": 0.749}
    assert not verdict.loses("fose")
    verdict.full = {"fose": 0.700, "gsa": 0.749}
    assert verdict.loses("fose")
    assert verdict.summary().endswith("HQNR at its own scale fose: 0.700, gsa: 0.749")


def test_a_shipped_model_that_wins_the_check_runs(sample_paths):
    """The shipped landsat8 fose beats the classical methods on a sample of its own
    family's scene (the bundled sample, not part of its training region's statistics)."""
    from diffusion_pansharpening.engine import guard
    from diffusion_pansharpening.engine.raster_io import RasterPair

    pair = RasterPair(*sample_paths)
    verdict = guard.check(pair, "fose", str(DEFAULT_WEIGHTS_DIR / "landsat8-fose.safetensors"), device="cpu")
    assert verdict.method == "fose" and not verdict.loses("fose")
    assert verdict.size[0] % 4 == 0 and verdict.size[1] % 4 == 0


def test_the_check_scores_a_reflectance_scene_as_its_digital_numbers(sample_paths, tmp_path):
    """Float32 reflectance (values in [0, 1]) is a product the engine takes; its check must
    tell the methods apart as on the same scene in DN (every method scored Q2n 1.000 when
    Q2n's toolbox cast rounded such data to 0 and 1)."""
    from diffusion_pansharpening.engine import guard
    from diffusion_pansharpening.engine.raster_io import RasterPair

    weights = str(DEFAULT_WEIGHTS_DIR / "landsat8-fose.safetensors")
    floats = []
    for path in sample_paths:
        ds = gdal.Open(path)
        out = str(tmp_path / f"reflectance-{len(floats)}.tif")
        gdal.Translate(out, ds, outputType=gdal.GDT_Float32, scaleParams=[[0, 65535, 0, 1]])
        floats.append(out)
    verdicts = [guard.check(RasterPair(*paths), "fose", weights, device="cpu")
                for paths in (sample_paths, floats)]
    dn, reflectance = ({n: s["Q2n"] for n, s in v.scores.items()} for v in verdicts)
    assert max(reflectance.values()) < 0.99
    assert len(set(np.round(list(reflectance.values()), 3))) == 1 + len(guard.CLASSICAL_CANDIDATES)
    assert reflectance == pytest.approx(dn, abs=2e-3)
    assert verdicts[1].method == verdicts[0].method


def test_explicit_method_uses_the_family_file_or_says_none_fits(sample_paths, weights_dir,
                                                                three_band_ratio4):
    save_tiny(weights_dir / "vhr4-fose.safetensors", "fose", 4, 4)
    with pytest.raises(PansharpenError, match="No shipped fose model fits 4 bands at ratio 2"):
        prepare("fose", ratio=2, bands=4, device="cpu")
    model = prepare("fose", ratio=4, bands=4, device="cpu")
    assert model.normalisation == "scene"
    assert choose_model(inspect_pair(*sample_paths), "gsa").method == "gsa"


def test_three_bands_at_ratio_4_fit_no_family(three_band_ratio4, weights_dir):
    save_tiny(weights_dir / "vhr4-fose.safetensors", "fose", 4, 4)
    choice = choose_model(inspect_pair(*three_band_ratio4))
    assert (choice.method, choice.weights, choice.family) == ("mtf-glp-hpm", None, None)
    assert "No shipped model fits 3 bands at ratio 4" in choice.reason
    assert "classical method" in choice.reason and "your own weights file" in choice.reason


def test_sensor_name_is_reported_band_count_and_ratio_decide():
    from types import SimpleNamespace

    wv = choose_model(SimpleNamespace(bands=8, ratio=4, sensor="WV3"))
    assert wv.family == "wv8" and "sensor WV3" in wv.reason
    odd = choose_model(SimpleNamespace(bands=4, ratio=4, sensor="WV3"))
    assert odd.family == "vhr4" and "WV3 is not among its training sensors" in odd.reason


def test_models_command_lists_the_folder(weights_dir, capsys):
    from diffusion_pansharpening.engine.cli import main

    assert main(["models"]) == 0
    assert "none shipped yet" in capsys.readouterr().out
    save_tiny(weights_dir / "wv8-ksdiff.safetensors", "ksdiff", 8, 4)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "wv8" in out and "ksdiff" in out and "wv8-ksdiff.safetensors" in out


@pytest.mark.parametrize("sensor", [None, "LANDSAT8"])
def test_a_scene_too_small_to_check_runs_the_deep_model_at_the_default_share(sample_paths, tmp_path, sensor):
    """A 128-pixel clip (ratio 2: a 64-pixel degraded sample) is below what the check can
    resolve: auto runs the family's deep model at the anchor's default share, as fose asked
    for by name does, says so, and writes the same image. The share is 0.5 with MTF-GLP-HPM
    (the bundled files name no sensor, and the log says what naming one changes) and 0.625 with
    the haze-corrected half (a known sensor)."""
    from osgeo import gdal

    from diffusion_pansharpening.engine.anchor import default_share
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    share = default_share(sensor)
    assert share == (0.625 if sensor else 0.5)

    pan, ms = str(tmp_path / "pan.tif"), str(tmp_path / "ms.tif")
    gdal.Translate(pan, sample_paths[0], srcWin=[0, 0, 128, 128])
    gdal.Translate(ms, sample_paths[1], srcWin=[0, 0, 64, 64])
    outputs = {}
    for method in ("auto", "fose"):
        messages = []
        outputs[method] = str(tmp_path / f"{method}.tif")
        result = sharpen(SharpenRequest(pan, ms, outputs[method], method=method, device="cpu", sensor=sensor),
                         log=messages.append)
        assert result.method == "fose"
        assert any("too small for the check" in m and m.endswith(f"running fose at the anchor share {share:g}.")
                   for m in messages)
        assert any("no sensor is known" in m for m in messages) == (sensor is None)
    images = [gdal.Open(outputs[m]).ReadAsArray() for m in ("auto", "fose")]
    assert np.array_equal(*images)

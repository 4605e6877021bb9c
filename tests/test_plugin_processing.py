"""The Processing provider and its algorithms, in real QGIS (pytest-qgis) and in a real
``qgis_process.bin`` subprocess with an isolated profile."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback
from qgis.PyQt.QtCore import Qt

from conftest import read_raster

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PAN = ROOT / "resources" / "sample" / "pan.tif"
SAMPLE_MS = ROOT / "resources" / "sample" / "ms.tif"
QGIS_PROCESS = "/usr/bin/qgis_process.bin"
PROVIDER = "diffusion_pansharpening"


@pytest.fixture(scope="module")
def sample():
    for path in (SAMPLE_PAN, SAMPLE_MS):
        if not path.exists():
            pytest.fail(f"bundled sample {path} is missing (scripts/make_sample.py makes it)")
    return str(SAMPLE_PAN), str(SAMPLE_MS)


@pytest.fixture(scope="module")
def provider(qgis_processing):
    """The plugin's provider registered as QGIS does headless: classFactory(None) + initProcessing."""
    from diffusion_pansharpening import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    yield plugin.provider
    plugin.unload()


def far_away_copy(ms: str, folder: Path) -> str:
    """The MS moved 100 km east: a pair with no overlap at all."""
    ds = gdal.Open(ms)
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    x0 += 100_000
    bounds = [x0, y0, x0 + dx * ds.RasterXSize, y0 + dy * ds.RasterYSize]
    path = str(folder / "ms_far.tif")
    gdal.Translate(path, ds, outputBounds=bounds)
    return path


def pan_grid(pan: str):
    ds = gdal.Open(pan)
    gt = ds.GetGeoTransform()
    return gt, (gt[0], gt[3], gt[0] + gt[1] * ds.RasterXSize, gt[3] + gt[5] * ds.RasterYSize)


def assert_on_pan_grid(output: str, pan: str, bands: int = 4):
    """GeoTIFF, PAN pixel size, origin on a PAN pixel corner, inside the PAN, PAN CRS."""
    ds = gdal.Open(output)
    assert ds.GetDriver().ShortName == "GTiff"
    assert ds.RasterCount == bands
    gt = ds.GetGeoTransform()
    pan_gt, (left, top, right, bottom) = pan_grid(pan)
    assert gt[1] == pytest.approx(pan_gt[1]) and gt[5] == pytest.approx(pan_gt[5])
    for offset, size in ((gt[0] - pan_gt[0], pan_gt[1]), (gt[3] - pan_gt[3], pan_gt[5])):
        assert offset / size == pytest.approx(round(offset / size), abs=1e-6)
    assert left - 1e-6 <= gt[0] and gt[0] + gt[1] * ds.RasterXSize <= right + 1e-6
    assert top + 1e-6 >= gt[3] and gt[3] + gt[5] * ds.RasterYSize >= bottom - 1e-6
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    pan_srs = osr.SpatialReference(wkt=gdal.Open(pan).GetProjection())
    assert srs.IsSame(pan_srs)
    return ds


# -- in-process Processing ----------------------------------------------------------------
def test_provider_lists_both_algorithms(provider):
    registered = QgsApplication.processingRegistry().providerById(PROVIDER)
    assert registered is provider
    assert sorted(alg.id() for alg in registered.algorithms()) == [
        f"{PROVIDER}:pansharpen", f"{PROVIDER}:quality"]


def test_method_enum_is_auto_then_engine_methods_and_help_explains_them(provider):
    from diffusion_pansharpening.engine.methods import list_methods

    alg = QgsApplication.processingRegistry().algorithmById(f"{PROVIDER}:pansharpen")
    names = [info.name for info in list_methods()]
    assert alg.parameterDefinition("METHOD").options() == ["auto"] + names
    assert alg.parameterDefinition("METHOD").defaultValue() == "auto"
    help_text = alg.shortHelpString()
    for number, info in enumerate(list_methods(), start=1):
        assert f"{number}: {info.name} ({info.kind})" in help_text  # the number qgis_process takes
        if not info.available:  # the reason (e.g. how to install torch) is in the help
            assert info.why_unavailable.split(":")[0] in help_text


def test_run_writes_a_geotiff_on_the_pan_grid(provider, sample, tmp_path):
    import processing

    pan, ms = sample
    out = tmp_path / "sharp.tif"
    result = processing.run(f"{PROVIDER}:pansharpen", {
        "PAN": pan, "MS": ms, "METHOD": "brovey", "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out) and result["METHOD_USED"] == "brovey"
    ds = assert_on_pan_grid(str(out), pan)
    # the whole overlap: the MS sits half a PAN pixel inside the PAN, so at most one
    # PAN row and column are lost
    assert 653 <= ds.RasterXSize <= 654 and 305 <= ds.RasterYSize <= 306  # PAN 654 x 306
    assert [ds.GetRasterBand(b).GetDescription() for b in range(1, 5)] == ["blue", "green", "red", "nir"]


def test_toolbox_run_loads_the_result_named_after_ms_and_method_in_true_colour(provider, sample, tmp_path,
                                                                              qgis_new_project):
    import processing
    from qgis.core import QgsMultiBandColorRenderer

    pan, ms = sample
    processing.runAndLoadResults(f"{PROVIDER}:pansharpen", {
        "PAN": pan, "MS": ms, "METHOD": "brovey", "OUTPUT": str(tmp_path / "loaded.tif")})
    loaded = list(qgis_new_project.mapLayers().values())
    assert [layer.name() for layer in loaded] == ["ms brovey"]
    renderer = loaded[0].renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)


def run_as_the_toolbox_does(algorithm_id, parameters, timeout=120.0):
    """Run an algorithm as QGIS 3.22's Processing Toolbox does (AlgorithmDialog.runAlgorithm):
    a QgsProcessingAlgRunnerTask in the task manager (a worker thread), then
    handleAlgorithmResults on the task's context. Returns (ok, results, context)."""
    import time

    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects
    from qgis.core import QgsProcessingAlgRunnerTask
    from qgis.PyQt.QtCore import QCoreApplication

    algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    feedback = QgsProcessingFeedback()
    context = dataobjects.createContext(feedback)
    done = {}

    def on_complete(ok, results):
        done.update(ok=ok, results=results)
        handleAlgorithmResults(algorithm, context, feedback, False, results)

    task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
    assert not task.isCanceled(), "prepareAlgorithm refused the parameters"
    task.executed.connect(on_complete)
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + timeout
    while "ok" not in done and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    assert "ok" in done, "the background run did not finish in time"
    return done["ok"], done["results"], context


def test_toolbox_background_run_loads_the_result_on_the_map(provider, sample, tmp_path, qgis_new_project):
    """Defect 1 of issue 14: the toolbox's background task must keep the output in the
    context's layers to load, so QGIS adds it to the map, named and in true colour."""
    from qgis.core import QgsMultiBandColorRenderer, QgsProcessingOutputLayerDefinition, QgsProject

    pan, ms = sample
    out = str(tmp_path / "toolbox.tif")
    # "Open output file after running algorithm" ticked: the dialog's OUTPUT value
    output = QgsProcessingOutputLayerDefinition(out, QgsProject.instance())
    ok, results, context = run_as_the_toolbox_does(f"{PROVIDER}:pansharpen", {
        "PAN": pan, "MS": ms, "METHOD": "brovey", "OUTPUT": output})
    assert ok and results["OUTPUT"] == out
    assert list(context.layersToLoadOnCompletion()) == [out]
    loaded = list(qgis_new_project.mapLayers().values())
    assert [(layer.name(), layer.source()) for layer in loaded] == [("ms brovey", out)]
    renderer = loaded[0].renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)


def test_auto_runs_the_engines_default_for_the_pair(provider, sample, tmp_path):
    import processing
    from diffusion_pansharpening.engine.methods import default_method
    from diffusion_pansharpening.engine.pipeline import inspect_pair

    pan, ms = sample
    result = processing.run(f"{PROVIDER}:pansharpen", {
        "PAN": pan, "MS": ms, "OUTPUT": str(tmp_path / "auto.tif")})
    assert result["METHOD_USED"] == default_method(inspect_pair(pan, ms))


def test_extent_limits_the_output_to_that_window(provider, sample, tmp_path):
    import processing

    pan, ms = sample
    pan_gt, _ = pan_grid(pan)
    xmin, ymax = pan_gt[0] + 15 * 100, pan_gt[3] - 15 * 200
    xmax, ymin = xmin + 15 * 80, ymax - 15 * 50  # 80 x 50 PAN pixels, on the grid
    out = tmp_path / "window.tif"
    processing.run(f"{PROVIDER}:pansharpen", {
        "PAN": pan, "MS": ms, "METHOD": "brovey", "OUTPUT": str(out),
        "EXTENT": f"{xmin},{xmax},{ymin},{ymax} [EPSG:32616]"})
    ds = assert_on_pan_grid(str(out), pan)
    assert (ds.RasterXSize, ds.RasterYSize) == (80, 50)
    assert ds.GetGeoTransform()[0] == pytest.approx(xmin)
    assert ds.GetGeoTransform()[3] == pytest.approx(ymax)


class Recorder(QgsProcessingFeedback):
    """Keeps what the algorithm logs and reports."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def pushInfo(self, info):  # noqa: N802
        self.lines.append(info)
        super().pushInfo(info)

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        self.lines.append(error)
        super().reportError(error, fatalError)


def test_an_extent_run_speaks_of_the_extent_not_of_the_ms_covering_a_fraction(provider, sample, tmp_path):
    """Defect 4 of issue 14: a preview's log said "The MS covers 1% of the PAN"."""
    import processing

    pan, ms = sample
    pan_gt, _ = pan_grid(pan)
    xmin, ymax = pan_gt[0] + 15 * 100, pan_gt[3] - 15 * 200
    feedback = Recorder()
    processing.run(f"{PROVIDER}:pansharpen", {
        "PAN": pan, "MS": ms, "METHOD": "brovey", "OUTPUT": str(tmp_path / "window.tif"),
        "EXTENT": f"{xmin},{xmin + 15 * 80},{ymax - 15 * 50},{ymax} [EPSG:32616]"}, feedback=feedback)
    assert not any("covers" in line for line in feedback.lines), feedback.lines
    assert any(line.startswith("Only the extent asked for: 80 x 50 of the ") for line in feedback.lines)


def test_the_file_of_a_loaded_layer_is_never_the_output(provider, sample, tmp_path, qgis_new_project):
    """Defect 2 of issue 14, in Processing: replacing a loaded layer's file makes it show
    other data or stop drawing."""
    import processing
    from qgis.core import QgsRasterLayer

    pan, ms = sample
    out = tmp_path / "loaded.tif"
    processing.run(f"{PROVIDER}:pansharpen", {"PAN": pan, "MS": ms, "METHOD": "brovey", "OUTPUT": str(out)})
    qgis_new_project.addMapLayer(QgsRasterLayer(str(out), "earlier result"))
    before = out.read_bytes()
    feedback = Recorder()
    with pytest.raises(QgsProcessingException):
        processing.run(f"{PROVIDER}:pansharpen", {"PAN": pan, "MS": ms, "METHOD": "gsa", "OUTPUT": str(out)},
                       feedback=feedback)
    assert any("is the layer 'earlier result' in the project" in line for line in feedback.lines), feedback.lines
    assert out.read_bytes() == before


def test_cog_asks_the_engine_for_a_cloud_optimized_geotiff(provider, sample, tmp_path):
    import processing

    pan, ms = sample
    out = {}
    for cog in (False, True):
        out[cog] = str(tmp_path / f"cog-{cog}.tif")
        processing.run(f"{PROVIDER}:pansharpen", {"PAN": pan, "MS": ms, "METHOD": "brovey", "COG": cog,
                                                  "OUTPUT": out[cog]})
    layouts = {cog: gdal.Open(path).GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") for cog, path in out.items()}
    assert layouts == {False: None, True: "COG"}
    assert gdal.Open(out[False]).GetRasterBand(1).GetOverviewCount() >= 1  # internal overviews either way


def test_no_overlap_is_a_processing_exception_with_the_engines_message(provider, sample, tmp_path):
    import processing

    pan, ms = sample
    out = tmp_path / "never.tif"
    with pytest.raises(QgsProcessingException, match="(?i)overlap"):
        processing.run(f"{PROVIDER}:pansharpen", {
            "PAN": pan, "MS": far_away_copy(ms, tmp_path), "METHOD": "brovey", "OUTPUT": str(out)})
    assert not out.exists()


def test_full_precision_reaches_the_engine(provider, sample, tmp_path):
    """FULL_PRECISION runs the deep model in float32 (what the engine gives with
    half=False); by default a CPU with native bfloat16 runs it in bfloat16."""
    import processing
    from diffusion_pansharpening.engine.models import native_bfloat16
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    pan, ms = sample
    weights = str(ROOT / "resources" / "weights" / "landsat8-fose.safetensors")
    out = {}
    for full in (True, False):
        out[full] = str(tmp_path / f"full-{full}.tif")
        processing.run(f"{PROVIDER}:pansharpen", {
            "PAN": pan, "MS": ms, "METHOD": "fose", "WEIGHTS": weights, "DEVICE": "cpu",
            "FLOAT32": True, "FULL_PRECISION": full, "OUTPUT": out[full]})
    engine = str(tmp_path / "engine.tif")
    sharpen(SharpenRequest(pan, ms, engine, method="fose", weights=weights, device="cpu",
                           float32=True, half=False))
    np.testing.assert_array_equal(read_raster(out[True]), read_raster(engine))
    differs = not np.array_equal(read_raster(out[False]), read_raster(out[True]))
    assert differs == native_bfloat16()


def test_the_classical_anchor_reaches_the_engine(provider, sample, tmp_path):
    """ANCHOR (advanced, explained in the help) is the share of mtf-glp-hpm in a deep
    output: 0 gives what the engine gives for the network alone, empty (the default)
    what it gives by default (``anchor.default_share``)."""
    import processing
    from qgis.core import QgsProcessingParameterDefinition
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    pan, ms = sample
    alg = provider.algorithm("pansharpen")
    definition = alg.parameterDefinition("ANCHOR")
    assert definition.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    assert (definition.defaultValue(), definition.minimum(), definition.maximum()) == (None, 0.0, 1.0)
    assert definition.flags() & QgsProcessingParameterDefinition.FlagOptional
    assert "Share of the classical mtf-glp-hpm" in alg.shortHelpString()
    weights = str(ROOT / "resources" / "weights" / "landsat8-e2e.safetensors")
    images = {}
    for anchor in (0.0, None):
        params = {"PAN": pan, "MS": ms, "METHOD": "e2e", "WEIGHTS": weights, "DEVICE": "cpu",
                  "FULL_PRECISION": True, "CHECK": False, "OUTPUT": str(tmp_path / f"qgis-{anchor}.tif")}
        if anchor is not None:
            params["ANCHOR"] = anchor
        processing.run(f"{PROVIDER}:pansharpen", params)
        engine = str(tmp_path / f"engine-{anchor}.tif")
        sharpen(SharpenRequest(pan, ms, engine, method="e2e", weights=weights, device="cpu", half=False,
                               check=False, **({} if anchor is None else {"anchor": anchor})))
        images[anchor] = read_raster(params["OUTPUT"])
        np.testing.assert_array_equal(images[anchor], read_raster(engine))
    assert not np.array_equal(images[0.0], images[None])


def test_cancel_during_the_run_leaves_no_file(provider, sample, tmp_path):
    import processing

    pan, ms = sample
    feedback = QgsProcessingFeedback()
    # cancel as soon as the first tile is done (same thread: direct connection)
    feedback.progressChanged.connect(
        lambda value: feedback.cancel() if value > 0 else None, Qt.DirectConnection)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(f"{PROVIDER}:pansharpen", {
            "PAN": pan, "MS": ms, "METHOD": "brovey", "TILE_SIZE": 64, "OVERLAP": 8,
            "OUTPUT": str(out_dir / "cancelled.tif")}, feedback=feedback)
    assert list(out_dir.iterdir()) == []  # no result, no scratch file


def test_quality_against_pan_and_ms_gives_the_engines_indices_and_a_report(provider, sample, tmp_path):
    import processing
    from diffusion_pansharpening.engine.scoring import score_files

    pan, ms = sample
    fused = str(tmp_path / "fused.tif")
    processing.run(f"{PROVIDER}:pansharpen", {"PAN": pan, "MS": ms, "METHOD": "brovey", "OUTPUT": fused})
    report = tmp_path / "quality.html"
    result = processing.run(f"{PROVIDER}:quality", {
        "FUSED": fused, "PAN": pan, "MS": ms, "OUTPUT_HTML": str(report)})
    expected = score_files(fused, pan=pan, ms=ms)
    assert {"D_LAMBDA", "D_S", "QNR", "HQNR"} <= set(result)
    for key, value in expected.items():
        name = key.upper().replace("-", "_")
        assert result[name] == pytest.approx(value)
        assert f"{value:.4f}" in report.read_text()
    assert 0 < result["QNR"] < 1


def test_quality_of_an_image_against_itself_is_ideal(provider, sample, tmp_path):
    import processing

    pan, ms = sample
    fused = str(tmp_path / "fused.tif")
    processing.run(f"{PROVIDER}:pansharpen", {"PAN": pan, "MS": ms, "METHOD": "brovey", "OUTPUT": fused})
    result = processing.run(f"{PROVIDER}:quality", {"FUSED": fused, "REFERENCE": fused})
    assert result["SAM"] == pytest.approx(0, abs=1e-6)
    assert result["ERGAS"] == pytest.approx(0, abs=1e-6)
    assert result["Q2N"] == pytest.approx(1, abs=1e-6)
    assert result["SCC"] == pytest.approx(1, abs=1e-6)


def test_quality_without_reference_or_pan_and_ms_says_what_to_give(provider, sample):
    import processing

    pan, _ = sample
    with pytest.raises(QgsProcessingException, match="reference raster, or both the PAN and the MS"):
        processing.run(f"{PROVIDER}:quality", {"FUSED": pan, "PAN": pan})


# -- qgis_process.bin in a subprocess -----------------------------------------------------
@pytest.fixture(scope="module")
def qgis_process_env(tmp_path_factory):
    """A fresh QGIS profile (HOME, XDG_DATA_HOME) with the plugin enabled."""
    home = tmp_path_factory.mktemp("qgis_home")
    env = {key: value for key, value in os.environ.items()
           # pytest-qgis points these at its own settings: the subprocess gets its own
           if key not in ("QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH")}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "xdg"),
        XDG_RUNTIME_DIR=str(home / "runtime"),
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(ROOT / ".build" / "plugins"),
        PYTHONPATH=os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT / ".build" / "plugins")]),
    )
    (home / "runtime").mkdir(mode=0o700)
    link = ROOT / ".build" / "plugins" / PROVIDER
    if not link.exists():
        pytest.fail(f"{link} is missing: run `make install` (it links the plugin folder there)")
    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", PROVIDER], env=env,
                             capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return env


def qgis_process(env, algorithm, **parameters):
    args = [QGIS_PROCESS, "--json", "run", f"{PROVIDER}:{algorithm}", "--"]
    args += [f"{key}={value}" for key, value in parameters.items()]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def test_qgis_process_runs_pansharpen_on_the_sample(qgis_process_env, sample, tmp_path):
    pan, ms = sample
    out = tmp_path / "headless.tif"
    done = qgis_process(qgis_process_env, "pansharpen", PAN=pan, MS=ms, METHOD="brovey", OUTPUT=out)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["OUTPUT"] == str(out) and results["METHOD_USED"] == "brovey"
    assert_on_pan_grid(str(out), pan)


def test_qgis_process_takes_the_method_by_the_number_its_help_lists(qgis_process_env, sample, tmp_path):
    """Defect 3 of issue 14: `qgis_process help` lists METHOD by number; METHOD=3 runs gsa,
    a number out of range is refused with the list; the help is plain text, no HTML tags."""
    pan, ms = sample
    helped = subprocess.run([QGIS_PROCESS, "help", f"{PROVIDER}:pansharpen"], env=qgis_process_env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "- 3: gsa" in helped.stdout and "3: gsa (classical)" in helped.stdout
    assert not re.search(r"</?(h3|ul|li|b|i|br)>", helped.stdout), helped.stdout[:2000]
    quality_help = subprocess.run([QGIS_PROCESS, "help", f"{PROVIDER}:quality"], env=qgis_process_env,
                                  capture_output=True, text=True, timeout=120)
    assert "Scores a sharpened raster." in quality_help.stdout
    assert not re.search(r"</?(ul|li|b)>", quality_help.stdout)

    out = tmp_path / "by_number.tif"
    done = qgis_process(qgis_process_env, "pansharpen", PAN=pan, MS=ms, METHOD=3, DEVICE=1, OUTPUT=out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["results"]["METHOD_USED"] == "gsa"
    assert_on_pan_grid(str(out), pan)

    refused = qgis_process(qgis_process_env, "pansharpen", PAN=pan, MS=ms, METHOD=42,
                           OUTPUT=tmp_path / "never.tif")
    assert refused.returncode == 1
    assert "METHOD=42 is not one of: 0: auto, 1: brovey" in refused.stdout + refused.stderr
    assert not (tmp_path / "never.tif").exists()


def test_qgis_process_reports_no_overlap_and_exits_1(qgis_process_env, sample, tmp_path):
    pan, ms = sample
    out = tmp_path / "never.tif"
    done = qgis_process(qgis_process_env, "pansharpen", PAN=pan, MS=far_away_copy(ms, tmp_path),
                        METHOD="brovey", OUTPUT=out)
    assert done.returncode == 1
    assert "overlap" in (done.stdout + done.stderr).lower()
    assert not out.exists()


def test_qgis_process_runs_quality(qgis_process_env, sample, tmp_path):
    pan, ms = sample
    report = tmp_path / "q.html"
    done = qgis_process(qgis_process_env, "quality", FUSED=ms, REFERENCE=ms, OUTPUT_HTML=report)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["SAM"] == pytest.approx(0, abs=1e-6)
    assert report.exists() and "ERGAS" in report.read_text()



@pytest.fixture
def eight_band_weights(tmp_path):
    """A tiny untrained e2e weights file made for 8-band (WorldView) imagery."""
    import torch

    from diffusion_pansharpening.engine.models import build, build_metadata, save_weights

    torch.set_num_threads(1)
    model = build("e2e", "tiny", bands=8)
    names = ["coastal", "blue", "green", "yellow", "red", "red edge", "nir1", "nir2"]
    path = tmp_path / "e2e_8bands.safetensors"
    save_weights(str(path), model, build_metadata(
        "e2e", model.config, sensor="WV3", bands=names, ratio=2, scale=2047.0,
        training_data="untrained (test)", licence="test only"))
    return path


def test_qgis_process_reports_a_model_made_for_another_band_count(qgis_process_env, sample, tmp_path,
                                                                  eight_band_weights):
    pan, ms = sample  # the MS has 4 bands
    out = tmp_path / "never.tif"
    done = qgis_process(qgis_process_env, "pansharpen", PAN=pan, MS=ms, METHOD="e2e",
                        WEIGHTS=eight_band_weights, DEVICE="cpu", OUTPUT=out)
    assert done.returncode == 1
    message = done.stdout + done.stderr
    assert re.search(r"expects 8 MS bands but the MS has 4", message), message[-2000:]
    assert not out.exists()


def test_without_torch_classical_methods_run_and_deep_ones_say_how_to_get_torch(qgis_process_env, sample,
                                                                               tmp_path):
    pan, ms = sample
    # Debian's Python has no torch: drop the venv's site-packages from the path
    env = dict(qgis_process_env, PYTHONPATH=str(ROOT / ".build" / "plugins"))
    helped = subprocess.run([QGIS_PROCESS, "help", f"{PROVIDER}:pansharpen"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "PyTorch is not installed" in helped.stdout

    out = tmp_path / "gsa.tif"
    done = qgis_process(env, "pansharpen", PAN=pan, MS=ms, METHOD="gsa", OUTPUT=out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_on_pan_grid(str(out), pan)

    refused = qgis_process(env, "pansharpen", PAN=pan, MS=ms, METHOD="fose", OUTPUT=tmp_path / "no.tif")
    assert refused.returncode == 1
    assert "pip install" in refused.stdout + refused.stderr

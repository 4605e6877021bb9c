"""The plugin's GUI in real QGIS (pytest-qgis, offscreen): load/unload, the dialog's
layer guesses, background runs through QgsProcessingAlgRunnerTask, cancel, preview."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QCoreApplication, QEvent, Qt
from qgis.PyQt.QtWidgets import QAction, QDialog, QDockWidget, QToolBar

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PAN = ROOT / "resources" / "sample" / "pan.tif"
SAMPLE_MS = ROOT / "resources" / "sample" / "ms.tif"
PROVIDER = "diffusion_pansharpening"


def flush_deletes():
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    QCoreApplication.processEvents()


def wait_for(job, timeout=120.0):
    """Spin the event loop until the background job has reported its end."""
    deadline = time.monotonic() + timeout
    while not job.done and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    assert job.done, "the background run did not finish in time"
    QCoreApplication.processEvents()


@pytest.fixture(autouse=True)
def fresh_settings(qgis_app):
    """Each test starts from the plugin's defaults (runs remember device, tile size, folder)."""
    from qgis.core import QgsSettings

    QgsSettings().remove("diffusion_pansharpening")
    yield
    QgsSettings().remove("diffusion_pansharpening")


@pytest.fixture
def plugin(qgis_iface, qgis_processing):
    from diffusion_pansharpening import classFactory

    instance = classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()
    flush_deletes()


@pytest.fixture
def layers(qgis_new_project, tmp_path):
    """The sample MS and PAN in a new project, plus a decoy: one MS band alone (a
    single-band raster at 30 m, which must not be mistaken for the 15 m PAN)."""
    for path in (SAMPLE_PAN, SAMPLE_MS):
        if not path.exists():
            pytest.fail(f"bundled sample {path} is missing (scripts/make_sample.py makes it)")
    decoy_path = str(tmp_path / "nir_only.tif")
    gdal.Translate(decoy_path, str(SAMPLE_MS), bandList=[4])
    decoy = QgsRasterLayer(decoy_path, "nir_only")
    ms = QgsRasterLayer(str(SAMPLE_MS), "ms")
    pan = QgsRasterLayer(str(SAMPLE_PAN), "pan")
    for layer in (decoy, ms, pan):
        assert layer.isValid()
        qgis_new_project.addMapLayer(layer)
    return pan, ms, decoy


@pytest.fixture
def controls(plugin, layers):
    dialog = plugin.show_dialog()
    yield dialog.controls
    if dialog.controls.job is not None:
        dialog.controls.cancel()
        wait_for(dialog.controls.job)


def choose(combo, value):
    index = combo.findData(value)
    assert index >= 0, value
    combo.setCurrentIndex(index)


# -- load / unload --------------------------------------------------------------------------
def test_load_and_unload_leave_nothing_behind(qgis_iface, qgis_processing):
    from diffusion_pansharpening import classFactory

    window = qgis_iface.mainWindow()
    registry = QgsApplication.processingRegistry()
    qgis_iface.addPluginToRasterMenu.reset_mock()  # the stub records every call
    qgis_iface.removePluginRasterMenu.reset_mock()
    plugin = classFactory(qgis_iface)
    assert registry.providerById(PROVIDER) is None  # nothing happens before initGui

    plugin.initGui()
    names = {"DiffusionPansharpeningRun", "DiffusionPansharpeningDockToggle"}
    assert {a.objectName() for a in window.findChildren(QAction)} >= names
    assert window.findChild(QToolBar, "DiffusionPansharpeningToolbar") is not None
    assert registry.providerById(PROVIDER) is not None
    plugin.dock_action.trigger()  # builds and shows the dock
    plugin.run_action.trigger()  # builds and shows the dialog
    assert window.findChild(QDockWidget, "DiffusionPansharpeningDock") is not None
    assert window.findChild(QDialog, "DiffusionPansharpeningDialog") is not None
    added = [call.args for call in qgis_iface.addPluginToRasterMenu.call_args_list]
    assert [args[1] for args in added] == [plugin.run_action, plugin.dock_action]

    plugin.unload()
    flush_deletes()
    assert not names & {a.objectName() for a in window.findChildren(QAction)}
    assert window.findChild(QToolBar, "DiffusionPansharpeningToolbar") is None
    assert window.findChild(QDockWidget, "DiffusionPansharpeningDock") is None
    assert window.findChild(QDialog, "DiffusionPansharpeningDialog") is None
    assert registry.providerById(PROVIDER) is None
    removed = [call.args for call in qgis_iface.removePluginRasterMenu.call_args_list]
    assert removed == added  # every menu entry taken back, from the same menu


def test_dock_action_tracks_the_dock(plugin, layers, qgis_iface):
    qgis_iface.mainWindow().show()  # as in QGIS: a dock is visible only in a shown window
    plugin.dock_action.setChecked(True)
    QCoreApplication.processEvents()
    assert plugin.dock.isUserVisible()
    plugin.dock.close()  # the dock's own close button
    QCoreApplication.processEvents()
    assert not plugin.dock_action.isChecked()


# -- the dialog ---------------------------------------------------------------------------
def test_dialog_lists_the_rasters_and_preselects_pan_and_ms(controls, layers):
    pan, ms, decoy = layers
    listed = {controls.pan_combo.layer(i).id() for i in range(controls.pan_combo.count())
              if controls.pan_combo.layer(i) is not None}
    assert listed == {pan.id(), ms.id(), decoy.id()}
    assert controls.pan_combo.currentLayer() is pan  # one band and the finest pixel
    assert controls.ms_combo.currentLayer() is ms
    assert controls.pair is not None and controls.pair.ratio == 2 and controls.pair.bands == 4
    assert "Ratio 2" in controls.pair_label.text()
    assert controls.run_button.isEnabled() and controls.preview_button.isEnabled()


def test_dialog_shows_a_bad_pair_and_blocks_run(controls, layers):
    pan, ms, decoy = layers
    controls.ms_combo.setLayer(pan)  # PAN as MS: same pixel size, one band
    assert controls.pair is None
    assert controls.pair_label.text()  # the engine's reason
    assert not controls.run_button.isEnabled()


def test_run_is_offered_exactly_for_methods_that_can_run(controls):
    from diffusion_pansharpening.engine.methods import list_methods

    for info in list_methods():
        choose(controls.method_combo, info.name)
        assert controls.run_button.isEnabled() == info.available, info.name
        if not info.available:  # says why, and how to fix it (e.g. install torch)
            assert info.why_unavailable[:40] in controls.method_label.text()


def test_run_adds_exactly_one_layer_above_the_inputs_in_true_colour(controls, layers, qgis_new_project,
                                                                    qgis_iface, tmp_path):
    from diffusion_pansharpening.plugin.core import settings

    pan, ms, decoy = layers
    before = set(qgis_new_project.mapLayers())
    choose(controls.method_combo, "brovey")
    choose(controls.device_combo, "cpu")
    controls.tile_spin.setValue(256)
    out = tmp_path / "sharp.tif"
    controls.output_widget.setFilePath(str(out))

    job = controls.run()
    wait_for(job)

    added = set(qgis_new_project.mapLayers()) - before
    assert len(added) == 1 and out.exists()
    layer = qgis_new_project.mapLayer(added.pop())
    assert layer.name() == "ms brovey"
    assert layer.source() == str(out)
    top = qgis_new_project.layerTreeRoot().findLayers()[0]
    assert top.layerId() == layer.id()  # above the inputs (pan was on top)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)
    low, high = layer.dataProvider().cumulativeCut(3, 0.02, 0.98, QgsRectangle(), int(QgsRasterLayer.SAMPLE_SIZE))
    assert renderer.redContrastEnhancement().minimumValue() == pytest.approx(low)
    assert renderer.redContrastEnhancement().maximumValue() == pytest.approx(high)
    assert low < high
    assert controls.progress.value() == 100
    assert any("ms brovey" in m for m in qgis_iface.messageBar().get_messages(Qgis.Success))
    # remembered for next time
    assert (settings.device(), settings.tile_size(), settings.output_folder()) == ("cpu", 256, str(tmp_path))


def test_a_temporary_output_is_used_when_no_file_is_given(controls, qgis_new_project):
    choose(controls.method_combo, "brovey")
    controls.output_widget.setFilePath("")
    job = controls.run()
    wait_for(job)
    assert job.layer is not None and job.layer.isValid()
    assert Path(job.layer.source()).exists()
    assert job.layer.source().endswith(".tif")


def test_cancelled_run_adds_no_layer_and_leaves_no_file(controls, qgis_new_project, qgis_iface, tmp_path):
    before = set(qgis_new_project.mapLayers())
    choose(controls.method_combo, "brovey")
    controls.tile_spin.setValue(64)
    controls.overlap_spin.setValue(8)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    controls.output_widget.setFilePath(str(out_dir / "cancelled.tif"))

    job = controls.run()
    assert controls.cancel_button.isEnabled() and not controls.run_button.isEnabled()
    controls.cancel_button.click()
    wait_for(job)

    assert set(qgis_new_project.mapLayers()) == before
    assert list(out_dir.iterdir()) == []
    assert job.layer is None
    assert any("Cancelled" in m for m in qgis_iface.messageBar().get_messages(Qgis.Info))
    assert controls.run_button.isEnabled()  # ready for the next run


def test_failure_shows_the_reason_in_the_message_bar(controls, qgis_new_project, qgis_iface, tmp_path):
    before = set(qgis_new_project.mapLayers())
    choose(controls.method_combo, "brovey")
    controls.output_widget.setFilePath(str(tmp_path / "missing_folder" / "out.tif"))
    job = controls.run()
    wait_for(job)
    assert set(qgis_new_project.mapLayers()) == before
    critical = qgis_iface.messageBar().get_messages(Qgis.Critical)
    assert any("does not exist" in m for m in critical), critical


# -- preview ----------------------------------------------------------------------------------
def test_preview_sharpens_the_canvas_extent_into_a_temporary_layer(controls, layers, qgis_iface,
                                                                   qgis_new_project):
    pan, ms, decoy = layers
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32616"))
    full = pan.extent()
    # 3 x 3 km inside the 9.8 x 4.6 km sample, room left for the canvas's aspect ratio
    canvas.setExtent(QgsRectangle(full.xMinimum() + 1500, full.yMinimum() + 800,
                                  full.xMinimum() + 4500, full.yMinimum() + 3800))
    shown = canvas.extent()
    before = set(qgis_new_project.mapLayers())
    choose(controls.method_combo, "brovey")
    controls.output_widget.setFilePath("")

    job = controls.preview()
    wait_for(job)
    assert not qgis_iface.messageBar().get_messages(Qgis.Critical)

    added = set(qgis_new_project.mapLayers()) - before
    assert len(added) == 1
    layer = qgis_new_project.mapLayer(added.pop())
    assert layer.name() == "ms brovey (preview)"
    extent = layer.extent()
    pixel = pan.rasterUnitsPerPixelX()
    # the canvas extent snapped outwards to whole PAN pixels
    assert extent.contains(shown)
    for got, want in ((extent.xMinimum(), shown.xMinimum()), (extent.xMaximum(), shown.xMaximum()),
                      (extent.yMinimum(), shown.yMinimum()), (extent.yMaximum(), shown.yMaximum())):
        assert abs(got - want) <= pixel + 1e-6

    # a second preview replaces the first
    second = controls.preview()
    wait_for(second)
    previews = [l for l in qgis_new_project.mapLayers().values() if l.name().endswith("(preview)")]
    assert [l.id() for l in previews] == [second.layer.id()]


def test_preview_goes_on_top_of_an_earlier_full_result_and_says_it_is_a_preview(controls, layers, qgis_iface,
                                                                                 qgis_new_project):
    """Defect 4 of issue 14: a preview used to be inserted above the inputs, under an
    earlier full result that hides it."""
    pan, ms, decoy = layers
    choose(controls.method_combo, "brovey")
    controls.output_widget.setFilePath("")
    full = controls.run()
    wait_for(full)
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(pan.crs())
    canvas.setExtent(pan.extent())
    preview = controls.preview()
    wait_for(preview)
    order = [node.layerId() for node in qgis_new_project.layerTreeRoot().findLayers()]
    assert order[:2] == [preview.layer.id(), full.layer.id()]
    added = qgis_iface.messageBar().get_messages(Qgis.Success)[-1]
    assert "Preview of the map canvas extent" in added and preview.layer.name() in added


# -- what the dialog tells an analyst (issue 14, item 6) -----------------------------------------
def test_the_method_label_says_why_with_family_weights_and_held_out_quality(controls):
    from diffusion_pansharpening.engine.families import choose_model, quality_line, read_metadata
    from diffusion_pansharpening.engine.methods import torch_available

    choice = choose_model(controls.pair)
    choose(controls.method_combo, "auto")
    text = controls.method_label.text()
    assert f"For these inputs: {choice.method}" in text and choice.family in text
    if not torch_available():
        assert "PyTorch is not installed" in text
        return
    quality = quality_line(read_metadata(choice.weights)["quality"])
    assert quality and f"Quality of {Path(choice.weights).name}: {quality}" in text
    choose(controls.method_combo, "ksdiff")  # a deep method chosen by hand says the same
    assert "Quality of landsat8-ksdiff.safetensors: held-out" in controls.method_label.text()
    choose(controls.method_combo, "brovey")  # a classical one: what it does
    assert controls.method_label.text() == controls.methods["brovey"].summary


def test_the_sensor_choice_reaches_the_pair_and_the_run_and_the_range_is_in_plain_words(controls):
    assert controls.sensor() == ""  # from the metadata until chosen
    assert "scale" not in controls.pair_label.text()
    assert "values 0\u2013" in controls.pair_label.text()
    choose(controls.sensor_combo, "IKONOS")
    assert controls.pair.sensor == "IKONOS" and controls.pair.scale == 2047
    assert "values 0\u20132047 (11-bit), sensor IKONOS" in controls.pair_label.text()
    assert controls.parameters()["SENSOR"] == "IKONOS"


def test_the_legend_of_an_undescribed_8_bit_result_names_each_band_once(controls, qgis_new_project, tmp_path):
    """Item 6 of issue 14: an MS without band descriptions (an 8-bit product) gave a
    legend of "Band 1: band 1 (Red)" for its blue band."""
    from qgis.core import QgsLayerTreeLayer

    def eight_bit(source, name, clear):
        path = str(tmp_path / name)
        gdal.Translate(path, str(source), outputType=gdal.GDT_Byte, scaleParams=[[0, 20000, 0, 255]])
        if clear:
            ds = gdal.Open(path, gdal.GA_Update)
            for b in range(ds.RasterCount):
                ds.GetRasterBand(b + 1).SetDescription("")
            ds = None
        layer = QgsRasterLayer(path, name[:-4])
        qgis_new_project.addMapLayer(layer)
        return layer

    controls.pan_combo.setLayer(eight_bit(SAMPLE_PAN, "pan8.tif", False))
    controls.ms_combo.setLayer(eight_bit(SAMPLE_MS, "ms8.tif", True))
    choose(controls.method_combo, "brovey")
    controls.output_widget.setFilePath(str(tmp_path / "sharp8.tif"))
    job = controls.run()
    wait_for(job)
    node = QgsLayerTreeLayer(job.layer)
    labels = [item.data(Qt.DisplayRole) for item in job.layer.legend().createLayerTreeModelLegendNodes(node)]
    # red, green, blue of a B, G, R, NIR product; a TIFF's first band reads Gray at least
    assert labels in (["Band 3", "Band 2", "Band 1"], ["Band 3", "Band 2", "Band 1 (Gray)"]), labels


@pytest.mark.parametrize("scale, words", [
    (255, "values 0\u2013255 (8-bit)"), (1023, "values 0\u20131023 (10-bit)"),
    (10000, "values 0\u201310000"), (1.0, "values 0\u20131"),
])
def test_the_value_range_in_plain_words(scale, words):
    from diffusion_pansharpening.plugin.ui.controls import value_range

    assert value_range(scale) == words


def test_the_two_toolbar_buttons_have_different_icons(plugin):
    def pixels(action):
        return action.icon().pixmap(32, 32).toImage()

    assert not plugin.run_action.icon().isNull() and not plugin.dock_action.icon().isNull()
    assert pixels(plugin.run_action) != pixels(plugin.dock_action)


# -- the output file --------------------------------------------------------------------------
def answer_next_question(button):
    """Click ``button`` on the next modal question box, once it is shown."""
    from qgis.PyQt.QtCore import QTimer
    from qgis.PyQt.QtWidgets import QApplication, QMessageBox

    asked = []

    def click():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            asked.append(box.text())
            box.button(button).click()
        else:
            QTimer.singleShot(20, click)

    QTimer.singleShot(20, click)
    return asked


def test_each_run_gets_a_new_output_name_and_the_first_result_stays(controls, layers, qgis_new_project,
                                                                    tmp_path):
    """Defect 2 of issue 14: the remembered output path was reused for the next run,
    replacing the data under the first result's layer."""
    choose(controls.method_combo, "brovey")
    first_path = tmp_path / "sharp.tif"
    controls.output_widget.setFilePath(str(first_path))
    first = controls.run()
    wait_for(first)
    proposed = controls.output_widget.filePath()
    assert proposed == str(tmp_path / "ms_brovey.tif") and not Path(proposed).exists()
    choose(controls.method_combo, "gsa")  # the proposal follows the method
    assert controls.output_widget.filePath() == str(tmp_path / "ms_gsa.tif")
    choose(controls.method_combo, "brovey")
    before = first_path.read_bytes()
    second = controls.run()
    wait_for(second)
    assert second.layer.source() == proposed and first.layer.source() == str(first_path)
    assert first_path.read_bytes() == before
    assert controls.output_widget.filePath() == str(tmp_path / "ms_brovey_2.tif")


def test_a_file_that_a_loaded_layer_reads_is_never_replaced(controls, layers, qgis_new_project, qgis_iface,
                                                           tmp_path):
    choose(controls.method_combo, "brovey")
    out = tmp_path / "sharp.tif"
    controls.output_widget.setFilePath(str(out))
    wait_for(controls.run())
    before, layers_before = out.read_bytes(), set(qgis_new_project.mapLayers())
    controls.output_widget.setFilePath(str(out))  # the user types the loaded result's name
    assert controls.run() is None
    warning = qgis_iface.messageBar().get_messages(Qgis.Warning)[-1]
    assert "is the layer 'ms brovey'" in warning
    assert out.read_bytes() == before and set(qgis_new_project.mapLayers()) == layers_before


def test_replacing_an_existing_file_is_asked_first(controls, layers, qgis_new_project, tmp_path):
    from qgis.PyQt.QtWidgets import QMessageBox

    choose(controls.method_combo, "brovey")
    out = tmp_path / "old.tif"
    out.write_bytes(b"an older result, not loaded")
    controls.output_widget.setFilePath(str(out))
    asked = answer_next_question(QMessageBox.No)
    assert controls.run() is None
    assert asked == [f"{out} already exists. Replace it?"]
    assert out.read_bytes() == b"an older result, not loaded"

    asked = answer_next_question(QMessageBox.Yes)
    job = controls.run()
    assert asked and job is not None
    wait_for(job)
    assert job.layer.source() == str(out) and gdal.Open(str(out)).RasterCount == 4


def test_preview_window_is_at_most_max_pixels_a_side_around_the_centre(layers):
    from diffusion_pansharpening.plugin.core.jobs import preview_extent

    pan, ms, decoy = layers
    whole = pan.extent()
    window = preview_extent(whole, pan.crs(), pan, max_pixels=100)
    assert window.width() == pytest.approx(100 * 15)
    assert window.height() == pytest.approx(100 * 15)
    assert window.center().x() == pytest.approx(whole.center().x())
    far = QgsRectangle(whole.xMaximum() + 1000, whole.yMinimum(), whole.xMaximum() + 2000, whole.yMaximum())
    assert preview_extent(far, pan.crs(), pan) is None


# -- pure helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize("names, rgb", [
    (["blue", "green", "red", "nir"], (3, 2, 1)),
    (["Band 1: Blue", "Band 2: Green", "Band 3: Red", "Band 4: NIR"], (3, 2, 1)),
    (["coastal", "blue", "green", "yellow", "red", "red edge", "nir1", "nir2"], (5, 3, 2)),
    (["Band 1", "Band 2", "Band 3", "Band 4", "Band 5", "Band 6", "Band 7", "Band 8"], (5, 3, 2)),
    (["red", "green", "blue"], (1, 2, 3)),
    (["Band 1", "Band 2", "Band 3", "Band 4"], (3, 2, 1)),
    (["pan"], None),
])
def test_true_colour_bands(names, rgb):
    from diffusion_pansharpening.plugin.core.style import true_colour_bands

    assert true_colour_bands(names) == rgb


# -- the real QGIS desktop --------------------------------------------------------------------
DESKTOP_CHECK = r'''
import json, traceback
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QEvent, QTimer
from qgis.PyQt.QtWidgets import QDockWidget, QToolBar
from qgis.utils import iface, loadPlugin, plugins, startPlugin, unloadPlugin

def state():
    window, menu = iface.mainWindow(), iface.rasterMenu()
    entries = {a.text(): [s.objectName() for s in a.menu().actions()] if a.menu() else []
               for a in menu.actions()}
    return {
        "raster_menu": entries,
        "toolbars": [t.objectName() for t in window.findChildren(QToolBar)],
        "docks": [d.objectName() for d in window.findChildren(QDockWidget)],
        "provider": QgsApplication.processingRegistry().providerById("diffusion_pansharpening") is not None,
    }

report = {}
try:
    report["before"] = state()
    report["started"] = loadPlugin("diffusion_pansharpening") and startPlugin("diffusion_pansharpening")
    plugin = plugins["diffusion_pansharpening"]
    plugin.dock_action.trigger()
    plugin.run_action.trigger()
    report["loaded"] = state()
    unloadPlugin("diffusion_pansharpening")
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    report["unloaded"] = state()
except Exception:
    report["error"] = traceback.format_exc()
with open(REPORT, "w") as handle:
    json.dump(report, handle)
QTimer.singleShot(0, iface.actionExit().trigger)
'''


def test_real_qgis_desktop_loads_and_unloads_the_plugin_cleanly(tmp_path):
    """QGIS itself (under Xvfb, a fresh profile): the Raster menu, toolbar, dock and
    provider appear with the plugin and are all gone after unloading it."""
    import json
    import os
    import subprocess
    import sysconfig

    report = tmp_path / "report.json"
    script = tmp_path / "check.py"
    script.write_text(f"REPORT = {str(report)!r}\n" + DESKTOP_CHECK)
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH")}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "home" / "xdg"),
               QGIS_PLUGINPATH=str(ROOT / ".build" / "plugins"),
               PYTHONPATH=os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT / ".build" / "plugins")]))
    done = subprocess.run(["xvfb-run", "-a", "qgis", "--noversioncheck", "--nologo", "--code", str(script)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert report.exists(), done.stdout + done.stderr
    state = json.loads(report.read_text())
    assert "error" not in state, state["error"]
    assert state["started"]
    loaded, before, after = state["loaded"], state["before"], state["unloaded"]
    assert loaded["raster_menu"]["&Diffusion Pansharpening"] == [
        "DiffusionPansharpeningRun", "DiffusionPansharpeningDockToggle"]
    assert "DiffusionPansharpeningToolbar" in loaded["toolbars"]
    assert "DiffusionPansharpeningDock" in loaded["docks"] and loaded["provider"]
    assert after == before and not after["provider"]

"""The controls the dialog and the dock share: inputs, checks, method, Run/Preview."""
from __future__ import annotations

import html
import math
import os
from typing import Optional

from qgis.core import Qgis, QgsMapLayerProxyModel, QgsProject
from qgis.gui import (
    QgsCollapsibleGroupBox,
    QgsFileWidget,
    QgsMapLayerComboBox,
    QgsRasterBandComboBox,
)
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core import settings
from ..core.explain import adapt_estimate, adapted_method, explain
from ..core.installer import PipInstall, packages_dir, torch_install
from ..core.i18n import tr
from ..core.jobs import PansharpenJob, output_value, preview_extent, referenced
from ..core.layers import free_output_path, gdal_source, guess_pan_ms, layers_using
from ..core.settings import DEVICES, SENSORS

AUTO = "auto"
TITLE = "Diffusion Pansharpening"


def _methods():
    from ...engine.methods import list_methods

    return list_methods()


def _torch_available() -> bool:
    from ...engine.deps import torch_available

    return torch_available()


class PansharpenControls(QWidget):
    """Layer pickers, pair summary, method, device, output, progress, Run/Preview/Cancel.

    ``jobFinished`` carries the added layer, or None after a cancel or a failure.
    """

    jobFinished = pyqtSignal(object)  # noqa: N815 (Qt naming)

    def __init__(self, iface, parent=None, project: Optional[QgsProject] = None):
        super().__init__(parent)
        self.iface = iface
        self.project = project or QgsProject.instance()
        self.job: Optional[PansharpenJob] = None
        self.installer = None  # a running PipInstall (the torch installer)
        self.pair = None  # engine PairInfo of the chosen layers, None when they do not fit
        self.methods = {info.name: info for info in _methods()}
        self._preview_layer_id = None
        self._proposed = ""  # the output path the controls proposed (not typed by the user)
        self._build()
        self._load_settings()
        self.guess_layers()
        self.project.layersAdded.connect(self._guess_if_empty)
        self.update_pair()

    # -- building -------------------------------------------------------------------
    def _build(self):
        self.pan_combo = QgsMapLayerComboBox(self)
        self.pan_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.pan_combo.setAllowEmptyLayer(True)
        self.pan_band = QgsRasterBandComboBox(self)
        self.ms_combo = QgsMapLayerComboBox(self)
        self.ms_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.ms_combo.setAllowEmptyLayer(True)
        self.pair_label = QLabel(self)
        self.pair_label.setWordWrap(True)
        self.pair_label.setTextFormat(Qt.RichText)

        self.method_combo = QComboBox(self)
        self.method_combo.addItem(tr("auto (the model that fits the inputs)"), AUTO)
        for name, info in self.methods.items():
            label = name if info.available else tr("{name} (unavailable)").format(name=name)
            self.method_combo.addItem(label, name)
            self.method_combo.setItemData(self.method_combo.count() - 1,
                                          info.summary if info.available else info.why_unavailable,
                                          Qt.ToolTipRole)
        self.method_label = QLabel(self)
        self.method_label.setWordWrap(True)
        self.method_label.setTextFormat(Qt.RichText)

        self.device_combo = QComboBox(self)
        for device in DEVICES:
            self.device_combo.addItem(device, device)
        self.sensor_combo = QComboBox(self)
        for value, label in SENSORS:
            self.sensor_combo.addItem(tr(label), value)
        self.sensor_combo.setToolTip(tr("Sets the sensor's MTF filters and value range; the "
                                        "raster's metadata tells it when it can."))

        self.adapt_check = QCheckBox(tr("Adapt the model to this scene"), self)
        self.adapt_check.setToolTip(tr("Fine-tunes the deep model on this scene's own PAN and MS "
                                       "before it runs (kept only when it gains on a held-out part; "
                                       "a rerun on the same scene reuses it). Preview does not adapt."))
        self.adapt_spin = QSpinBox(self)
        self.adapt_spin.setRange(10, 1800)
        self.adapt_spin.setSingleStep(30)
        self.adapt_spin.setSuffix(tr(" s"))
        self.adapt_spin.setValue(settings.DEFAULT_ADAPT_SECONDS)
        self.adapt_label = QLabel(self)
        self.adapt_label.setWordWrap(True)

        self.output_widget = QgsFileWidget(self)
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter(tr("GeoTIFF (*.tif *.TIF *.tiff)"))
        self.output_widget.lineEdit().setPlaceholderText(tr("[Save to temporary file]"))

        self.advanced = QgsCollapsibleGroupBox(tr("Advanced"), self)
        self.advanced.setCollapsed(True)
        self.weights_widget = QgsFileWidget(self.advanced)
        self.weights_widget.setFilter(tr("safetensors weights (*.safetensors)"))
        self.weights_widget.lineEdit().setPlaceholderText(tr("[Shipped weights]"))
        self.tile_spin = QSpinBox(self.advanced)
        self.tile_spin.setRange(settings.AUTO_TILE, 8192)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setSpecialValueText(tr("auto"))
        self.overlap_spin = QSpinBox(self.advanced)
        self.overlap_spin.setRange(0, 1024)
        self.overlap_spin.setValue(settings.DEFAULT_OVERLAP)
        advanced_form = QFormLayout(self.advanced)
        advanced_form.addRow(tr("Weights"), self.weights_widget)
        advanced_form.addRow(tr("Tile size"), self.tile_spin)
        advanced_form.addRow(tr("Tile overlap"), self.overlap_spin)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.preview_button = QPushButton(tr("Preview"), self)
        self.preview_button.setToolTip(tr("Sharpen only the map canvas extent, as a temporary layer."))
        self.run_button = QPushButton(tr("Run"), self)
        self.cancel_button = QPushButton(tr("Cancel"), self)
        self.cancel_button.setEnabled(False)
        self.install_button = QPushButton(tr("Install PyTorch for the deep methods\u2026"), self)
        self.install_button.setToolTip(tr("Installs the pinned PyTorch (CUDA when an NVIDIA GPU is "
                                          "found, else CPU) with pip into a folder of the plugin's own."))
        self.install_button.setVisible(not _torch_available())
        self.install_status = QLabel(self)  # pip's last line while it installs, then the result
        self.install_status.setWordWrap(True)
        self.install_status.setVisible(False)

        form = QFormLayout()
        form.addRow(tr("PAN"), self.pan_combo)
        form.addRow(tr("PAN band"), self.pan_band)
        form.addRow(tr("MS"), self.ms_combo)
        form.addRow(self.pair_label)
        form.addRow(tr("Sensor"), self.sensor_combo)
        form.addRow(tr("Method"), self.method_combo)
        form.addRow(self.method_label)
        form.addRow(self.install_button)
        form.addRow(tr("Device"), self.device_combo)
        adapt_row = QHBoxLayout()
        adapt_row.addWidget(self.adapt_check)
        adapt_row.addWidget(self.adapt_spin)
        adapt_row.addStretch(1)
        form.addRow(adapt_row)
        form.addRow(self.adapt_label)
        form.addRow(tr("Output"), self.output_widget)
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button)
        buttons.addStretch(1)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.advanced)
        layout.addWidget(self.progress)
        layout.addWidget(self.install_status)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self.pan_combo.layerChanged.connect(self.pan_band.setLayer)
        self.pan_combo.layerChanged.connect(self.update_pair)
        self.pan_band.bandChanged.connect(self.update_pair)
        self.ms_combo.layerChanged.connect(self.update_pair)
        self.sensor_combo.currentIndexChanged.connect(self.update_pair)
        self.method_combo.currentIndexChanged.connect(self.update_method)
        # the engine needs an overlap under half the tile (auto tiles are at least 256)
        self.tile_spin.valueChanged.connect(lambda tile: self.overlap_spin.setMaximum((tile or 256) // 2 - 1))
        self.weights_widget.fileChanged.connect(self.update_method)
        self.adapt_check.toggled.connect(self.update_adapt)
        self.adapt_spin.valueChanged.connect(self.update_adapt)
        self.run_button.clicked.connect(self.run)
        self.preview_button.clicked.connect(self.preview)
        self.cancel_button.clicked.connect(self.cancel)
        self.install_button.clicked.connect(self.install_torch)

    def _load_settings(self):
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(settings.device())))
        self.tile_spin.setValue(settings.tile_size())
        self.adapt_check.setChecked(settings.adapt())
        self.adapt_spin.setValue(settings.adapt_seconds())
        folder = settings.output_folder()
        if folder:
            self.output_widget.setDefaultRoot(folder)
            self._proposed = "-"  # propose a name in that folder once the pair is known

    def _save_settings(self):
        settings.set_device(self.device())
        settings.set_tile_size(self.tile_spin.value())
        settings.set_adapt(self.adapt_check.isChecked())
        settings.set_adapt_seconds(self.adapt_spin.value())
        output = self.output_widget.filePath().strip()
        if output:
            settings.set_output_folder(os.path.dirname(os.path.abspath(output)))

    # -- layers and the pair summary --------------------------------------------------
    def guess_layers(self) -> None:
        """Pre-select the likely PAN (one band, finest pixel) and MS."""
        order = self.project.layerTreeRoot().layerOrder()
        pan, ms = guess_pan_ms(order, self.project)
        if pan is not None:
            self.pan_combo.setLayer(pan)
        if ms is not None:
            self.ms_combo.setLayer(ms)

    def _guess_if_empty(self, *_):
        if self.pan_combo.currentLayer() is None or self.ms_combo.currentLayer() is None:
            self.guess_layers()

    def pan_layer(self):
        return self.pan_combo.currentLayer()

    def ms_layer(self):
        return self.ms_combo.currentLayer()

    def method(self) -> str:
        return self.method_combo.currentData() or AUTO

    def device(self) -> str:
        return self.device_combo.currentData() or "auto"

    def sensor(self) -> str:
        """The chosen sensor; empty: read from the raster's metadata."""
        return self.sensor_combo.currentData() or ""

    def update_pair(self, *_):
        """Ask the engine what the chosen pair gives, before anything runs."""
        from ...engine.errors import PansharpenError
        from ...engine.pipeline import inspect_pair

        self.pair = None
        pan, ms = self.pan_layer(), self.ms_layer()
        if pan is None or ms is None:
            self.pair_label.setText(tr("Choose a PAN and an MS raster."))
        else:
            try:
                band = self.pan_band.currentBand()
                self.pair = inspect_pair(gdal_source(pan), gdal_source(ms), band if band > 0 else None,
                                         self.sensor() or None)
            except (PansharpenError, ValueError) as error:
                self.pair_label.setText(_coloured(str(error), "#b00020"))
            else:
                self.pair_label.setText(pair_html(self.pair))
        self.update_method()

    def update_method(self, *_):
        """Why the chosen method runs (family, weights, held-out quality); unavailable
        ones say how to get them."""
        name = self.method()
        info = self.methods.get(name)
        weights = self.weights_widget.filePath().strip()
        try:
            lines = explain(self.pair, name, weights, self.methods)
        except Exception as error:  # noqa: BLE001 - a Qt slot must not raise
            lines = [str(error)]
        if info is not None and not info.available and not weights:
            self.method_label.setText("<br>".join(_coloured(line, "#b00020") for line in lines))
        else:
            self.method_label.setText("<br>".join(html.escape(line) for line in lines))
        if self._proposed and self.output_widget.filePath().strip() == self._proposed or (
                self._proposed == "-" and not self.output_widget.filePath().strip()):
            self.propose_output()  # follows the pair and method until the user types a name
        self.update_adapt()
        self._update_buttons()

    def update_adapt(self, *_):
        """Offer adaptation only when a deep model runs, with its estimated extra time."""
        weights = self.weights_widget.filePath().strip()
        try:
            name = adapted_method(self.pair, self.method(), weights, self.methods)
        except Exception:  # noqa: BLE001 - a Qt slot must not raise
            name = None
        self.adapt_check.setEnabled(name is not None)
        self.adapt_spin.setEnabled(name is not None and self.adapt_check.isChecked())
        if name is None:
            from ...engine.registry import adaptable

            self.adapt_label.setText(tr("Adaptation is for the deep models ({names}).").format(
                names=", ".join(adaptable())))
        elif self.adapt_check.isChecked():
            self.adapt_label.setText(adapt_estimate(self.pair, name, self.adapt_spin.value()))
        else:
            self.adapt_label.setText("")
        self.adapt_label.setVisible(bool(self.adapt_label.text()))

    def adapt_seconds(self) -> int:
        """The ADAPT parameter: the budget when adaptation is on and offered, else 0."""
        on = self.adapt_check.isEnabled() and self.adapt_check.isChecked()
        return self.adapt_spin.value() if on else 0

    def propose_output(self) -> str:
        """Put a new file name in the output field: ``<MS>_<method>.tif`` in the last
        folder, numbered past existing files and loaded layers; empty (a temporary file)
        until the user has chosen a folder once."""
        folder, ms = settings.output_folder(), self.ms_layer()
        if not folder or ms is None or not os.path.isdir(folder):
            return ""
        method = self.method()
        stem = f"{ms.name()}_{'pansharpened' if method == AUTO else method}"
        self._proposed = free_output_path(folder, stem, self.project)
        self.output_widget.setFilePath(self._proposed)
        return self._proposed

    def may_write(self, path: str) -> bool:
        """False (and says why) for a file a loaded layer reads; asks before replacing
        any other existing file."""
        if not path or not os.path.exists(path):
            return True
        using = layers_using(path, self.project)
        if using:
            self._message(tr("{path} is the layer '{name}': choose another output file, or "
                             "remove the layer first.").format(path=path, name=using[0].name()),
                          Qgis.Warning)
            return False
        answer = QMessageBox.question(
            self, tr(TITLE), tr("{path} already exists. Replace it?").format(path=path),
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _update_buttons(self):
        idle = self.job is None and self.installer is None
        info = self.methods.get(self.method())
        # an unavailable deep method may still run with the user's own weights file;
        # the engine then says precisely what is missing
        has_weights = bool(self.weights_widget.filePath().strip())
        runnable = self.pair is not None and (info is None or info.available or has_weights)
        for widget in (self.run_button, self.preview_button):
            widget.setEnabled(idle and runnable)
        self.cancel_button.setEnabled(not idle)

    # -- running ----------------------------------------------------------------------
    def parameters(self) -> dict:
        """The ``diffusion_pansharpening:pansharpen`` parameters the controls describe."""
        return {
            "PAN": self.pan_layer().id(),
            "MS": self.ms_layer().id(),
            "PAN_BAND": max(1, self.pan_band.currentBand()),
            "METHOD": self.method(),
            "WEIGHTS": self.weights_widget.filePath().strip() or None,
            "DEVICE": self.device(),
            "TILE_SIZE": self.tile_spin.value(),
            "OVERLAP": self.overlap_spin.value(),
            "SENSOR": self.sensor(),
            "ADAPT": self.adapt_seconds(),
            "OUTPUT": output_value(self.output_widget.filePath()),
        }

    def run(self) -> Optional[PansharpenJob]:
        """Sharpen the whole overlap in the background (never over a loaded layer's file;
        asks before replacing another file)."""
        if self.pair is None or not self.may_write(self.output_widget.filePath().strip()):
            return None
        self._save_settings()
        return self._start(self.parameters(), preview=False)

    def preview(self) -> Optional[PansharpenJob]:
        """Sharpen only what the map canvas shows (at most 2000 PAN pixels a side)."""
        pan = self.pan_layer()
        canvas = self.iface.mapCanvas()
        window = preview_extent(canvas.extent(), canvas.mapSettings().destinationCrs(), pan, self.project)
        if window is None:
            self._message(tr("The map canvas does not show the PAN raster: pan or zoom to it "
                             "and try again."), Qgis.Warning)
            return None
        parameters = self.parameters()
        parameters["EXTENT"] = referenced(window, pan.crs())
        parameters["OUTPUT"] = output_value("")
        parameters["ADAPT"] = 0  # a preview is for a quick look: it never fine-tunes
        return self._start(parameters, preview=True)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
        if self.installer is not None:
            self.installer.cancel()

    # -- installing PyTorch -------------------------------------------------------------
    def install_torch(self):
        """Ask, then install the pinned torch (CUDA build with an NVIDIA GPU) and safetensors."""
        requirements, options, what = torch_install()
        answer = QMessageBox.question(
            self, tr(TITLE), tr("Install {what} for the deep methods? pip installs it into {folder}; "
                                "nothing else changes.").format(what=what, folder=packages_dir()),
            QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        if answer != QMessageBox.Yes:
            return None
        return self.install_packages(requirements, options)

    def install_packages(self, requirements, options=(), target=None) -> Optional[PipInstall]:
        """Run pip in the background for ``requirements``; progress and Cancel as for a run."""
        if self.job is not None or self.installer is not None:
            return None
        installer = PipInstall(requirements, options, target, parent=self)
        installer.line.connect(self.install_status.setText)
        installer.finished.connect(self._on_installed)
        self.installer = installer
        self.progress.setRange(0, 0)  # busy: pip tells no percentage
        self.install_status.setVisible(True)
        self._update_buttons()
        installer.start()
        return installer

    def _on_installed(self, ok: bool, message: str):
        self.installer = None
        self.progress.setRange(0, 100)
        self.progress.setValue(100 if ok else 0)
        self.install_status.setText(message)
        if ok:
            self.methods = {info.name: info for info in _methods()}
            self._refresh_method_labels()
            self.install_button.setVisible(not _torch_available())
        self._message(message, Qgis.Success if ok else Qgis.Warning)
        self.update_method()

    def _refresh_method_labels(self):
        for index in range(self.method_combo.count()):
            info = self.methods.get(self.method_combo.itemData(index))
            if info is not None:
                self.method_combo.setItemText(index, info.name if info.available
                                              else tr("{name} (unavailable)").format(name=info.name))
                self.method_combo.setItemData(index, info.summary if info.available else info.why_unavailable,
                                              Qt.ToolTipRole)

    def _start(self, parameters: dict, preview: bool) -> Optional[PansharpenJob]:
        if self.job is not None or self.pair is None:
            return None
        job = PansharpenJob(parameters, self.pan_layer(), self.ms_layer(), preview, self.project, self)
        job.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        job.succeeded.connect(self._on_succeeded)
        job.cancelled.connect(self._on_cancelled)
        job.failed.connect(self._on_failed)
        self.job = job
        self.progress.setValue(0)
        self._update_buttons()
        job.start()
        return job

    def _finish(self, layer):
        preview = self.job.preview if self.job else False
        self.job = None
        self._update_buttons()
        if layer is not None and preview:
            self._replace_preview(layer)
        self.jobFinished.emit(layer)

    def _replace_preview(self, layer):
        """Keep one preview layer: a new preview removes the previous one."""
        old = self._preview_layer_id and self.project.mapLayer(self._preview_layer_id)
        if old:
            self.project.removeMapLayer(old.id())
        self._preview_layer_id = layer.id()

    def _on_succeeded(self, layer):
        self.progress.setValue(100)
        if self.job is not None and self.job.preview:
            self._message(tr("Preview of the map canvas extent added on top as '{name}' (a temporary "
                             "layer; Run sharpens the whole overlap).").format(name=layer.name()),
                          Qgis.Success)
        else:
            reason = self.job.reason if self.job is not None else ""
            self._message(" ".join([tr("Added '{name}'.").format(name=layer.name()), reason]).strip(),
                          Qgis.Success)
            if self.output_widget.filePath().strip():
                self.propose_output()  # the next run never lands on this result
        self._finish(layer)

    def _on_cancelled(self):
        self.progress.setValue(0)
        self._message(tr("Cancelled: nothing was written."), Qgis.Info)
        self._finish(None)

    def _on_failed(self, reason: str):
        self.progress.setValue(0)
        self._message(reason, Qgis.Critical)
        self._finish(None)

    def _message(self, text: str, level) -> None:
        if self.iface is not None:
            self.iface.messageBar().pushMessage(tr(TITLE), text, level, 10 if level != Qgis.Critical else 0)

    def shutdown(self) -> None:
        """Cancel a running job and stop following the project (plugin unload)."""
        self.cancel()
        try:
            self.project.layersAdded.disconnect(self._guess_if_empty)
        except TypeError:
            pass


def value_range(scale: float) -> str:
    """The range the engine reads as "full brightness", in an analyst's words:
    2047 -> "values 0-2047 (11-bit)"."""
    bits = math.log2(scale + 1) if scale >= 255 else 0  # 8 bits and more; not 0-1 floats
    text = tr("values 0\u2013{top:g}").format(top=scale)
    if bits and bits == int(bits):
        text += " " + tr("({bits}-bit)").format(bits=int(bits))
    return text


def pair_html(pair) -> str:
    """What the chosen pair gives, as rich text; the engine's notes (warnings) in orange."""
    from ...engine.arrays import percent  # 99.8 %, never rounded up to 100 %

    lines = [
        tr("Ratio {ratio}, {bands} bands ({names}), output {width} x {height} pixels in {crs}.").format(
            ratio=pair.ratio, bands=pair.bands, names=", ".join(pair.band_names),
            width=pair.width, height=pair.height, crs=pair.crs),
        tr("Overlap: {overlap} of the PAN; {data_type} data, {values}").format(
            overlap=percent(pair.overlap_fraction), data_type=pair.data_type, values=value_range(pair.scale))
        + (tr(", sensor {sensor}").format(sensor=pair.sensor) if pair.sensor else "") + ".",
    ]
    return summary_html("\n".join(lines + [f"Note: {warning}" for warning in pair.warnings]))


def summary_html(summary: str) -> str:
    """The engine's pair summary as rich text, its "Note:" lines (warnings) in orange."""
    lines = []
    for line in summary.splitlines():
        if line.startswith("Note:"):
            lines.append(_coloured("\u26a0 " + line[len("Note:"):].strip(), "#b36b00"))
        else:
            lines.append(html.escape(line))
    return "<br>".join(lines)


def _coloured(text: str, colour: str) -> str:
    return f"<span style='color:{colour}'>{html.escape(text)}</span>"

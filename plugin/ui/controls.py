"""The controls the dialog and the dock share: inputs, checks, method, Run/Preview."""
from __future__ import annotations

import html
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
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core import settings
from ..core.i18n import tr
from ..core.jobs import PansharpenJob, output_value, preview_extent, referenced
from ..core.layers import gdal_source, guess_pan_ms
from ..core.settings import DEVICES

AUTO = "auto"
TITLE = "Diffusion Pansharpening"


def _methods():
    from ...engine.methods import list_methods

    return list_methods()


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
        self.pair = None  # engine PairInfo of the chosen layers, None when they do not fit
        self.methods = {info.name: info for info in _methods()}
        self._preview_layer_id = None
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

        form = QFormLayout()
        form.addRow(tr("PAN"), self.pan_combo)
        form.addRow(tr("PAN band"), self.pan_band)
        form.addRow(tr("MS"), self.ms_combo)
        form.addRow(self.pair_label)
        form.addRow(tr("Method"), self.method_combo)
        form.addRow(self.method_label)
        form.addRow(tr("Device"), self.device_combo)
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
        layout.addLayout(buttons)
        layout.addStretch(1)

        self.pan_combo.layerChanged.connect(self.pan_band.setLayer)
        self.pan_combo.layerChanged.connect(self.update_pair)
        self.pan_band.bandChanged.connect(self.update_pair)
        self.ms_combo.layerChanged.connect(self.update_pair)
        self.method_combo.currentIndexChanged.connect(self.update_method)
        # the engine needs an overlap under half the tile (auto tiles are at least 256)
        self.tile_spin.valueChanged.connect(lambda tile: self.overlap_spin.setMaximum((tile or 256) // 2 - 1))
        self.weights_widget.fileChanged.connect(self.update_method)
        self.run_button.clicked.connect(self.run)
        self.preview_button.clicked.connect(self.preview)
        self.cancel_button.clicked.connect(self.cancel)

    def _load_settings(self):
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(settings.device())))
        self.tile_spin.setValue(settings.tile_size())
        folder = settings.output_folder()
        if folder:
            self.output_widget.setDefaultRoot(folder)

    def _save_settings(self):
        settings.set_device(self.device())
        settings.set_tile_size(self.tile_spin.value())
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
                self.pair = inspect_pair(gdal_source(pan), gdal_source(ms), band if band > 0 else None)
            except (PansharpenError, ValueError) as error:
                self.pair_label.setText(_coloured(str(error), "#b00020"))
            else:
                self.pair_label.setText(summary_html(self.pair.summary()))
        self.update_method()

    def update_method(self, *_):
        """One line about the chosen method; unavailable ones say how to get them."""
        name = self.method()
        if name == AUTO:
            if self.pair is not None:
                from ...engine.methods import default_method

                chosen = default_method(self.pair)
                info = self.methods.get(chosen)
                text = tr("For these inputs: {name}").format(name=chosen)
                if info is not None:
                    text += " \u2014 " + info.summary
                self.method_label.setText(html.escape(text))
            else:
                self.method_label.setText(html.escape(tr("The model that fits the inputs.")))
        else:
            info = self.methods[name]
            if info.available:
                self.method_label.setText(html.escape(info.summary))
            else:
                self.method_label.setText(_coloured(info.why_unavailable, "#b00020"))
        self._update_buttons()

    def _update_buttons(self):
        idle = self.job is None
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
            "OUTPUT": output_value(self.output_widget.filePath()),
        }

    def run(self) -> Optional[PansharpenJob]:
        """Sharpen the whole overlap in the background."""
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
        return self._start(parameters, preview=True)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

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
        self._message(tr("Added '{name}'.").format(name=layer.name()), Qgis.Success)
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

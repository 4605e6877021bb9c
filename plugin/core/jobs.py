"""Background runs of ``diffusion_pansharpening:pansharpen`` for the dialog and dock.

The GUI never calls the engine itself: it builds the algorithm's parameters and runs
the very algorithm the toolbox and ``qgis_process`` run, in a
``QgsProcessingAlgRunnerTask`` (so QGIS stays responsive and the run shows in the
task manager). The result layer is then added above the inputs and styled.
"""
from __future__ import annotations

import os
from typing import Optional

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsReferencedRectangle,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .i18n import tr
from .style import apply_true_colour, band_names, names_or

ALGORITHM_ID = "diffusion_pansharpening:pansharpen"
PREVIEW_MAX_PIXELS = 2000


class _Feedback(QgsProcessingFeedback):
    """Keeps the errors the algorithm reports, for the message bar."""

    def __init__(self):
        super().__init__()
        self.errors = []

    def reportError(self, error, fatalError=False):  # noqa: N802, N803 (QGIS's names)
        self.errors.append(error)
        super().reportError(error, fatalError)


def preview_extent(canvas_extent: QgsRectangle, canvas_crs: QgsCoordinateReferenceSystem,
                   pan: QgsRasterLayer, project: Optional[QgsProject] = None,
                   max_pixels: int = PREVIEW_MAX_PIXELS) -> Optional[QgsRectangle]:
    """The window a preview sharpens, in the PAN's CRS; None if it misses the PAN.

    The canvas extent is clipped to the PAN, then to at most ``max_pixels`` PAN
    pixels a side around its centre, so a preview of a zoomed-out scene still takes
    seconds (the full run is for the whole scene).
    """
    project = project or QgsProject.instance()
    rect = QgsRectangle(canvas_extent)
    if canvas_crs.isValid() and canvas_crs != pan.crs():
        try:
            transform = QgsCoordinateTransform(canvas_crs, pan.crs(), project.transformContext())
            rect = transform.transformBoundingBox(rect)
        except QgsCsException:
            return None
    rect = rect.intersect(pan.extent())
    if rect.isEmpty():
        return None
    half_w = max_pixels * pan.rasterUnitsPerPixelX() / 2.0
    half_h = max_pixels * pan.rasterUnitsPerPixelY() / 2.0
    centre = rect.center()
    return rect.intersect(QgsRectangle(centre.x() - half_w, centre.y() - half_h,
                                       centre.x() + half_w, centre.y() + half_h))


def referenced(rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> QgsReferencedRectangle:
    """An EXTENT parameter value that carries its CRS."""
    return QgsReferencedRectangle(rect, crs)


def add_above(layer: QgsMapLayer, inputs, project: Optional[QgsProject] = None) -> None:
    """Add ``layer`` to the project just above the top-most of ``inputs`` in the legend
    (on top of the legend when ``inputs`` is empty or none of them is in it)."""
    project = project or QgsProject.instance()
    project.addMapLayer(layer, False)
    root = project.layerTreeRoot()
    ids = {item.id() for item in inputs if item is not None}
    for node in root.findLayers():  # depth-first: legend order, top first
        if node.layerId() in ids:
            parent = node.parent()
            if isinstance(parent, QgsLayerTreeGroup):
                parent.insertLayer(parent.children().index(node), layer)
                return
    root.insertLayer(0, layer)


class PansharpenJob(QObject):
    """One background run; emits exactly one of ``succeeded``, ``cancelled``, ``failed``."""

    progressChanged = pyqtSignal(float)  # noqa: N815 (Qt naming)
    succeeded = pyqtSignal(object)  # the QgsRasterLayer added to the project
    cancelled = pyqtSignal()
    failed = pyqtSignal(str)

    def __init__(self, parameters: dict, pan: QgsRasterLayer, ms: QgsRasterLayer,
                 preview: bool = False, project: Optional[QgsProject] = None, parent=None):
        super().__init__(parent)
        self.parameters = dict(parameters)
        self.pan, self.ms, self.preview = pan, ms, preview
        self.project = project or QgsProject.instance()
        self.task = None
        self.layer = None
        self.reason = ""  # the engine's why: auto's choice, the check, the adaptation
        self._context = None
        self._feedback = None
        self.done = False
        self._user_cancelled = False

    def start(self) -> QgsProcessingAlgRunnerTask:
        algorithm = QgsApplication.processingRegistry().algorithmById(ALGORITHM_ID)
        if algorithm is None:
            raise RuntimeError(tr("The Diffusion Pansharpening Processing provider is not loaded."))
        # the task keeps pointers to the context and feedback: they live here
        self._context = QgsProcessingContext()
        self._context.setProject(self.project)
        self._feedback = _Feedback()
        self._feedback.progressChanged.connect(self.progressChanged)
        self.task = QgsProcessingAlgRunnerTask(algorithm, self.parameters, self._context, self._feedback)
        self.task.executed.connect(self._on_executed)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        if self.task is not None and not self.done:
            self._user_cancelled = True
            self.task.cancel()

    def _name(self, method: str) -> str:
        name = f"{self.ms.name()} {method}"
        return name + " " + tr("(preview)") if self.preview else name

    def _on_executed(self, ok: bool, results: dict) -> None:
        self.done = True
        try:
            self._conclude(ok, results)
        except Exception as error:  # noqa: BLE001 - an exception in a Qt slot aborts QGIS
            self.failed.emit(tr("Could not add the result: {error}").format(error=error))

    def _conclude(self, ok: bool, results: dict) -> None:
        if not ok:
            # a failed prepare also cancels the task's feedback: only the user's
            # own cancel counts as a cancel
            if self._user_cancelled:
                # a cancel that lands after the engine's last tile still means "no file"
                _discard(results.get("OUTPUT"))
                self.cancelled.emit()
            else:
                self.failed.emit(self._feedback.errors[-1] if self._feedback.errors
                                 else tr("The run failed; see the Processing log."))
            return
        output = results.get("OUTPUT")
        layer = QgsRasterLayer(output, self._name(results.get("METHOD_USED") or ""), "gdal")
        if not layer.isValid():
            self.failed.emit(tr("The result {path} could not be opened.").format(path=output))
            return
        apply_true_colour(layer, names_or(layer, band_names(self.ms)))
        # a preview goes on top of everything (an earlier full result would hide it)
        add_above(layer, () if self.preview else (self.pan, self.ms), self.project)
        self.layer = layer
        self.reason = results.get("REASON") or ""
        self.succeeded.emit(layer)


def _discard(path) -> None:
    if path and os.path.isfile(path):
        os.remove(path)


def output_value(path: str) -> str:
    """The OUTPUT parameter for a path the user typed; empty means a temporary file."""
    return path.strip() or QgsProcessing.TEMPORARY_OUTPUT

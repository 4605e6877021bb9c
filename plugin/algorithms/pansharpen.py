"""Processing algorithm ``diffusion_pansharpening:pansharpen``.

Layers are resolved in ``prepareAlgorithm`` (always on the main thread: QGIS layers
are not thread-safe); only plain values (GDAL source names, numbers, a window in the
PAN's CRS) reach ``processAlgorithm``, which may run in a worker thread and hands
everything to the engine.
"""
from __future__ import annotations

import html

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtGui import QIcon

from ..core.i18n import tr
from ..core.layers import gdal_source
from ..core.style import TrueColourPostProcessor, band_names
from ..core.settings import AUTO_TILE, DEFAULT_OVERLAP, DEVICES

AUTO = "auto"


def method_infos():
    """The engine's methods (a deep method without torch comes back unavailable)."""
    from ...engine.methods import list_methods

    return list_methods()


def method_choices() -> list:
    """The METHOD enum's values: ``auto`` first, then the engine's names."""
    return [AUTO] + [info.name for info in method_infos()]


def methods_help_html() -> str:
    """One line per method from its card, and why a method cannot run here."""
    rows = []
    for info in method_infos():
        line = f"<b>{html.escape(info.name)}</b> ({html.escape(info.kind)}): {html.escape(info.summary)}"
        if not info.available:
            line += "<br><i>" + tr("Unavailable here: ") + html.escape(info.why_unavailable) + "</i>"
        rows.append(f"<li>{line}</li>")
    return "<ul>" + "".join(rows) + "</ul>"


class PansharpenAlgorithm(QgsProcessingAlgorithm):
    PAN = "PAN"
    MS = "MS"
    PAN_BAND = "PAN_BAND"
    METHOD = "METHOD"
    WEIGHTS = "WEIGHTS"
    DEVICE = "DEVICE"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    FLOAT32 = "FLOAT32"
    FULL_PRECISION = "FULL_PRECISION"
    EXTENT = "EXTENT"
    SENSOR = "SENSOR"
    OUTPUT = "OUTPUT"
    OUT_METHOD = "METHOD_USED"
    OUT_SECONDS = "SECONDS"

    def __init__(self):
        super().__init__()
        self._request = None  # keyword arguments of engine.pipeline.SharpenRequest
        self._ms_name = ""
        self._ms_band_names = []
        self._method_used = ""

    # -- identity -------------------------------------------------------------------
    def createInstance(self):  # noqa: N802 (QGIS's names throughout)
        return PansharpenAlgorithm()

    def name(self):
        return "pansharpen"

    def displayName(self):  # noqa: N802
        return tr("Pansharpen")

    def shortDescription(self):  # noqa: N802
        return tr("Fuse a panchromatic band and a multispectral raster into a sharpened "
                  "multispectral raster on the PAN grid.")

    def icon(self):
        from ..provider import ICON_PATH

        return QIcon(ICON_PATH)

    def tags(self):
        return tr("pansharpening,fusion,panchromatic,multispectral,diffusion,fose,ksdiff,brovey").split(",")

    def shortHelpString(self):  # noqa: N802
        return (
            tr("Sharpens the multispectral raster (MS) with the panchromatic band (PAN). "
               "The result lies on the PAN grid over the area both rasters cover, in the "
               "PAN's CRS, with the MS bands.")
            + "<h3>" + tr("Methods") + "</h3>"
            + tr("<b>auto</b> picks the shipped model that fits the inputs (band count, "
                 "ratio, sensor) and falls back to a classical method when none fits.")
            + methods_help_html()
            + "<h3>" + tr("Parameters") + "</h3><ul>"
            + "<li>" + tr("<b>PAN band</b>: the band of the PAN raster to use (1-based).") + "</li>"
            + "<li>" + tr("<b>Weights</b>: your own .safetensors file for a deep method "
                          "(for example trained with this plugin's training pipeline).") + "</li>"
            + "<li>" + tr("<b>Device</b>: auto uses a CUDA GPU when one is usable, else the CPU.") + "</li>"
            + "<li>" + tr("<b>Tile size / overlap</b>: large rasters stream in tiles of this "
                          "many PAN pixels a side; the overlap hides seams. 0 lets the engine "
                          "choose (1024, or what fits the CPU cache for a deep model); lower "
                          "it if memory runs out.") + "</li>"
            + "<li>" + tr("<b>Extent</b>: only sharpen this window (used by Preview).") + "</li>"
            + "<li>" + tr("<b>Sensor</b>: WV2, WV3, QB, IKONOS, GE1 or GF2 sets the MTF gains and "
                          "the radiometric scale; empty reads them from the raster's metadata "
                          "or uses generic values.") + "</li>"
            + "</ul>"
        )

    def helpUrl(self):  # noqa: N802
        return "https://example.invalid/diffusion_pansharpening"

    # -- parameters -----------------------------------------------------------------
    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.PAN, tr("Panchromatic (PAN) raster")))
        self.addParameter(QgsProcessingParameterRasterLayer(self.MS, tr("Multispectral (MS) raster")))
        self.addParameter(QgsProcessingParameterNumber(
            self.PAN_BAND, tr("PAN band"), QgsProcessingParameterNumber.Integer, 1, False, 1))
        self.addParameter(QgsProcessingParameterEnum(
            self.METHOD, tr("Method"), method_choices(), False, AUTO, False, True))
        self.addParameter(QgsProcessingParameterFile(
            self.WEIGHTS, tr("Model weights (.safetensors, optional)"),
            QgsProcessingParameterFile.File, "", None, True,
            tr("safetensors weights (*.safetensors)")))
        self.addParameter(QgsProcessingParameterEnum(
            self.DEVICE, tr("Device"), list(DEVICES), False, "auto", False, True))

        tile = QgsProcessingParameterNumber(
            self.TILE_SIZE, tr("Tile size (PAN pixels; 0: chosen for the method and device)"),
            QgsProcessingParameterNumber.Integer, AUTO_TILE, False, 0, 8192)
        overlap = QgsProcessingParameterNumber(
            self.OVERLAP, tr("Tile overlap (PAN pixels)"), QgsProcessingParameterNumber.Integer,
            DEFAULT_OVERLAP, False, 0, 1024)
        float32 = QgsProcessingParameterBoolean(
            self.FLOAT32, tr("Write 32-bit float (default: the MS data type)"), False)
        full_precision = QgsProcessingParameterBoolean(
            self.FULL_PRECISION, tr("Deep models in full precision (slower; default: float16 on a GPU, "
                                    "bfloat16 on a CPU that has it)"), False)
        extent = QgsProcessingParameterExtent(
            self.EXTENT, tr("Only sharpen this extent"), None, True)
        sensor = QgsProcessingParameterString(
            self.SENSOR, tr("Sensor (MTF gains and scale; empty: from the metadata)"), "", False, True)
        for parameter in (tile, overlap, float32, full_precision, extent, sensor):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)

        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, tr("Sharpened raster"), QgsProcessing.TEMPORARY_OUTPUT))
        self.addOutput(QgsProcessingOutputString(self.OUT_METHOD, tr("Method used")))
        self.addOutput(QgsProcessingOutputNumber(self.OUT_SECONDS, tr("Run time (s)")))

    # -- main thread: layers to plain values ----------------------------------------
    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        pan = self.parameterAsRasterLayer(parameters, self.PAN, context)
        ms = self.parameterAsRasterLayer(parameters, self.MS, context)
        if pan is None or ms is None:
            raise QgsProcessingException(
                tr("Choose both a PAN and an MS raster (a layer or a file)."))
        try:
            pan_source, ms_source = gdal_source(pan), gdal_source(ms)
        except ValueError as error:
            raise QgsProcessingException(str(error)) from error

        method = self.parameterAsEnumString(parameters, self.METHOD, context) or AUTO
        self._ms_name, self._ms_band_names = ms.name(), band_names(ms)

        window = None
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, pan.crs())
            if not rect.isNull() and not rect.isEmpty():
                window = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())

        self._request = dict(
            pan=pan_source,
            ms=ms_source,
            output=self.parameterAsOutputLayer(parameters, self.OUTPUT, context),
            method=method,
            pan_band=self.parameterAsInt(parameters, self.PAN_BAND, context),
            weights=self.parameterAsFile(parameters, self.WEIGHTS, context) or None,
            device=self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto",
            tile=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
            # Processing asks before overwriting (file dialog); a cancelled run
            # leaves the old file in place because the engine writes under a
            # temporary name first.
            overwrite=True,
            float32=self.parameterAsBoolean(parameters, self.FLOAT32, context),
            half=not self.parameterAsBoolean(parameters, self.FULL_PRECISION, context),
            extent=window,
            sensor=self.parameterAsString(parameters, self.SENSOR, context).strip() or None,
        )
        return True

    # -- worker thread: the engine does the job -------------------------------------
    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ...engine.errors import Cancelled, PansharpenError
        from ...engine.pipeline import SharpenRequest, sharpen

        request = SharpenRequest(**self._request)
        try:
            result = sharpen(
                request,
                progress=lambda fraction: feedback.setProgress(100.0 * fraction),
                cancelled=feedback.isCanceled,
                log=feedback.pushInfo,  # the engine's warnings about the pair come here too
            )
        except Cancelled as error:
            raise QgsProcessingException(tr("Cancelled: no file was written.")) from error
        except PansharpenError as error:
            raise QgsProcessingException(str(error)) from error
        self._method_used = result.method
        feedback.pushInfo(tr("Method: {method}; {seconds:.1f} s.").format(
            method=result.method, seconds=result.seconds))
        return {
            self.OUTPUT: result.output,
            self.OUT_METHOD: result.method,
            self.OUT_SECONDS: result.seconds,
        }

    # -- main thread again: how the toolbox shows the result ------------------------
    def postProcessAlgorithm(self, context, feedback):  # noqa: N802
        """Name the loaded result "<MS layer> <method>" and show it in true colour."""
        output = self._request["output"] if self._request else None
        if output and context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = f"{self._ms_name} {self._method_used}".strip()
            details.forceName = True
            details.setPostProcessor(TrueColourPostProcessor.create(self._ms_band_names))
        return {}

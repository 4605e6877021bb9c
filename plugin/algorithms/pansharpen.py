"""Processing algorithm ``diffusion_pansharpening:pansharpen``.

Layers are resolved in ``prepareAlgorithm`` (always on the main thread: QGIS layers
are not thread-safe); only plain values (GDAL source names, numbers, a window in the
PAN's CRS) reach ``processAlgorithm``, which may run in a worker thread and hands
everything to the engine.

The OUTPUT is resolved in ``processAlgorithm``, with the context it is given: in a
background task (the Processing Toolbox) QGIS runs the algorithm with a copy of the
context and afterwards replaces the caller's "layers to load" with the copy's, so an
output resolved in ``prepareAlgorithm`` would never be loaded.
"""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
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

from ...engine import sensors
from ...engine.anchor import ANCHOR, ANCHOR_FALLBACK, ANCHOR_METHOD, HAZE_SHARE
from ...engine.families import CLASSICAL_CANDIDATES
from ..core.i18n import tr
from ..core.layers import gdal_source, layers_using
from ..core.style import TrueColourPostProcessor, band_names
from ..core.settings import AUTO_TILE, DEFAULT_OVERLAP, DEVICES
from ..paths import ICON_PATH, help_url  # not from ..provider: the provider imports this module

AUTO = "auto"
MAX_ADAPT_SECONDS = 1800.0  # the ADAPT parameter's maximum (half an hour of fine-tuning)


def method_infos():
    """The engine's methods (a deep method without torch comes back unavailable)."""
    from ...engine.methods import list_methods

    return list_methods()


def method_choices() -> list:
    """The METHOD enum's values: ``auto`` first, then the engine's names."""
    return [AUTO] + [info.name for info in method_infos()]


def methods_help_text() -> str:
    """One line per method from its card, and why a method cannot run here (plain text:
    ``qgis_process help`` prints it as it is, the toolbox shows each line as a paragraph)."""
    lines = []
    for number, info in enumerate(method_infos(), start=1):
        line = f"  {number}: {info.name} ({info.kind}): {info.summary}"
        if not info.available:
            line += " " + tr("Unavailable here: ") + info.why_unavailable
        lines.append(line)
    return "\n".join(lines)


def enum_value(parameter, value):
    """An enum parameter's option name for ``value``: the name itself, or its number as
    ``qgis_process help`` lists it (``METHOD=3``); None when it is neither."""
    options = parameter.options()
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return options[value] if 0 <= value < len(options) else None
    return value if value in options else None


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
    COG = "COG"
    ADAPT = "ADAPT"
    CHECK = "CHECK"
    ANCHOR = "ANCHOR"
    REGISTER = "REGISTER"
    OVERVIEWS = "OVERVIEWS"
    OUTPUT = "OUTPUT"
    OUT_METHOD = "METHOD_USED"
    OUT_SECONDS = "SECONDS"
    OUT_REASON = "REASON"

    def __init__(self):
        super().__init__()
        self._request = None  # keyword arguments of engine.pipeline.SharpenRequest
        self._ms_name = ""
        self._ms_band_names = []
        self._method_used = ""
        self._output = ""  # resolved in processAlgorithm

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
        return QIcon(ICON_PATH)

    def tags(self):
        return tr("pansharpening,fusion,panchromatic,multispectral,diffusion,fose,ksdiff,brovey").split(",")

    def shortHelpString(self):  # noqa: N802
        lines = [
            tr("Sharpens the multispectral raster (MS) with the panchromatic band (PAN). "
               "The result lies on the PAN grid over the area both rasters cover, in the "
               "PAN's CRS, with the MS bands."),
            tr("Methods (METHOD takes the name or the number):"),
            "  0: " + tr("auto: the shipped model that fits the inputs (band count, ratio, "
                         "sensor); a classical method when none fits."),
            methods_help_text(),
            tr("Parameters:"),
            "  " + tr("PAN band: the band of the PAN raster to use (1-based)."),
            "  " + tr("Weights: your own .safetensors file for a deep method (for example "
                      "trained with this plugin's training pipeline)."),
            "  " + tr("Device: auto uses a CUDA GPU when one is usable, else the CPU."),
            "  " + tr("Tile size / overlap: large rasters stream in tiles of this many PAN "
                      "pixels a side; the overlap hides seams. 0 lets the engine choose (1024, "
                      "or what fits the CPU cache for a deep model); lower it if memory runs out."),
            "  " + tr("Extent: only sharpen this window (used by Preview)."),
            "  " + tr("Sensor: {sensors} (or an alias such as WorldView-3) sets the MTF gains "
                      "and the radiometric scale; empty reads them from the raster's metadata or "
                      "uses generic values.").format(sensors=sensors.names()),
            "  " + tr("Adapt the model to this scene: seconds of fine-tuning the deep model on "
                      "the scene's own PAN and MS before it runs (its output, blurred by the "
                      "sensor's MTF and decimated, must give back the MS: no ground truth needed); "
                      "0 is off. The adapted weights are kept in the cache folder "
                      "(DIFFUSION_PANSHARPENING_CACHE) only when they gain on a held-out part of "
                      "the scene, and a rerun on the same scene reuses them; the log says the gain. "
                      "The adaptation takes the first half of the progress bar; Cancel stops it."),
            "  " + tr("Check the deep model against the classical methods on a sample first: "
                      "sharpens a content-rich sample of the scene at reduced resolution with "
                      "the deep model and with {candidates} and scores them (Q2n); auto "
                      "takes the best, a chosen deep method runs anyway with a warning in the log.").format(
                          candidates=" and ".join(CLASSICAL_CANDIDATES)),
            "  " + tr("Share of the classical {method} mixed into a deep method's output (the "
                      "network's output, made consistent with the MS, takes the rest). Empty: "
                      "{default}; the check scores the deep model at this share, and the log says "
                      "it. 0 gives the network alone.").format(
                          method=f"{ANCHOR_METHOD} ({ANCHOR_FALLBACK} for an unknown sensor)",
                          default=f"{HAZE_SHARE:g} ({ANCHOR:g} with {ANCHOR_FALLBACK})"),
            "  " + tr("Move the PAN onto the MS first: deep methods measure, on a sample, the "
                      "offset between the PAN and the MS (up to 2 PAN pixels: the two sensors see "
                      "the ground a moment apart) and move the PAN by it, so detail lands on the "
                      "edges the colours have; the log says by how much. Classical methods run as "
                      "published."),
        ]
        return "\n".join(lines)

    def helpUrl(self):  # noqa: N802
        return help_url()  # the README inside the plugin: there is no public page

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
        cog = QgsProcessingParameterBoolean(
            self.COG, tr("Write a Cloud Optimized GeoTIFF (default: a tiled GeoTIFF with internal "
                         "overviews)"), False)
        adapt = QgsProcessingParameterNumber(
            self.ADAPT, tr("Adapt the model to this scene (seconds of fine-tuning; 0: off)"),
            QgsProcessingParameterNumber.Double, 0.0, False, 0.0, MAX_ADAPT_SECONDS)
        check = QgsProcessingParameterBoolean(
            self.CHECK, tr("Check the deep model against the classical methods on a sample first"), True)
        anchor = QgsProcessingParameterNumber(
            self.ANCHOR, tr("Share of the classical {} mixed into a deep method's output "
                            "(0: the network alone; empty: {:g}, {:g} with {})").format(ANCHOR_METHOD, HAZE_SHARE, ANCHOR, ANCHOR_FALLBACK),
            QgsProcessingParameterNumber.Double, None, True, 0.0, 1.0)
        register = QgsProcessingParameterBoolean(
            self.REGISTER, tr("Move the PAN onto the MS first (deep methods)"), False)
        overviews = QgsProcessingParameterBoolean(
            self.OVERVIEWS, tr("Build internal overviews (QGIS draws a large result at once; off: faster "
                               "to write)"), True)
        for parameter in (tile, overlap, float32, full_precision, extent, sensor, cog, overviews, adapt, check,
                          anchor, register):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)

        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, tr("Sharpened raster"), QgsProcessing.TEMPORARY_OUTPUT))
        self.addOutput(QgsProcessingOutputString(self.OUT_METHOD, tr("Method used")))
        self.addOutput(QgsProcessingOutputNumber(self.OUT_SECONDS, tr("Run time (s)")))
        self.addOutput(QgsProcessingOutputString(
            self.OUT_REASON, tr("Why this method (auto's choice, the check, the adaptation)")))

    # -- main thread: layers to plain values ----------------------------------------
    def _enum(self, parameters, name, context):
        """An enum's option name (its number, as qgis_process lists them, is accepted)."""
        definition = self.parameterDefinition(name)
        value = parameters.get(name)
        if value is None or value == "":
            return definition.defaultValue()
        if not isinstance(value, (str, int)):  # e.g. a model's QgsProperty
            return self.parameterAsEnumString(parameters, name, context)
        chosen = enum_value(definition, value)
        if chosen is None:
            raise QgsProcessingException(tr("{name}={value} is not one of: {options}.").format(
                name=name, value=value, options=", ".join(
                    f"{i}: {option}" for i, option in enumerate(definition.options()))))
        return chosen

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Accept METHOD and DEVICE by number as well as by name (qgis_process lists numbers)."""
        named = dict(parameters)
        for name in (self.METHOD, self.DEVICE):
            value = named.get(name)
            if not isinstance(value, (str, int)) or value == "":
                continue
            try:
                named[name] = self._enum(named, name, context)
            except QgsProcessingException as error:
                return False, str(error)
        return super().checkParameterValues(named, context)

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

        # never replace a file that a loaded layer reads (it would show the new data
        # or stop drawing); a scratch context keeps this look from registering the output
        target = self.parameterAsOutputLayer(parameters, self.OUTPUT, QgsProcessingContext())
        using = layers_using(target, context.project()) if context.project() else []
        if using:
            raise QgsProcessingException(tr(
                "The output {path} is the layer '{name}' in the project: choose another file "
                "name, or remove the layer first.").format(path=target, name=using[0].name()))
        method = self._enum(parameters, self.METHOD, context) or AUTO
        self._ms_name, self._ms_band_names = ms.name(), band_names(ms)

        window = None
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, pan.crs())
            if not rect.isNull() and not rect.isEmpty():
                window = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())

        self._output = ""
        self._request = dict(
            pan=pan_source,
            ms=ms_source,
            method=method,
            pan_band=self.parameterAsInt(parameters, self.PAN_BAND, context),
            weights=self.parameterAsFile(parameters, self.WEIGHTS, context) or None,
            device=self._enum(parameters, self.DEVICE, context) or "auto",
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
            cog=self.parameterAsBoolean(parameters, self.COG, context),
            overviews=self.parameterAsBoolean(parameters, self.OVERVIEWS, context),
            adapt=self.parameterAsDouble(parameters, self.ADAPT, context) or None,
            check=self.parameterAsBoolean(parameters, self.CHECK, context),
            anchor=(None if parameters.get(self.ANCHOR) in (None, "")
                    else self.parameterAsDouble(parameters, self.ANCHOR, context)),
            register=self.parameterAsBoolean(parameters, self.REGISTER, context),
        )
        return True

    # -- worker thread: the engine does the job -------------------------------------
    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ...engine.errors import Cancelled, PansharpenError
        from ...engine.pipeline import SharpenRequest, sharpen

        # here, not in prepareAlgorithm: this context's layers to load are the ones kept
        self._output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        request = SharpenRequest(output=self._output, **self._request)
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
            self.OUT_REASON: result.reason,
        }

    # -- main thread again: how the toolbox shows the result ------------------------
    def postProcessAlgorithm(self, context, feedback):  # noqa: N802
        """Name the loaded result "<MS layer> <method>" and show it in true colour."""
        output = self._output
        if output and context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = f"{self._ms_name} {self._method_used}".strip()
            details.forceName = True
            details.setPostProcessor(TrueColourPostProcessor.create(self._ms_band_names))
        return {}

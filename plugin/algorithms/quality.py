"""Processing algorithm ``diffusion_pansharpening:quality``.

Scores a sharpened raster with the engine's quality indices: full resolution
(D_lambda, D_s, QNR, Khan's D_lambda and HQNR) against its PAN and MS, reduced
resolution (SAM, ERGAS, Q2n, SCC) against a reference when one is given. Results are
numeric outputs (for models and scripts) and a small HTML report.
"""
from __future__ import annotations

import html
import re

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtGui import QIcon

from ...engine import sensors
from ..core.i18n import tr
from ..core.layers import gdal_source
from ..paths import ICON_PATH, help_url  # not from ..provider: the provider imports this module

# (output name, what it measures, ideal value); output names are the engine's keys
# upper-cased with non-alphanumerics as "_" (Q2n -> Q2N, D_lambda_K -> D_LAMBDA_K).
INDICES = (
    ("SAM", "spectral angle mapper, degrees (reduced resolution)", 0.0),
    ("ERGAS", "relative global error (reduced resolution)", 0.0),
    ("Q2N", "Q2n / Q4 / Q8 vector quality index (reduced resolution)", 1.0),
    ("SCC", "spatial correlation coefficient (reduced resolution)", 1.0),
    ("D_LAMBDA", "spectral distortion (full resolution)", 0.0),
    ("D_S", "spatial distortion (full resolution)", 0.0),
    ("QNR", "quality with no reference (full resolution)", 1.0),
    ("D_LAMBDA_K", "Khan's spectral distortion (full resolution)", 0.0),
    ("HQNR", "hybrid QNR (full resolution)", 1.0),
)


def output_name(engine_key: str) -> str:
    """The Processing output name of an engine index key."""
    return re.sub(r"[^0-9A-Za-z]+", "_", engine_key).upper()


def report_html(scores: dict, fused: str, reference: str | None, pan: str | None,
                ms: str | None) -> str:
    """A small standalone HTML page with one row per computed index."""
    meaning = {name: (text, ideal) for name, text, ideal in INDICES}
    rows = []
    for key, value in scores.items():
        text, ideal = meaning.get(output_name(key), ("", None))
        rows.append(
            "<tr><td>{}</td><td style='text-align:right'>{:.4f}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(key), value, "" if ideal is None else f"{ideal:g}",
                html.escape(tr(text)) if text else ""))
    inputs = [(tr("Sharpened"), fused), (tr("Reference"), reference), (tr("PAN"), pan), (tr("MS"), ms)]
    inputs_html = "".join(
        f"<li>{html.escape(label)}: <code>{html.escape(path)}</code></li>" for label, path in inputs if path)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        "<h2>{title}</h2><ul>{inputs}</ul>"
        "<table border='1' cellspacing='0' cellpadding='4'>"
        "<tr><th>{index}</th><th>{value}</th><th>{ideal}</th><th>{what}</th></tr>{rows}</table>"
        "</body></html>"
    ).format(title=html.escape(tr("Pansharpening quality")), inputs=inputs_html,
             index=tr("Index"), value=tr("Value"), ideal=tr("Ideal"), what=tr("Meaning"),
             rows="".join(rows))


class QualityAlgorithm(QgsProcessingAlgorithm):
    FUSED = "FUSED"
    PAN = "PAN"
    MS = "MS"
    REFERENCE = "REFERENCE"
    SENSOR = "SENSOR"
    OUTPUT_HTML = "OUTPUT_HTML"

    def __init__(self):
        super().__init__()
        self._job = None

    def createInstance(self):  # noqa: N802 (QGIS's names throughout)
        return QualityAlgorithm()

    def name(self):
        return "quality"

    def displayName(self):  # noqa: N802
        return tr("Pansharpening quality")

    def icon(self):
        return QIcon(ICON_PATH)

    def helpUrl(self):  # noqa: N802
        return help_url()  # the README inside the plugin: there is no public page

    def shortHelpString(self):  # noqa: N802
        # plain text, one paragraph a line: qgis_process help prints it as it is
        return "\n".join([
            tr("Scores a sharpened raster."),
            "  - " + tr("With its PAN and MS: full-resolution indices without a reference: "
                        "D_lambda, D_s and QNR, and HQNR with Khan's D_lambda (MTF-filtered "
                        "degradation). 0 is ideal for the distortions, 1 for QNR and HQNR."),
            "  - " + tr("With a reference (the true high-resolution MS, e.g. from Wald's "
                        "protocol): SAM (degrees, 0 ideal), ERGAS (0 ideal), Q2n (Q4/Q8, 1 ideal) "
                        "and SCC (1 ideal)."),
            tr("Sensor selects the MTF gains used by the indices ({sensors}); leave it empty "
               "to use the raster's metadata or the generic gains (0.3 per MS band, 0.15 PAN)."
               ).format(sensors=sensors.names()),
        ])

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.FUSED, tr("Sharpened raster")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.PAN, tr("Panchromatic (PAN) raster"), None, True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.MS, tr("Multispectral (MS) raster"), None, True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE, tr("Reference (ground truth) raster"), None, True))
        self.addParameter(QgsProcessingParameterString(
            self.SENSOR, tr("Sensor (for the MTF filters)"), "", False, True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_HTML, tr("Quality report"), tr("HTML files (*.html)"), None, True, True))
        for name, text, _ideal in INDICES:
            self.addOutput(QgsProcessingOutputNumber(name, name))

    def _source(self, parameters, name, context):
        if parameters.get(name) in (None, ""):
            return None
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(
                tr("Could not open the raster given for {name}.").format(name=name))
        try:
            return gdal_source(layer)
        except ValueError as error:
            raise QgsProcessingException(str(error)) from error

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Checked before the run, so the toolbox, processing.run and qgis_process
        all show this message (an exception in prepareAlgorithm only reaches the log)."""
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message

        def given(name):
            return parameters.get(name) not in (None, "")

        if not given(self.REFERENCE) and not (given(self.PAN) and given(self.MS)):
            return False, tr("Give a reference raster, or both the PAN and the MS the "
                             "sharpened raster was made from.")
        return True, ""

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        fused = self._source(parameters, self.FUSED, context)
        pan = self._source(parameters, self.PAN, context)
        ms = self._source(parameters, self.MS, context)
        reference = self._source(parameters, self.REFERENCE, context)
        self._job = dict(
            fused=fused, pan=pan, ms=ms, reference=reference,
            sensor=self.parameterAsString(parameters, self.SENSOR, context).strip() or None,
            report=self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context) or None,
        )
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ...engine.errors import PansharpenError
        from ...engine.scoring import score_files

        job = self._job
        try:
            scores = score_files(job["fused"], pan=job["pan"], ms=job["ms"],
                                 reference=job["reference"], sensor=job["sensor"])
        except PansharpenError as error:
            raise QgsProcessingException(str(error)) from error
        results = {}
        for key, value in scores.items():
            results[output_name(key)] = float(value)
            feedback.pushInfo(f"{key} = {float(value):.4f}")
        if job["report"]:
            with open(job["report"], "w", encoding="utf-8") as handle:
                handle.write(report_html(scores, job["fused"], job["reference"], job["pan"], job["ms"]))
            results[self.OUTPUT_HTML] = job["report"]
        return results

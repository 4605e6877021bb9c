"""The Processing provider: the plugin's algorithms in the toolbox and qgis_process."""
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .core.i18n import tr
from .paths import ICON_PATH

PROVIDER_ID = "diffusion_pansharpening"


class DiffusionPansharpeningProvider(QgsProcessingProvider):
    """Provider ``diffusion_pansharpening`` with ``pansharpen`` and ``quality``."""

    def loadAlgorithms(self):  # noqa: N802 (QGIS's name)
        # imported here: building the algorithms asks the engine for its methods
        from .algorithms.pansharpen import PansharpenAlgorithm
        from .algorithms.quality import QualityAlgorithm

        self.addAlgorithm(PansharpenAlgorithm())
        self.addAlgorithm(QualityAlgorithm())

    def id(self):
        return PROVIDER_ID

    def name(self):
        return tr("Diffusion Pansharpening")

    def longName(self):  # noqa: N802
        return self.name()

    def icon(self):
        return QIcon(ICON_PATH)

    def svgIconPath(self):  # noqa: N802
        return ICON_PATH

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        """The engine writes GeoTIFF only: offer no other format in the file dialogs."""
        return ["tif"]

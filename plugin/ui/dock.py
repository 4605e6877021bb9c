"""A dock with the same controls as the dialog, for analysts who keep it open."""
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtWidgets import QScrollArea

from ..core.i18n import tr
from .controls import PansharpenControls


class PansharpenDock(QgsDockWidget):
    def __init__(self, iface, parent=None):
        super().__init__(tr("Pansharpening"), parent)
        self.setObjectName("DiffusionPansharpeningDock")
        self.controls = PansharpenControls(iface)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.controls)
        self.setWidget(scroll)

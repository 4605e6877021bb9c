"""The "Pansharpen" dialog opened from the Raster menu and the toolbar."""
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QVBoxLayout

from ..core.i18n import tr
from .controls import PansharpenControls


class PansharpenDialog(QDialog):
    """A non-modal window around :class:`PansharpenControls`.

    Closing it does not stop a run: the job lives in the task manager and adds its
    layer when it ends.
    """

    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.setObjectName("DiffusionPansharpeningDialog")
        self.setWindowTitle(tr("Pansharpen"))
        self.controls = PansharpenControls(iface, self)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls)
        layout.addWidget(buttons)
        self.resize(520, 560)

    def showEvent(self, event):  # noqa: N802 (Qt's name)
        """Layers may have been added since the last time: guess again if empty."""
        self.controls._guess_if_empty()
        super().showEvent(event)

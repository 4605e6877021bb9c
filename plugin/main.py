"""The plugin object QGIS creates through ``classFactory``.

``iface`` is stored and never touched before ``initGui``: ``qgis_process`` calls
``classFactory(None)`` then only ``initProcessing``. ``unload`` removes exactly what
``initGui`` and ``initProcessing`` added, in reverse order.
"""
from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .core.i18n import tr
from .paths import DOCK_ICON_PATH, ICON_PATH
from .provider import DiffusionPansharpeningProvider

MENU = "&Diffusion Pansharpening"
TOOLBAR_NAME = "DiffusionPansharpeningToolbar"
RUN_ACTION_NAME = "DiffusionPansharpeningRun"
DOCK_ACTION_NAME = "DiffusionPansharpeningDockToggle"


class DiffusionPansharpeningPlugin:
    """Processing provider, Raster-menu and toolbar actions, dialog and dock."""

    def __init__(self, iface):
        from .core.installer import activate

        activate()  # PyTorch that the plugin's installer put in its own folder
        self.iface = iface
        self.provider = None
        self.toolbar = None
        self.actions = []
        self.dialog = None
        self.dock = None

    # -- Processing (also headless) ---------------------------------------------------
    def initProcessing(self):  # noqa: N802 (QGIS's name)
        if self.provider is None:
            self.provider = DiffusionPansharpeningProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    # -- GUI --------------------------------------------------------------------------
    def initGui(self):  # noqa: N802 (QGIS's name)
        # QGIS's startPlugin calls initGui only; the provider must exist in the GUI too
        self.initProcessing()
        window = self.iface.mainWindow()
        icon = QIcon(ICON_PATH)

        self.run_action = QAction(icon, tr("Pansharpen\u2026"), window)
        self.run_action.setObjectName(RUN_ACTION_NAME)
        self.run_action.setToolTip(tr("Sharpen a multispectral raster with a panchromatic band"))
        self.run_action.triggered.connect(self.show_dialog)

        self.dock_action = QAction(QIcon(DOCK_ICON_PATH), tr("Pansharpening Panel"), window)
        self.dock_action.setObjectName(DOCK_ACTION_NAME)
        self.dock_action.setCheckable(True)
        self.dock_action.toggled.connect(self.set_dock_visible)
        self.actions = [self.run_action, self.dock_action]

        self.toolbar = self.iface.addToolBar(tr("Diffusion Pansharpening"))
        self.toolbar.setObjectName(TOOLBAR_NAME)
        for action in self.actions:
            self.iface.addPluginToRasterMenu(tr(MENU), action)
            self.toolbar.addAction(action)

    def unload(self):
        if self.dock is not None:
            self.dock.controls.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.dialog is not None:
            self.dialog.controls.shutdown()
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        for action in self.actions:
            self.iface.removePluginRasterMenu(tr(MENU), action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # -- actions ----------------------------------------------------------------------
    def show_dialog(self):
        """Open (or raise) the Pansharpen dialog."""
        if self.dialog is None:
            from .ui.dialog import PansharpenDialog

            self.dialog = PansharpenDialog(self.iface, self.iface.mainWindow())
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def set_dock_visible(self, visible: bool):
        """Show or hide the dock; it is built the first time it is shown."""
        if self.dock is None:
            if not visible:
                return
            from .ui.dock import PansharpenDock

            self.dock = PansharpenDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
            # keeps the action's check mark in step when the dock's own X closes it
            self.dock.setToggleVisibilityAction(self.dock_action)
        self.dock.setUserVisible(visible)

"""QGIS entry point of the Diffusion Pansharpening plugin.

Nothing heavy is imported here: QGIS (and ``qgis_process``, which passes
``iface=None``) imports this module at start-up, and torch must only load when a
deep method actually runs.
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Return the plugin instance QGIS asks for."""
    from .plugin.main import DiffusionPansharpeningPlugin

    return DiffusionPansharpeningPlugin(iface)

"""Qt translation for every user-facing string of the plugin.

The plugin ships no translations yet (English is the source language), so it installs
no QTranslator and looks for no ``.qm`` files; ``tr`` still marks every string for
``pylupdate5``. Adding a language means a ``resources/i18n/diffusion_pansharpening_<lang>.qm``
(``paths.I18N_DIR``) and installing a QTranslator for it in ``DiffusionPansharpeningPlugin``.
"""
from qgis.PyQt.QtCore import QCoreApplication

CONTEXT = "DiffusionPansharpening"


def tr(text: str) -> str:
    """Translate ``text`` in the plugin's single translation context.

    One context for the whole plugin keeps the ``.ts`` file simple; with no translator
    installed for it the text comes back as is.
    """
    return QCoreApplication.translate(CONTEXT, text)

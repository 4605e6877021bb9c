"""Qt translation for every user-facing string of the plugin."""
from qgis.PyQt.QtCore import QCoreApplication

CONTEXT = "DiffusionPansharpening"


def tr(text: str) -> str:
    """Translate ``text`` in the plugin's single translation context.

    One context for the whole plugin keeps the ``.ts`` file simple; QGIS loads the
    translator for the user's locale, and without one the text comes back as is.
    """
    return QCoreApplication.translate(CONTEXT, text)


def install_translator():
    """Load ``resources/i18n/diffusion_pansharpening_<lang>.qm`` for QGIS's locale.

    Returns the installed translator (to remove on unload), or None when there is no
    translation for the locale (English is the source language).
    """
    import os

    from qgis.core import QgsSettings
    from qgis.PyQt.QtCore import QTranslator

    locale = str(QgsSettings().value("locale/userLocale", "") or "")[:2]
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    path = os.path.join(root, "resources", "i18n", f"diffusion_pansharpening_{locale}.qm")
    if not locale or not os.path.exists(path):
        return None
    translator = QTranslator()
    if not translator.load(path):
        return None
    QCoreApplication.installTranslator(translator)
    return translator


def remove_translator(translator) -> None:
    if translator is not None:
        QCoreApplication.removeTranslator(translator)

"""Where the plugin's own files lie: icons, the README shipped in the plugin's zip, and
the translations folder.

Why a module of its own: the provider imports its algorithms and the algorithms need
the icon; with the path in ``provider`` the two imported each other. Qt-free, so any
module may import it.
"""
import os

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package root
ICON_PATH = os.path.join(PLUGIN_DIR, "resources", "icon.svg")
DOCK_ICON_PATH = os.path.join(PLUGIN_DIR, "resources", "icon_dock.svg")  # the panel's toggle
README_PATH = os.path.join(PLUGIN_DIR, "README.md")  # scripts/package.py ships it in the zip
I18N_DIR = os.path.join(PLUGIN_DIR, "resources", "i18n")  # compiled .qm files, when there are any


def help_url() -> str:
    """The README inside the installed plugin as a file:// URL (there is no public web
    page to point to); built at run time because the plugin folder differs per user."""
    from qgis.PyQt.QtCore import QUrl

    return QUrl.fromLocalFile(README_PATH).toString()

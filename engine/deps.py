"""The optional dependency: PyTorch. Classical methods run without it; deep ones say how
to get it."""
from __future__ import annotations

import importlib.util

TORCH_HELP = (
    "install PyTorch into the Python that runs QGIS: on Linux `python3 -m pip install "
    "--user torch` (or in the venv QGIS uses); on Windows, in the OSGeo4W Shell, "
    "`python -m pip install torch`; on macOS, `/Applications/QGIS.app/Contents/MacOS/bin/"
    "python3 -m pip install torch`; then restart QGIS"
)


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None

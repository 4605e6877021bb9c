"""Environment for running this plugin's algorithms in ``qgis_process.bin``.

QGIS finds the plugin through QGIS_PLUGINPATH (the ``.build/plugins`` folder where
the Makefile links the repository as ``diffusion_pansharpening``), torch through the
venv's site-packages on PYTHONPATH, and runs offscreen in a profile of its own so a
user's real QGIS profile is never touched.
"""
from __future__ import annotations

import os
import site
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / ".build" / "plugins"
QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian's qgis_process wrapper is broken on 3.22


def qgis_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    # a parent may point QGIS at another profile (pytest-qgis does): not ours to use
    env = {k: v for k, v in os.environ.items() if k not in ("QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH")}
    paths = [str(PLUGINS), *site.getsitepackages()]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update({
        "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"), "QT_QPA_PLATFORM": "offscreen",
        "QGIS_PLUGINPATH": str(PLUGINS), "PYTHONPATH": os.pathsep.join(paths),
    })
    return env


def qgis_process(args: list[str], home: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run qgis_process.bin with the plugin enabled in an isolated profile."""
    env = qgis_env(home)
    marker = home / ".plugin-enabled"
    if not marker.exists():
        subprocess.run([QGIS_PROCESS, "plugins", "enable", "diffusion_pansharpening"],
                       env=env, check=True, capture_output=True, text=True)
        marker.touch()
    return subprocess.run([QGIS_PROCESS, *args], env=env, text=True, capture_output=True, **kwargs)

"""`make package`: the plugin zip, installed into a fresh QGIS profile the way the
Plugin Manager's "Install from ZIP" does, then run from there by ``qgis_process.bin``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
QGIS_PROCESS = "/usr/bin/qgis_process.bin"
FOLDER = "diffusion_pansharpening"


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.parent == out and path.name.startswith(f"{FOLDER}-") and path.suffix == ".zip"
    return path


def test_the_makefile_builds_the_package_with_this_script():
    makefile = (ROOT / "Makefile").read_text()
    assert "\npackage:" in makefile and "scripts/package.py" in makefile


def test_the_zip_holds_one_plugin_folder_with_what_the_plugin_runs_and_nothing_else(plugin_zip):
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert all(name.startswith(f"{FOLDER}/") for name in names)
    inside = {name[len(FOLDER) + 1:] for name in names}
    assert {"metadata.txt", "__init__.py", "LICENSE", "plugin/main.py", "plugin/provider.py",
            "engine/pipeline.py", "resources/icon.svg", "resources/icon_dock.svg"} <= inside
    for family in ("landsat8", "vhr4", "wv8"):
        assert f"resources/weights/{family}-fose.safetensors" in inside
    top = {name.split("/")[0] for name in inside}
    assert not top & {"tests", "training", "benchmarks", "docs", "scripts", ".build", ".venv", "dist"}
    assert not [name for name in inside if "__pycache__" in name or name.endswith((".pyc", ".aux.xml"))]


def install_from_zip(zip_path: Path, plugins_dir: Path) -> Path:
    """What QGIS 3.22's installer.installFromZipFile does: the plugin's name is the folder of
    the shortest metadata.txt; the zip is extracted with QGIS's own unzip."""
    sys.path.insert(0, "/usr/share/qgis/python")
    try:
        from pyplugin_installer.unzip import unzip
    finally:
        sys.path.remove("/usr/share/qgis/python")
    with zipfile.ZipFile(zip_path) as archive:
        metadata = sorted(name for name in archive.namelist() if name.endswith("metadata.txt"))
    assert metadata, "not a QGIS plugin zip: no metadata.txt"
    name = os.path.split(metadata[0])[0]
    plugins_dir.mkdir(parents=True, exist_ok=True)
    unzip(str(zip_path), str(plugins_dir))
    return plugins_dir / name


def test_the_installed_zip_runs_in_qgis_process_from_a_fresh_profile(plugin_zip, tmp_path, qgis_app):
    from diffusion_pansharpening.engine.methods import torch_available

    home = tmp_path / "home"
    plugins_dir = home / "xdg" / "QGIS" / "QGIS3" / "profiles" / "default" / "python" / "plugins"
    installed = install_from_zip(plugin_zip, plugins_dir)
    assert installed == plugins_dir / FOLDER and (installed / "metadata.txt").is_file()

    env = {k: v for k, v in os.environ.items()
           if k not in ("QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH", "QGIS_PLUGINPATH")}
    (home / "runtime").mkdir(mode=0o700)
    # only torch's site-packages (PYTHONPATH runs no .pth, so not the editable install):
    # the plugin can only come from the profile
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "xdg"), XDG_RUNTIME_DIR=str(home / "runtime"),
               QT_QPA_PLATFORM="offscreen", PYTHONPATH=sysconfig.get_paths()["purelib"])
    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", FOLDER], env=env,
                             capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr

    out = tmp_path / "from_zip.tif"
    pan = ROOT / "resources" / "sample" / "pan.tif"
    x0, dx, _, y0, _, dy = gdal.Open(str(pan)).GetGeoTransform()
    window = f"{x0 + 64 * dx},{x0 + 256 * dx},{y0 + 256 * dy},{y0 + 64 * dy}"  # 192 x 192: checked, seconds
    done = subprocess.run([QGIS_PROCESS, "--json", "run", f"{FOLDER}:pansharpen", "--", f"PAN={pan}",
                           f"MS={ROOT / 'resources' / 'sample' / 'ms.tif'}", "METHOD=auto",
                           f"EXTENT={window}", f"OUTPUT={out}"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(done.stdout)["results"]
    # auto finds the shipped landsat8 model inside the installed copy
    assert results["METHOD_USED"] == ("fose" if torch_available() else "mtf-glp-hpm")
    written = gdal.Open(str(out))
    assert (written.RasterCount, written.RasterXSize, written.RasterYSize) == (4, 192, 192)

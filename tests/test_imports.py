"""Every module of the package imports on its own, in a fresh interpreter.

Why: an import cycle (provider <-> algorithms, say) only fails when one particular
module of the cycle is imported first; in one test process the order is whatever an
earlier test left, so each module gets an interpreter of its own here."""
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "diffusion_pansharpening"


def modules() -> list[str]:
    """The modules of every package pyproject.toml installs (``__main__`` excluded: importing
    it runs the command)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    names = []
    for package in config["packages"]:
        folder = ROOT.joinpath(*package.split(".")[1:])
        names.append(package)
        names += [f"{package}.{f.stem}" for f in sorted(folder.glob("*.py"))
                  if f.stem not in ("__init__", "__main__")]
    return names


def _import(name: str) -> tuple[str, int, str]:
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT.parent)
    return name, done.returncode, done.stderr


def test_every_module_imports_first():
    names = modules()
    assert f"{PACKAGE}.engine.pairs" in names and f"{PACKAGE}.plugin.provider" in names
    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [(n, err.strip().splitlines()[-1:]) for n, code, err in pool.map(_import, names) if code]
    assert not failed, failed


@pytest.mark.unit  # one interpreter: fast enough for make test-fast
def test_numpy_only_modules_do_not_load_gdal():
    """The array helpers, the pair toolkit and scene normalisation need numpy only (they
    were imported from the GDAL module, raster_io); the icons need no Qt."""
    code = ("import sys\n"
            f"import {PACKAGE}.engine.arrays, {PACKAGE}.engine.pairs, {PACKAGE}.engine.radiometry\n"
            f"import {PACKAGE}.plugin.paths\n"
            "print(sorted(m for m in ('osgeo', 'qgis', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT.parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", (done.stdout, done.stderr[-1000:])

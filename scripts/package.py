"""Build the plugin zip that QGIS's Plugin Manager installs ("Install from ZIP").

The zip holds one folder, ``diffusion_pansharpening/``, with what the plugin runs:
``metadata.txt``, ``__init__.py``, the licence and README, ``plugin/``, ``engine/``
and ``resources/`` (icons, shipped weights and model cards, the sample). Tests,
training, benchmarks, docs, scripts and build outputs stay out. Standard library
only, so it runs with any Python 3.

    python3 scripts/package.py [--out DIR]    # prints the zip's path
"""
from __future__ import annotations

import argparse
import configparser
import os
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = "diffusion_pansharpening"  # the name QGIS and Python know the plugin by
FILES = ("metadata.txt", "__init__.py", "LICENSE", "README.md")
TREES = ("plugin", "engine", "resources")
SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".aux.xml")


def version() -> str:
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "metadata.txt", encoding="utf-8")
    return metadata["general"]["version"]


def plugin_files() -> list[Path]:
    """Every file that goes into the zip, relative to the repository root, sorted."""
    files = [Path(name) for name in FILES]
    for tree in TREES:
        for folder, dirs, names in os.walk(ROOT / tree):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for name in names:
                if name.startswith(".") or name.endswith(SKIP_SUFFIXES):
                    continue
                files.append((Path(folder) / name).relative_to(ROOT))
    missing = [str(path) for path in files if not (ROOT / path).is_file()]
    if missing:
        raise SystemExit(f"package: missing {', '.join(missing)}: is this a complete checkout?")
    return sorted(files)


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{FOLDER}-{version()}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files():
            archive.write(ROOT / path, f"{FOLDER}/{path.as_posix()}")
    os.replace(partial, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="folder for the zip (default: dist/)")
    args = parser.parse_args(argv)
    print(build(Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

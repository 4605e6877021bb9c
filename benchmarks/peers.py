"""What a QGIS user would otherwise run, as command lines on the same inputs.

* GDAL: ``gdal_pansharpen.py`` (Debian's gdal-bin ships it; GDAL's weighted Brovey
  with cubic resampling, its defaults), and the same through QGIS's Processing
  algorithm ``gdal:pansharp`` in ``qgis_process.bin`` (which calls gdal_pansharpen.py).
  Seen with GDAL 3.6.2 (tests/test_benchmarks.py): it reads the whole MS raster onto
  the PAN raster, so a sub-pixel offset between the grids (Landsat's 7.5 m) is not
  applied, where our engine places the MS by its georeferencing.
* Orfeo Toolbox (Debian's otb-bin): ``otbcli_BundleToPerfectSensor`` (resampling and
  fusion in one application, its default ``rcs`` fusion), and ``otbcli_Superimpose``
  (MS onto the PAN grid) followed by ``otbcli_Pansharpening`` with ``rcs`` or ``lmvm``;
  the time of that peer is the time of both steps.

Project choices: every tool runs with its defaults (threads, memory, resampling) as a
user would call it, writing a UInt16 GeoTIFF; each run is a fresh process, so process
start-up is part of the time, as it is for a user. Each peer can say whether it is
installed (:meth:`Peer.missing`), so a machine without OTB or QGIS still benchmarks
the rest and the report says what was missing.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from qgis_env import QGIS_PROCESS, qgis_process  # noqa: E402

from inputs import Scene  # noqa: E402


class PeerFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    programs: tuple[str, ...]  # what must be installed
    run: Callable[[Scene, Path, Path], None]  # (scene, output, work folder) -> None, raises PeerFailed

    def missing(self) -> list[str]:
        return [p for p in self.programs if shutil.which(p) is None and not Path(p).exists()]


def _check(args: list[str], **kwargs) -> None:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise PeerFailed(f"{' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr[-600:]}")


def gdal_pansharpen(scene: Scene, out: Path, work: Path) -> None:
    _check(["gdal_pansharpen.py", scene.pan, scene.ms, str(out), "-of", "GTiff", "-r", "cubic", "-q"])


def qgis_gdal_pansharp(scene: Scene, out: Path, work: Path) -> None:
    run_qgis(["run", "gdal:pansharp", "--", f"SPECTRAL={scene.ms}", f"PANCHROMATIC={scene.pan}",
              f"OUTPUT={out}"], work)


def otb_bundle(scene: Scene, out: Path, work: Path) -> None:
    _check(["otbcli_BundleToPerfectSensor", "-inp", scene.pan, "-inxs", scene.ms, "-out", str(out), "uint16"])


def otb_superimpose_pansharpening(method: str) -> Callable[[Scene, Path, Path], None]:
    def run(scene: Scene, out: Path, work: Path) -> None:
        lms = work / "otb_superimposed.tif"
        try:
            _check(["otbcli_Superimpose", "-inr", scene.pan, "-inm", scene.ms, "-out", str(lms), "uint16"])
            _check(["otbcli_Pansharpening", "-inp", scene.pan, "-inxs", str(lms), "-method", method,
                    "-out", str(out), "uint16"])
        finally:
            lms.unlink(missing_ok=True)
    return run


def run_qgis(args: list[str], work: Path) -> subprocess.CompletedProcess:
    """qgis_process.bin with this plugin enabled in a profile of its own under ``work``; raises on failure."""
    done = qgis_process(args, work / "qgis-home")
    if done.returncode != 0:
        raise PeerFailed(f"qgis_process.bin {' '.join(args[:2])} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout)[-600:]}")
    return done


PEERS: list[Peer] = [
    Peer("gdal_pansharpen.py", "GDAL gdal_pansharpen.py (weighted Brovey, cubic)", ("gdal_pansharpen.py",),
         gdal_pansharpen),
    Peer("qgis gdal:pansharp", "QGIS qgis_process.bin run gdal:pansharp", (QGIS_PROCESS, "gdal_pansharpen.py"),
         qgis_gdal_pansharp),
    Peer("otb BundleToPerfectSensor", "OTB otbcli_BundleToPerfectSensor (rcs)", ("otbcli_BundleToPerfectSensor",),
         otb_bundle),
    Peer("otb Pansharpening rcs", "OTB otbcli_Superimpose + otbcli_Pansharpening -method rcs",
         ("otbcli_Superimpose", "otbcli_Pansharpening"), otb_superimpose_pansharpening("rcs")),
    Peer("otb Pansharpening lmvm", "OTB otbcli_Superimpose + otbcli_Pansharpening -method lmvm",
         ("otbcli_Superimpose", "otbcli_Pansharpening"), otb_superimpose_pansharpening("lmvm")),
]

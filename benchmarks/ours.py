"""Our methods as jobs: in-process ``sharpen``, the ``pansharpen`` command, the QGIS path.

Deep methods run only with real weights: a file given in ``--weights-dir`` (named
``<anything>-<method>.safetensors`` like the shipped ones, or ``<method>.safetensors``)
or the shipped ones in ``resources/weights``, of which the engine picks the family that
fits each scene (landsat8 for the Landsat-8 scene, wv8 for WorldView-2); without any
the method is listed as "no weights" and never timed.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from diffusion_pansharpening.engine.methods import list_methods, shipped_weights
from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

from inputs import Scene
from peers import PeerFailed, run_qgis

PANSHARPEN = str(Path(sys.executable).parent / "pansharpen")
PLUGIN_ALGORITHM = "diffusion_pansharpening:pansharpen"


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "classical" | "deep"
    weights: str | None  # the file a deep method runs with; None: the shipped one fitting the scene
    why_not: str = ""  # empty when it can run

    @property
    def runnable(self) -> bool:
        return not self.why_not


def methods(weights_dir: Path | None = None) -> list[Method]:
    """Every engine method, deep ones with the weights file they would use (or why not)."""
    found = []
    for info in list_methods():
        if info.kind == "classical":
            found.append(Method(info.name, "classical", None))
            continue
        given = given_weights(info.name, weights_dir)
        found.append(Method(info.name, "deep", given,
                            "" if given or shipped_weights(info.name) else "no weights"))
    return found


def given_weights(method: str, weights_dir: Path | None) -> str | None:
    """The method's file in ``--weights-dir``, if there is one."""
    if weights_dir is None:
        return None
    files = sorted(weights_dir.glob(f"*-{method}.safetensors")) + sorted(weights_dir.glob(f"{method}.safetensors"))
    return str(files[0]) if files else None


def in_process(scene: Scene, method: Method, out: Path, tile: int | None = None,
               device: str = "auto", half: bool = True) -> Callable[[], None]:
    """The job ``sharpen(...)`` runs in this process (what the CLI and the plugin call)."""
    request = SharpenRequest(scene.pan, scene.ms, str(out), method=method.name, tile=tile,
                             weights=method.weights, device=device, overwrite=True, half=half)
    return lambda: sharpen(request)


def command_line(scene: Scene, method: Method, out: Path, tile: int | None = None) -> Callable[[], None]:
    """The same job through the ``pansharpen sharpen`` command (a fresh process)."""
    args = [PANSHARPEN, "sharpen", scene.pan, scene.ms, str(out), "--method", method.name,
            "--overwrite", "--quiet"] + (["--tile", str(tile)] if tile else [])
    if method.weights:
        args += ["--weights", method.weights]

    def run() -> None:
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            raise PeerFailed(f"pansharpen sharpen failed ({done.returncode}): {done.stderr[-600:]}")
    return run


def through_qgis(scene: Scene, method: Method, out: Path, work: Path, tile: int | None = None) -> Callable[[], None]:
    """The same job through ``qgis_process.bin run diffusion_pansharpening:pansharpen``."""
    # The algorithm's METHOD enum takes the method's name (static string values).
    args = ["run", PLUGIN_ALGORITHM, "--", f"PAN={scene.pan}", f"MS={scene.ms}", f"METHOD={method.name}",
            f"TILE_SIZE={tile or 0}", f"OUTPUT={out}"]
    if method.weights:
        args.append(f"WEIGHTS={method.weights}")
    return lambda: run_qgis(args, work)


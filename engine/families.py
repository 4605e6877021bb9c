"""Sensor families of the shipped models, and choosing a model for a PAN/MS pair.

A shipped model is trained for one *family*: a band layout and a resolution ratio
shared by several sensors (issue 4). Files are ``<weights dir>/<family>-<arch>.safetensors``;
the folder is ``resources/weights`` unless the environment variable
``DIFFUSION_PANSHARPENING_WEIGHTS`` names another (tests, or a user's own set).

Choosing (project rules, named): the family is the one whose band count and ratio
match the pair (the sensor name, where GDAL exposes it, is reported and confirms the
match; it never overrides band count and ratio, which the network's shape needs).
Within a family ``fose`` is preferred, then ``ksdiff``. When no family fits, or the
family has no shipped weights, or PyTorch is missing, the best classical method
(``mtf-glp-hpm``) runs, and the reason says which and what else the user can do.
Reading the list of shipped models parses the safetensors header directly, so it
works without PyTorch.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import PansharpenError

ENV_WEIGHTS = "DIFFUSION_PANSHARPENING_WEIGHTS"
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "resources" / "weights"
BEST_CLASSICAL = "mtf-glp-hpm"
CLASSICAL_NAMES = ("brovey", "gihs", "gsa", "mtf-glp-hpm", "mtf-glp-hpm-h")
CLASSICAL_CANDIDATES = ("gsa", "mtf-glp-hpm", "mtf-glp-hpm-h")  # what the check (guard) scores a deep model against


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    bands: int
    ratio: int
    band_names: tuple[str, ...]

    @property
    def sensors(self) -> tuple[str, ...]:
        """Canonical names of the sensors of this family (``engine/sensors.py`` says which)."""
        from .sensors import SENSORS

        return tuple(s.name for s in SENSORS if s.family == self.name)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("landsat8", "Landsat 8/9 OLI", 4, 2, ("blue", "green", "red", "NIR")),
    Family("vhr4", "4-band VHR: IKONOS, QuickBird, GeoEye-1, GaoFen-2, Pleiades", 4, 4,
           ("blue", "green", "red", "NIR")),
    Family("wv8", "8-band WorldView-2/3", 8, 4,
           ("coastal", "blue", "green", "yellow", "red", "red edge", "NIR1", "NIR2")),
)}


@dataclass(frozen=True)
class Choice:
    """What runs for a pair: method, weights file (None for classical), family, why."""

    method: str
    weights: str | None
    family: str | None
    reason: str


def weights_dir() -> Path:
    """Folder of the shipped weights (``DIFFUSION_PANSHARPENING_WEIGHTS`` overrides)."""
    override = os.environ.get(ENV_WEIGHTS)
    return Path(override) if override else DEFAULT_WEIGHTS_DIR


def weights_path(family: str, architecture: str) -> Path:
    return weights_dir() / f"{family}-{architecture}.safetensors"


def family_for(bands: int, ratio: int) -> Family | None:
    for family in FAMILIES.values():
        if family.bands == bands and family.ratio == ratio:
            return family
    return None


def _families_text() -> str:
    return "; ".join(f"{f.name}: {f.bands} bands at ratio {f.ratio}" for f in FAMILIES.values())


def _pair_text(bands: int, ratio: int, sensor: str | None) -> str:
    return f"{bands} bands at ratio {ratio}" + (f" (sensor {sensor})" if sensor else "")


def choose_model(info, method: str = "auto", weights: str | None = None) -> Choice:
    """The method (and shipped weights) for a pair described by ``info`` (a
    ``PairInfo``, or anything with ``bands``, ``ratio``, ``sensor``)."""
    bands, ratio, sensor = int(info.bands), int(info.ratio), getattr(info, "sensor", None)
    if method not in ("auto", "", None):
        return _explicit(method, weights, bands, ratio, sensor)
    family = family_for(bands, ratio)
    pair = _pair_text(bands, ratio, sensor)
    others = (f"Other choices: a classical method ({', '.join(CLASSICAL_NAMES)}), or a deep "
              "method with your own weights file (.safetensors trained with `pansharpen train`).")
    if family is None:
        return Choice(BEST_CLASSICAL, None, None,
                      f"No shipped model fits {pair} (families: {_families_text()}): using the "
                      f"classical {BEST_CLASSICAL}. {others}")
    fit = f"{pair} fit the {family.name} family ({family.title})"
    if sensor and sensor not in family.sensors:
        fit += f"; {sensor} is not among its training sensors, band count and ratio decide"
    from . import registry
    from .deps import torch_available

    if not torch_available():
        return Choice(BEST_CLASSICAL, None, family.name,
                      f"{fit}, but PyTorch is not installed: using the classical {BEST_CLASSICAL}. "
                      "Install PyTorch to use the shipped deep models.")
    for arch in registry.preferred():
        path = weights_path(family.name, arch)
        if path.exists():
            return Choice(arch, str(path), family.name,
                          f"{fit}: using its shipped {arch} model ({path.name}). "
                          f"Any other method, or your own weights file, can be chosen instead.")
    return Choice(BEST_CLASSICAL, None, family.name,
                  f"{fit}, but no {family.name} model is shipped yet (none in {weights_dir()}): "
                  f"using the classical {BEST_CLASSICAL}. {others}")


def _explicit(method: str, weights: str | None, bands: int, ratio: int, sensor) -> Choice:
    if weights or method in CLASSICAL_NAMES:
        what = f"your weights file {weights}" if weights else "chosen by the user"
        return Choice(method, weights, None, f"{method}: {what}.")
    family = family_for(bands, ratio)
    if family is not None and weights_path(family.name, method).exists():
        path = weights_path(family.name, method)
        return Choice(method, str(path), family.name,
                      f"{method}: the shipped {family.name} model ({path.name}) fits "
                      f"{_pair_text(bands, ratio, sensor)}.")
    return Choice(method, None, family.name if family else None,
                  f"{method}: no shipped model fits {_pair_text(bands, ratio, sensor)}.")


# ---------------------------------------------------------------- listing

@dataclass(frozen=True)
class ShippedModel:
    family: str
    architecture: str
    bands: int
    ratio: int
    path: Path
    quality: str  # one line, or ""


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, from its JSON header (no PyTorch)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise PansharpenError(f"{path} is not a .safetensors file (too short)")
        (n,) = struct.unpack("<Q", head)
        if n > 100 * 1024 * 1024:
            raise PansharpenError(f"{path} is not a .safetensors file (bad header length)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PansharpenError(f"{path} is not a .safetensors file ({exc})") from exc
    return dict(header.get("__metadata__") or {})


def quality_line(quality) -> str:
    """One line from the ``quality`` metadata: its ``summary``, else Q2n/SAM/ERGAS."""
    if isinstance(quality, str):
        try:
            quality = json.loads(quality)
        except json.JSONDecodeError:
            return ""
    if not isinstance(quality, dict):
        return ""
    if quality.get("summary"):
        return str(quality["summary"])
    parts = [f"{k} {quality[k]:.4g}" for k in ("Q2n", "SAM", "ERGAS", "SCC")
             if isinstance(quality.get(k), (int, float))]
    return ("validation: " + ", ".join(parts)) if parts else ""


def shipped_models() -> list[ShippedModel]:
    """Every ``<family>-<arch>.safetensors`` in the weights folder, sorted by file name."""
    folder = weights_dir()
    models = []
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        family, _, arch = path.stem.rpartition("-")
        try:
            meta = read_metadata(path)
        except (OSError, PansharpenError):
            continue
        bands = meta.get("bands")
        try:
            count = len(json.loads(bands)) if bands else 0
        except json.JSONDecodeError:
            count = 0
        models.append(ShippedModel(family or "?", meta.get("architecture", arch), count,
                                   int(meta.get("ratio", 0) or 0), path,
                                   quality_line(meta.get("quality"))))
    return models


def format_models(models: list[ShippedModel]) -> str:
    if not models:
        return (f"Models: none shipped yet (no weights in {weights_dir()}). The classical methods "
                "work without one; train your own with `pansharpen train` and pass --weights.")
    lines = [f"{'family':10s} {'model':8s} {'bands':>5s} {'ratio':>5s}  {'file':34s} quality"]
    for m in models:
        lines.append(f"{m.family:10s} {m.architecture:8s} {m.bands:5d} {m.ratio:5d}  "
                     f"{m.path.name:34s} {m.quality or '-'}")
    return "\n".join(lines)

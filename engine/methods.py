"""The methods a user can choose, and how each becomes a per-tile function.

Classical methods need only numpy; deep methods need torch and a weights file (a
shipped model or the user's own ``.safetensors``). ``list_methods`` works without
torch, so a QGIS without torch still offers the classical methods and says how to
get the deep ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import registry
from .anchor import ANCHOR, Anchored, anchor_method, check_anchor
from .band_order import Reordered, model_order
from .classical import CLASSICAL
from .deps import TORCH_HELP, torch_available
from .errors import PansharpenError
from .families import DEFAULT_WEIGHTS_DIR, choose_model, weights_dir

DEFAULT_CLASSICAL = "mtf-glp-hpm"
WEIGHTS_DIR = DEFAULT_WEIGHTS_DIR  # the shipped folder; families.weights_dir() honours the override


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str
    kind: str  # "classical" | "deep"
    available: bool
    why_unavailable: str = ""


def shipped_weights(architecture: str) -> list[Path]:
    """Shipped weights files for an architecture (``<weights dir>/<family>-<arch>.safetensors``)."""
    return sorted(weights_dir().glob(f"*-{architecture}.safetensors"))


def list_methods() -> list[MethodInfo]:
    methods = [MethodInfo(m.name, m.summary, "classical", True) for m in CLASSICAL.values()]
    has_torch = torch_available()
    for name in registry.names():
        if not has_torch:
            why = f"PyTorch is not installed: {TORCH_HELP}."
        elif not shipped_weights(name):
            why = "no shipped model yet: give a weights file (.safetensors) trained with `pansharpen train`."
        else:
            why = ""
        methods.append(MethodInfo(name, registry.get(name).summary, "deep", not why, why))
    return methods


def method_names() -> list[str]:
    return [m.name for m in list_methods()]


def default_method(info=None) -> str:
    """The method used when the user asks for "auto": the best one that fits the inputs
    (``families.choose_model``: a shipped model of the pair's family, else classical)."""
    if info is None:
        return DEFAULT_CLASSICAL
    return choose_model(info).method


class ClassicalTileMethod:
    """A classical method bound to a pair's ratio and sensor, called per tile.

    Every classical method is scale-equivariant, f(c pan, c lms, c ms) = c f(pan, lms,
    ms) (its statistics, gains and guards scale with the data; tests/test_classical.py),
    so the engine runs it on digital numbers (``streaming.read_tile``'s ``in_dn``).
    """

    scale_equivariant = True

    def __init__(self, name: str, ratio: int, sensor: str | None):
        self._method = CLASSICAL[name]
        self.halo, self.pixelwise = self._method.halo, self._method.pixelwise
        self.ratio, self.sensor = ratio, sensor

    def __call__(self, pan, lms, ms):
        return self._method.run(pan, lms, ms, self.ratio, self.sensor)


def prepare(name: str, *, ratio: int, bands: int, sensor: str | None = None,
            weights: str | None = None, device: str = "auto", half: bool = True,
            consistent: bool = True, anchor: float = ANCHOR, band_names: tuple[str, ...] | None = None):
    """The per-tile callable for a method name (``auto`` resolved by the caller).

    Deep models get the bands in the order their metadata names when the file's
    ``band_names`` say it is another (``band_order``), are followed by the
    spectral-consistency projection (``consistency``) unless ``consistent`` is False,
    then mixed with the classical anchor (``anchor``: its share, 0 for none)."""
    if name in CLASSICAL:
        if weights:
            raise PansharpenError(f"{name} is a classical method and takes no weights file.")
        return ClassicalTileMethod(name, ratio, sensor)
    if not registry.is_deep(name):
        raise PansharpenError(
            f"Unknown method {name!r}: choose one of {', '.join(method_names())}."
        )
    if not torch_available():
        raise PansharpenError(f"The {name} method needs PyTorch: {TORCH_HELP}.")
    if weights is None:
        weights = shipped_weights_for(name, ratio, bands, sensor)
    from .models import load

    check_anchor(anchor)
    model = load(weights, device=device, half=half)
    _check_model_fits(model, name, ratio, bands)
    order = model_order(band_names, model.metadata.get("bands"))
    if order:
        model = Reordered(model, order)
    if consistent:
        from .consistency import Consistent, gains_for

        model = Consistent(model, ratio, gains_for(sensor, bands))
    return with_anchor(model, anchor, ratio, sensor)


def with_anchor(model, anchor: float, ratio: int, sensor: str | None):
    """A deep model mixed with the classical anchor at share ``anchor`` (itself at 0)."""
    anchor = check_anchor(anchor)
    return Anchored(model, ClassicalTileMethod(anchor_method(sensor), ratio, sensor), anchor) if anchor else model


def deep_options(name: str, consistent: bool = True, anchor: float = ANCHOR) -> dict:
    """Keyword arguments of ``prepare`` for a deep model's post-processing (none for a
    classical method), only those that differ from the defaults (a ``prepare_method``
    stand-in need not take them)."""
    if name in CLASSICAL:
        return {}
    options = {} if consistent else {"consistent": False}
    if anchor != ANCHOR:
        options["anchor"] = anchor
    return options


def shipped_weights_for(name: str, ratio: int, bands: int, sensor: str | None) -> str:
    """The shipped weights of ``name`` for the pair's family, or a clear refusal."""
    from types import SimpleNamespace

    choice = choose_model(SimpleNamespace(bands=bands, ratio=ratio, sensor=sensor), name)
    if choice.weights:
        return choice.weights
    files = shipped_weights(name)
    if not files:
        raise PansharpenError(
            f"No shipped {name} model: give a weights file (.safetensors) with --weights."
        )
    raise PansharpenError(
        f"No shipped {name} model fits {bands} bands at ratio {ratio} (shipped: "
        f"{', '.join(f.name for f in files)}): give your own weights file with --weights, "
        "or choose a classical method."
    )


def _check_model_fits(model, name: str, ratio: int, bands: int) -> None:
    meta = model.metadata
    if meta.get("architecture") != name:
        raise PansharpenError(
            f"The weights file holds a {meta.get('architecture')} model, not {name}: "
            f"choose method {meta.get('architecture')} or another file."
        )
    want_bands = int(meta.get("bands_count") or len(meta.get("bands", [])) or bands)
    if want_bands != bands:
        raise PansharpenError(
            f"The {name} model expects {want_bands} MS bands but the MS has {bands}: "
            "choose a model trained for this sensor, or a classical method."
        )
    if int(meta.get("ratio", ratio)) != ratio:
        raise PansharpenError(
            f"The {name} model was trained for ratio {meta.get('ratio')} but the pair has "
            f"ratio {ratio}: choose a model for this ratio, or a classical method."
        )

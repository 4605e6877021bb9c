"""The one registry of deep architectures and of the training pipelines that make them.

Everything that needs to know which deep methods exist reads this module: the method
list (``methods``), the shipped-model choice (``families``), the weights reader
(``models.weights``), the network builder (``models``), the training CLI
(``training.cli``) and the recipes. Adding a deep method is one model file, one stages
file, and one :func:`register` / :func:`register_pipeline` call (as
``tests/test_registry.py`` shows with a toy architecture).

The module imports neither torch nor the model files: classes and stage tables are
named as ``"module:attribute"`` strings and imported when first used, so a QGIS
without PyTorch can still list the deep methods and say how to get them. A
registration may also pass the objects themselves.

The network a registered class builds takes ``(pan, lms, ms, *, noise=None)`` and
returns the HRMS, and declares ``probe(pan, lms, ms)`` (one evaluation used to measure
its receptive field) and ``noise_shape(lms_shape)`` (the shape of its x_T for one
tile, or None for a deterministic network): see ``models.runtime.DeepModel``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Union

from .errors import PansharpenError

Ref = Union[str, Any]  # "package.module:attribute", or the object itself
_PACKAGE = __name__.rsplit(".", 2)[0]  # diffusion_pansharpening


@dataclass(frozen=True)
class Architecture:
    """A deep network the engine can run from a weights file."""

    name: str  # the method name and the weights file's ``architecture``
    summary: str  # one line for ``pansharpen methods``
    model: Ref  # nn.Module class, built as model(config)
    config: Ref  # its config dataclass (with a ``tiny(bands)`` preset)
    pipeline: str  # the training pipeline whose stages export it
    preferred: int | None = None  # rank for ``auto`` within a family (lowest first); None: never chosen
    card: bool = False  # the recipes write a model card for it
    adaptable: bool = True  # scene adaptation (engine/adapt.py) may fine-tune it

    def model_class(self):
        return resolve(self.model)

    def config_class(self):
        return resolve(self.config)


@dataclass(frozen=True)
class Pipeline:
    """A training pipeline: its stages (a dict ``{n: stage(run) -> StageResult}``) and the
    architectures whose weights its stages write (``OUT/<architecture>.safetensors``)."""

    name: str
    stages: Ref
    exports: tuple[str, ...]

    def stage_table(self) -> dict:
        return resolve(self.stages)

    @property
    def count(self) -> int:
        return len(self.stage_table())


_ARCHITECTURES: dict[str, Architecture] = {}
_PIPELINES: dict[str, Pipeline] = {}


def resolve(ref: Ref):
    """The object a ``"module:attribute"`` string names (objects are returned as they are)."""
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


def register(architecture: Architecture) -> Architecture:
    """Add (or replace, by name) a deep architecture."""
    _ARCHITECTURES[architecture.name] = architecture
    return architecture


def register_pipeline(pipeline: Pipeline) -> Pipeline:
    _PIPELINES[pipeline.name] = pipeline
    return pipeline


def unregister(name: str) -> None:
    """Remove an architecture and a pipeline of that name (tests register toys)."""
    _ARCHITECTURES.pop(name, None)
    _PIPELINES.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_ARCHITECTURES)


def get(name: str) -> Architecture:
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise PansharpenError(f"unknown architecture {name!r}; choose one of {', '.join(_ARCHITECTURES)}") from None


def is_deep(name: str) -> bool:
    return name in _ARCHITECTURES


def preferred() -> tuple[str, ...]:
    """The architectures ``auto`` may choose, best first."""
    ranked = [a for a in _ARCHITECTURES.values() if a.preferred is not None]
    return tuple(a.name for a in sorted(ranked, key=lambda a: a.preferred))


def adaptable() -> tuple[str, ...]:
    return tuple(a.name for a in _ARCHITECTURES.values() if a.adaptable)


def with_cards() -> tuple[str, ...]:
    return tuple(a.name for a in _ARCHITECTURES.values() if a.card)


def pipelines() -> dict[str, Pipeline]:
    return dict(_PIPELINES)


def pipeline(name: str) -> Pipeline:
    if name not in _PIPELINES:
        raise PansharpenError(f"unknown training pipeline {name!r}; choose one of {', '.join(_PIPELINES)}")
    return _PIPELINES[name]


def exported() -> tuple[str, ...]:
    """Every architecture some pipeline writes, in registration order."""
    return tuple(a for p in _PIPELINES.values() for a in p.exports)


# ---------------------------------------------------------------- the shipped methods

_FOSE = f"{_PACKAGE}.engine.models.fose"
_KSDIFF = f"{_PACKAGE}.engine.models.ksdiff"

register(Architecture("fose", "Fose: one-step distilled diffusion fused with an end-to-end network "
                      "(best quality/speed).", f"{_FOSE}:Fose", f"{_FOSE}:FoseConfig", "fose",
                      preferred=0, card=True))
register(Architecture("ksdiff", "KSDiff: kernel-space diffusion modulating a one-pass CNN.",
                      f"{_KSDIFF}:KSDiff", f"{_KSDIFF}:KSDiffConfig", "ksdiff", preferred=1, card=True))
register(Architecture("e2e", "Fose's end-to-end network alone (fastest deep method).",
                      f"{_FOSE}:E2ENet", f"{_FOSE}:FoseConfig", "fose"))
register(Architecture("dm1", "Fose's one-step distilled diffusion model alone.",
                      f"{_FOSE}:OneStepStudent", f"{_FOSE}:FoseConfig", "fose"))
register(Architecture("dm50", "Fose's teacher diffusion model, 50 DDIM steps (slow; for comparison).",
                      f"{_FOSE}:ResidualDenoiser", f"{_FOSE}:FoseConfig", "fose",
                      adaptable=False))  # 50 sampling steps: too slow to train through

register_pipeline(Pipeline("fose", f"{_PACKAGE}.training.fose_stages:STAGES", ("fose", "e2e", "dm1", "dm50")))
register_pipeline(Pipeline("ksdiff", f"{_PACKAGE}.training.ksdiff_stages:STAGES", ("ksdiff",)))

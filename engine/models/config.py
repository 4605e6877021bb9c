"""Turning a model config dataclass into JSON-able dicts and back, with clear errors."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Type, TypeVar

from ..errors import PansharpenError

C = TypeVar("C")


def config_to_dict(config: Any) -> dict:
    """A JSON-able dict of a config dataclass (tuples become lists)."""
    values = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def config_from_dict(cls: Type[C], values: Optional[dict], **overrides: Any) -> C:
    """Build ``cls`` from a (JSON) dict; lists become tuples; unknown keys are refused."""
    values = dict(values or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise PansharpenError(
            f"unknown {cls.__name__} setting(s) {unknown}; known settings are {sorted(names)}"
        )
    for key, value in values.items():
        if isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values)

"""Building networks from the registry (``engine/registry.py``): name + config -> module."""
from __future__ import annotations

from typing import Optional

from torch import nn

from ..errors import PansharpenError
from ..registry import get as architecture_of
from .config import config_from_dict, config_to_dict


def config_class(architecture: str):
    """The config dataclass of a registered architecture."""
    return architecture_of(architecture).config_class()


def build(architecture: str, config=None, bands: int = 4) -> nn.Module:
    """A freshly initialised network; ``config`` overrides the default sizes (a dict, a
    config instance, or "tiny")."""
    cls = config_class(architecture)
    if config == "tiny":
        cfg = cls.tiny(bands)
    elif config is not None and not isinstance(config, dict):
        if not isinstance(config, cls):
            raise PansharpenError(f"{architecture} takes a {cls.__name__}, not a {type(config).__name__}")
        cfg = config_from_dict(cls, config_to_dict(config))
    else:
        cfg = config_from_dict(cls, config, bands=None if config and "bands" in config else bands)
    return architecture_of(architecture).model_class()(cfg)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def describe(model: nn.Module) -> str:
    """One line per child module with its parameter count, then the total."""
    lines = [f"{name:<20} {count_parameters(child):>10,}" for name, child in model.named_children()
             if count_parameters(child)]
    return "\n".join(lines + [f"{'total':<20} {count_parameters(model):>10,}"])

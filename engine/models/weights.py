"""Weights files: ``.safetensors`` with metadata, never pickle (DESIGN.md 4).

A weights file must not be able to run code, so loading never calls ``torch.load``
and never unpickles: the file's header is checked to be a safetensors header before
the safetensors library opens it, and pickle / PyTorch zip checkpoints are refused
with a message that says so.

Metadata (safetensors allows string -> string only; structured values are JSON):
``architecture`` (one of fose, e2e, dm1, dm50, ksdiff), ``config`` (JSON of the
model's config dataclass), ``sensor``, ``bands`` (JSON list of band names), ``ratio``,
``scale``, ``training_data``, ``licence``, ``quality`` (JSON of measured indices).
"""
from __future__ import annotations

import json
import os
import struct
from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..errors import PansharpenError
from .config import config_to_dict

ARCHITECTURES = ("fose", "ksdiff", "e2e", "dm1", "dm50")
REQUIRED_METADATA = ("architecture", "config", "sensor", "bands", "ratio", "scale",
                     "training_data", "licence", "quality")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit


def build_metadata(architecture: str, config: Any, *, sensor: str, bands: list[str], ratio: int,
                   scale: float, training_data: str, licence: str,
                   quality: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
    """The string -> string metadata dict of a weights file."""
    if architecture not in ARCHITECTURES:
        raise PansharpenError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    return {
        "architecture": architecture,
        "config": json.dumps(config_to_dict(config) if not isinstance(config, dict) else config),
        "sensor": str(sensor),
        "bands": json.dumps(list(bands)),
        "ratio": str(int(ratio)),
        "scale": repr(float(scale)),
        "training_data": str(training_data),
        "licence": str(licence),
        "quality": json.dumps(dict(quality or {})),
    }


def save_weights(path: str, model: nn.Module, metadata: Mapping[str, str]) -> None:
    """Write the model's state dict (float32, CPU, contiguous) and its metadata."""
    from safetensors.torch import save_file

    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise PansharpenError(f"weights metadata lacks {missing}; build it with build_metadata()")
    tensors = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    save_file(tensors, path, metadata={k: str(v) for k, v in metadata.items()})


def _check_safetensors_header(path: str) -> None:
    """Refuse anything whose first bytes are not a safetensors header (u64 length + JSON)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(9)
    hint = ""
    if head[:1] == b"\x80":
        hint = " It looks like a Python pickle (.pt/.pth/.ckpt), which is never loaded because it can run code."
    elif head[:2] == b"PK":
        hint = " It looks like a PyTorch zip checkpoint (torch.save), which is never loaded because it can run code."
    not_st = (f"{path} is not a .safetensors weights file.{hint} "
              "Use weights saved as .safetensors (training/ writes them; see resources/).")
    if len(head) < 9:
        raise PansharpenError(not_st)
    (n,) = struct.unpack("<Q", head[:8])
    if not (2 <= n <= min(MAX_HEADER_BYTES, size - 8)) or head[8:9] != b"{":
        raise PansharpenError(not_st)


def read_weights(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, after checking it is one."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise PansharpenError(f"weights file {path} does not exist")
    _check_safetensors_header(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise PansharpenError(f"{path} is not a readable .safetensors file: {exc}") from exc
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise PansharpenError(f"weights file {path} lacks the metadata {missing}; "
                              f"a weights file must carry {list(REQUIRED_METADATA)}")
    if metadata["architecture"] not in ARCHITECTURES:
        raise PansharpenError(f"weights file {path} declares architecture {metadata['architecture']!r}; "
                              f"supported are {ARCHITECTURES}")
    return tensors, metadata


def parse_json_field(metadata: Mapping[str, str], key: str, path: str) -> Any:
    try:
        return json.loads(metadata[key])
    except (KeyError, json.JSONDecodeError) as exc:
        raise PansharpenError(f"weights file {path}: metadata {key!r} is not valid JSON ({exc})") from exc


def load_state(model: nn.Module, tensors: Mapping[str, torch.Tensor], architecture: str, path: str) -> None:
    """Copy tensors into the model, or say exactly which names and shapes differ."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(tensors)) if tensors[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing from the file (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) the model does not have (e.g. {unexpected[:3]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) ({'; '.join(shapes[:3])})")
    if problems:
        raise PansharpenError(
            f"weights file {path} does not match architecture {architecture!r} with its stored config: "
            + ", ".join(problems) + ". The file may be for another architecture or band count.")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})

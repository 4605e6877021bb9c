"""Weights files: ``.safetensors`` with metadata, never pickle (docs/design.md).

A weights file must not be able to run code, so loading never calls ``torch.load``
and never unpickles: the file's header is checked to be a safetensors header before
the safetensors library opens it, and pickle / PyTorch zip checkpoints are refused
with a message that says so.

Metadata (safetensors allows string -> string only; structured values are JSON):
``architecture`` (a name of ``engine/registry.py``), ``config`` (JSON of the
model's config dataclass), ``sensor``, ``bands`` (JSON list of band names), ``ratio``,
``scale``, ``training_data``, ``licence``, ``quality`` (JSON of measured indices).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from typing import Any, Mapping, Optional

import torch
from torch import nn

from .. import registry
from ..errors import PansharpenError
from .config import config_to_dict

REQUIRED_METADATA = ("architecture", "config", "sensor", "bands", "ratio", "scale",
                     "training_data", "licence", "quality")
MAX_HEADER_BYTES = 16 * 1024 * 1024  # shipped headers are a few KiB; the library allows 100 MiB
# What a weights file may ask for (the shipped models are far inside): a forged config
# must not make the engine allocate gigabytes or loop for hours (issue 11).
MAX_BANDS = 64
MAX_CHANNELS = 1024  # any width, dimension or hidden size
MAX_LEVELS = 8  # entries of widths / blocks / core_rank
MAX_REPEATS = 32  # blocks, levels and other counts
MAX_TIMESTEPS = 10_000
MAX_SAMPLE_STEPS = 1_000
MAX_PARAMETERS = 50_000_000
MAX_RATIO = 8
_COUNTS = ("blocks", "levels", "kernels")  # int settings that may be 0 and stay small


def build_metadata(architecture: str, config: Any, *, sensor: str, bands: list[str], ratio: int,
                   scale: float, training_data: str, licence: str,
                   quality: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
    """The string -> string metadata dict of a weights file."""
    registry.get(architecture)  # a registered name, or a clear error
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


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise PansharpenError(f"weights path {path} is a folder, not a file: give the .safetensors file itself")
    if not os.path.isfile(path):
        raise PansharpenError(f"weights file {path} does not exist: check the path")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def read_header(path: str) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata of a safetensors file, without reading any tensor."""
    from safetensors import safe_open

    _check_file(path)
    _check_safetensors_header(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            shapes = {k: tuple(int(n) for n in f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise PansharpenError(f"{path} is not a readable .safetensors file ({_one_line(exc)}): "
                              "use weights written by `pansharpen train`") from None
    _check_required(metadata, path)
    return shapes, metadata


def read_weights(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, after checking it is one."""
    from safetensors import safe_open

    _check_file(path)
    _check_safetensors_header(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise PansharpenError(f"{path} is not a readable .safetensors file ({_one_line(exc)}): "
                              "use weights written by `pansharpen train`") from None
    _check_required(metadata, path)
    return tensors, metadata


def _check_required(metadata: Mapping[str, str], path: str) -> None:
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise PansharpenError(f"weights file {path} lacks the metadata {missing}; "
                              f"a weights file must carry {list(REQUIRED_METADATA)}")
    if not registry.is_deep(metadata["architecture"]):
        raise PansharpenError(f"weights file {path} declares architecture {metadata['architecture']!r}; "
                              f"supported are {registry.names()}")


def parse_json_field(metadata: Mapping[str, str], key: str, path: str) -> Any:
    try:
        return json.loads(metadata[key])
    except (KeyError, TypeError, ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError
        raise PansharpenError(f"weights file {path}: metadata {key!r} is not valid JSON "
                              f"({_one_line(exc)[:120]}); use a file written by `pansharpen train`") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_range(key: str) -> tuple[int, int]:
    """Bounds of an integer config setting (see the MAX_* constants)."""
    if key == "bands":
        return 1, MAX_BANDS
    if key == "timesteps":
        return 1, MAX_TIMESTEPS
    if key == "sample_steps":
        return 1, MAX_SAMPLE_STEPS
    if key == "seed":
        return 0, 2 ** 63 - 1
    if key.endswith("grid"):
        return 1, 64
    if key == "kernel_size":
        return 1, 31
    if key.endswith(_COUNTS):
        return 0, MAX_REPEATS
    return 1, MAX_CHANNELS


def validate_config(cls: type, values: Any, path: str) -> dict:
    """A weights file's config checked against the fields of ``cls`` (types and bounds),
    before anything is built from it; returns it unchanged."""
    def bad(why: str) -> PansharpenError:
        return PansharpenError(f"weights file {path}: config {why}; use a file written by `pansharpen train`")

    if not isinstance(values, dict):
        raise bad(f"is a JSON {type(values).__name__}, not an object of settings")
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(values) - set(defaults))
    if unknown:
        raise bad(f"has unknown {cls.__name__} setting(s) {unknown[:5]}")
    for key, value in values.items():
        default, shown = defaults[key], repr(value)[:40]
        if isinstance(default, tuple):
            low, high = (0, MAX_REPEATS) if key.endswith(_COUNTS) else (1, MAX_CHANNELS)
            if (not isinstance(value, list) or not 1 <= len(value) <= MAX_LEVELS
                    or not all(_is_int(v) and low <= v <= high for v in value)):
                raise bad(f"{key!r} must be a list of 1 to {MAX_LEVELS} whole numbers in "
                          f"{low}..{high}, not {shown}")
        elif _is_int(default):
            low, high = _int_range(key)
            if not _is_int(value) or not low <= value <= high:
                raise bad(f"{key!r} must be a whole number in {low}..{high}, not {shown}")
        elif isinstance(default, float):
            if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value) or abs(value) > 1e6:
                raise bad(f"{key!r} must be a finite number, not {shown}")
    steps = values.get("sample_steps", defaults.get("sample_steps", 1))
    if steps > values.get("timesteps", defaults.get("timesteps", steps)):
        raise bad(f"asks for {steps} sampling steps, more than its {values.get('timesteps')} timesteps")
    return values


def validate_metadata(metadata: Mapping[str, str], bands: int, path: str) -> None:
    """``ratio``, ``scale``, ``bands`` and ``quality`` of a weights file are well formed and
    agree with its config's ``bands``."""
    def bad(why: str) -> PansharpenError:
        return PansharpenError(f"weights file {path}: metadata {why}; use a file written by `pansharpen train`")

    ratio = str(metadata.get("ratio", ""))
    if not ratio.isdigit() or not 2 <= int(ratio) <= MAX_RATIO:
        raise bad(f"'ratio' must be a whole number from 2 to {MAX_RATIO}, not {ratio[:20]!r}")
    try:
        scale = float(str(metadata.get("scale")))
    except ValueError:
        scale = math.nan
    if not math.isfinite(scale) or scale <= 0:
        raise bad(f"'scale' must be a positive number, not {str(metadata.get('scale'))[:20]!r}")
    names = parse_json_field(metadata, "bands", path)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad("'bands' must be a list of band names")
    if len(names) != bands:
        raise bad(f"lists {len(names)} band names but the config has {bands} bands")
    if not isinstance(parse_json_field(metadata, "quality", path), dict):
        raise bad("'quality' must be a JSON object")
    if not isinstance(metadata.get("normalisation", ""), str):
        raise bad("'normalisation' must be a string")


def check_tensors(expected: Mapping[str, tuple], found: Mapping[str, tuple], architecture: str,
                  path: str) -> None:
    """Refuse a file whose tensor names or shapes are not those of the model, saying which."""
    expected = {k: tuple(v) for k, v in expected.items()}
    found = {k: tuple(v) for k, v in found.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f"{k}: file {found[k]} vs model {expected[k]}"
              for k in sorted(set(expected) & set(found)) if found[k] != expected[k]]
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


def load_state(model: nn.Module, tensors: Mapping[str, torch.Tensor], architecture: str, path: str) -> None:
    """Copy tensors into the model, or say exactly which names and shapes differ."""
    expected = model.state_dict()
    check_tensors({k: v.shape for k, v in expected.items()}, {k: v.shape for k, v in tensors.items()},
                  architecture, path)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})

"""Training configuration files (TOML): data, model sizes and one table per stage.

Layout (see ``configs/tiny.toml`` and ``configs/cpu.toml``)::

    seed = 0
    [data]            paths, val_fraction, patch, stride, crop, normalisation
                      ("scale": constant, the default; "scene": scene
                      statistics, one mapping for all bands and the PAN;
                      "scene-band": per band; see engine.radiometry)
    [stage]           defaults for every stage (StageConfig fields)
    [fose.model]      the Fose model config passed to engine.models.build
    [fose.stage1]     overrides for Fose stage 1 (and stage2, stage3, stage4)
    [ksdiff.model]    the KSDiff model config
    [ksdiff.stage1]   overrides for KSDiff stage 1 (and stage2)
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..engine.errors import PansharpenError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class StageConfig:
    """Optimisation settings of one stage (the trainer's only knobs).

    ``lr`` peaks after ``warmup`` linear steps and decays by a half cosine to
    ``lr * min_lr_ratio`` at ``steps`` (project choice). ``ema`` is the EMA decay (0:
    off; used for the diffusion models). ``amp`` enables autocast on CUDA only
    (bfloat16 when supported, else float16 with a gradient scaler)."""

    steps: int = 100
    batch: int = 8  # global batch (split across DDP processes)
    lr: float = 1e-3
    min_lr_ratio: float = 0.01
    warmup: int = 10
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    clip: float = 1.0  # max global gradient norm; 0 disables
    ema: float = 0.0
    amp: bool = True
    checkpoint_every: int = 100
    log_every: int = 1
    val_batch: int = 8
    val_patches: int = 0  # 0: all validation patches
    sample_steps: int = 50  # Fose teacher's DDIM steps: stage-1 validation, stage-2 target
    cache_teacher: bool = False  # Fose stage 2: precompute the teacher's outputs
    loss_weight: float = 1.0  # extra loss weight (Fose stage 2 L1, KSDiff lambda)
    sam_weight: float = 0.0  # weight of the spectral angle beside each L1 to the ground truth
    spectral_jitter: float = 0.0  # per-band gains exp(U(-j, j)) on a patch's MS, LMS and ground truth (0: off)
    pan_mix: float = 0.0  # up to this share of a patch's PAN replaced by a random band mix of its truth (0: off)


def stage_config(table: dict) -> StageConfig:
    known = {f.name for f in fields(StageConfig)}
    unknown = set(table) - known
    if unknown:
        raise PansharpenError(f"unknown stage settings {sorted(unknown)}; known: "
                              f"{sorted(known)}")
    values = dict(table)
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return replace(StageConfig(), **values)


def resolve_config_path(name: str | Path) -> Path:
    """A path, or the name of a shipped config (``tiny``, ``cpu``)."""
    path = Path(name)
    if path.exists():
        return path
    shipped = CONFIG_DIR / f"{name}.toml"
    if shipped.exists():
        return shipped
    raise PansharpenError(f"config {name} not found; give a TOML path or one of "
                          f"{sorted(p.stem for p in CONFIG_DIR.glob('*.toml'))}")


def load_config(name: str | Path) -> dict:
    path = resolve_config_path(name)
    with open(path, "rb") as f:
        config = tomllib.load(f)
    config["_path"] = str(path)
    return config


def stage_settings(config: dict, pipeline: str, stage: int) -> StageConfig:
    """The stage's settings: ``[stage]`` defaults overridden by ``[pipeline.stageN]``."""
    table = dict(config.get("stage", {}))
    table.update(config.get(pipeline, {}).get(f"stage{stage}", {}))
    return stage_config(table)


def model_config(config: dict, pipeline: str) -> dict:
    return dict(config.get(pipeline, {}).get("model", {}))


def data_paths(config: dict, override: list[str] | None) -> list[Path]:
    """``--data`` wins; else ``[data] paths`` from the config, relative paths tried
    against the current directory, then the project root (so the shipped configs
    find ``../shared/data`` from either)."""
    if override:
        return [Path(p) for p in override]
    paths = config.get("data", {}).get("paths")
    if not paths:
        raise PansharpenError("no training data: pass --data or set [data] paths")
    root = Path(__file__).resolve().parents[1]
    out = []
    for p in paths:
        p = Path(p)
        if not p.is_absolute() and not p.exists() and (root / p).exists():
            p = root / p
        out.append(p)
    return out

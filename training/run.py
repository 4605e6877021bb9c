"""What every stage function shares: the run (config, data, output folder, process)
and the saving/loading of stage outputs as ``.safetensors`` through the engine.

Output layout under ``--out`` (project choice)::

    OUT/dm50.safetensors  dm1.safetensors  e2e.safetensors  fose.safetensors
    OUT/ksdiff-stage1.safetensors  ksdiff.safetensors
    OUT/fose-stage1/ ... ksdiff-stage2/   checkpoint, log.csv, validation.json, tensorboard/

A stage reads the previous stages' weights from the same ``OUT``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..engine import sensors
from ..engine.errors import PansharpenError
from .config import StageConfig, model_config, stage_settings
from .datasets import PatchSet
from .trainer import Dist

#: Licence notes for the shared data sets (../shared/data/README.md); the model card
#: of weights trained on them must carry them.
DATA_LICENCES = {
    "grip": "GRIP-UNINA licence: informational and non-profit use only; cite Masi et al. "
            "2016 (Remote Sensing 8(7):594) and Scarpa et al. 2018 (IEEE TGRS 56(9))",
    "wv3_patches": "GPL-3.0 (WV3 patches from the FusionNet authors' public repository)",
    "landsat8": "CC0 (USGS Landsat-8)",
}


def data_licence(source: str) -> str:
    for key, licence in DATA_LICENCES.items():
        if key in source:
            return licence
    return "the licence of the user's training data (not recorded)"


@dataclass
class Run:
    """One invocation of a pipeline: config, data, where to write, which process."""

    config: dict
    train: PatchSet
    val: PatchSet | None
    out: Path
    resume: bool | str = False  # True, False or "auto" (see trainer.train_stage)
    dist: Dist = field(default_factory=Dist)
    stop_after: int | None = None  # simulate an interruption (tests)
    progress: bool = True

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def bands(self) -> int:
        return self.train.bands

    def settings(self, pipeline: str, stage: int) -> StageConfig:
        return stage_settings(self.config, pipeline, stage)

    def model_config(self, pipeline: str) -> dict:
        return model_config(self.config, pipeline)

    def architecture(self, pipeline: str, config_class):
        """``[<pipeline>.model]`` as ``config_class``; ``preset = "tiny"`` starts from its tiny preset."""
        from ..engine.models.config import config_from_dict, config_to_dict

        values = self.model_config(pipeline)
        preset = values.pop("preset", None)
        base = config_to_dict(config_class.tiny(self.bands)) if preset == "tiny" else {}
        base.update(values)
        return config_from_dict(config_class, base, bands=self.bands)

    def run_stage(self, stage, pipeline: str, n: int):
        """Run stage ``n`` of ``pipeline`` with its settings, folder and this run's process."""
        from .trainer import train_stage

        return train_stage(stage, self.train, self.val, self.settings(pipeline, n),
                           self.stage_dir(pipeline, n), seed=self.seed, resume=self.resume,
                           stop_after=self.stop_after, dist=self.dist, progress=self.progress)

    def stage_dir(self, pipeline: str, stage: int) -> Path:
        return self.out / f"{pipeline}-stage{stage}"

    def weights_path(self, name: str) -> Path:
        return self.out / f"{name}.safetensors"

    def band_names(self) -> list[str]:
        known = sensors.lookup(self.train.sensor)  # band names by sensor: engine/sensors.py
        names = known.band_names_for(self.bands) if known else None
        return list(names) if names else [f"band{i + 1}" for i in range(self.bands)]

    def metadata(self, architecture: str, config, quality: dict | None) -> dict:
        """The weights file's metadata (docs/design.md), via engine.models.build_metadata."""
        from ..engine.models import build_metadata

        meta = build_metadata(
            architecture, config, sensor=self.train.sensor or "unknown",
            bands=self.band_names(), ratio=self.train.ratio, scale=self.train.scale,
            training_data=self.train.source, licence=data_licence(self.train.source),
            quality=quality or {})
        if self.normalisation != "scale":
            from ..engine.radiometry import RECORDED

            meta["normalisation"] = RECORDED[self.normalisation]  # the engine then does the same
        return meta

    @property
    def normalisation(self) -> str:
        """``[data] normalisation``: "scale" (constant, default), "scene" or "scene-band"."""
        return self.config.get("data", {}).get("normalisation", "scale")


def save_model(run: Run, name: str, architecture: str, model: nn.Module,
               quality: dict | None) -> Path:
    """Write a stage's model as ``OUT/name.safetensors``: rank 0 writes, every process
    waits for it (the next stage reads the file on every process)."""
    from ..engine.models import save_weights

    path = run.weights_path(name)
    if run.dist.main:
        save_weights(str(path), model, run.metadata(architecture, model.config, quality))
    if run.dist.world > 1:
        import torch.distributed as tdist
        tdist.barrier()
    return path


def load_model(run: Run, name: str, architecture: str) -> nn.Module:
    """Read an earlier stage's output ``OUT/name.safetensors`` (safetensors only, checked
    by the engine's reader) into a freshly built network of its stored config."""
    from ..engine.models import build
    from ..engine.models.weights import load_state, parse_json_field, read_weights

    path = run.weights_path(name)
    if not path.exists():
        raise PansharpenError(f"{path} is missing: run the stage that makes {name} first "
                              "(or 'train all') with the same --out")
    tensors, meta = read_weights(str(path))
    if meta["architecture"] != architecture:
        raise PansharpenError(f"{path} holds a {meta['architecture']!r} model, not "
                              f"{architecture!r}")
    model = build(architecture, parse_json_field(meta, "config", str(path)))
    load_state(model, tensors, architecture, str(path))
    return model.to(run.dist.device)


def freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)

"""The one-place extension of the architecture issue: a toy architecture registered here,
and nowhere else, is listed, trains, is saved and read back, and runs through the tiled
engine from the command line."""
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import read_raster
from diffusion_pansharpening.engine import registry


@dataclass
class ToyConfig:
    bands: int = 4
    width: int = 8
    seed: int = 0

    @classmethod
    def tiny(cls, bands: int = 4) -> "ToyConfig":
        return cls(bands=bands, width=4)


class ToyNet(nn.Module):
    """Residual = two 3x3 convolutions of [PAN, LMS]: deterministic, halo 2."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.body = nn.Sequential(nn.Conv2d(1 + config.bands, config.width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(config.width, config.bands, 3, padding=1))

    def forward(self, pan, lms, ms):
        return lms + self.body(torch.cat([pan, lms], 1))

    def probe(self, pan, lms, ms):
        return self.forward(pan, lms, ms)

    def noise_shape(self, lms_shape):
        return None


def toy_stage(run):
    """The toy's one training stage: L1 to the ground truth, weights to OUT/toy.safetensors."""
    from diffusion_pansharpening.training.run import save_model
    from diffusion_pansharpening.training.trainer import Stage

    torch.manual_seed(run.seed)
    model = ToyNet(run.architecture("toy", ToyConfig))
    forward = lambda b: model(b["pan"], b["lms"], b["ms"])
    result = run.run_stage(Stage("toy-1", model, lambda b: F.l1_loss(forward(b), b["gt"]), forward), "toy", 1)
    save_model(run, "toy", "toy", model, result.validation)
    return result


@pytest.fixture
def toy():
    registry.register(registry.Architecture("toy", "A toy residual CNN (tests).", ToyNet, ToyConfig, "toy"))
    registry.register_pipeline(registry.Pipeline("toy", {1: toy_stage}, ("toy",)))
    yield
    registry.unregister("toy")


@pytest.fixture
def tiny_on_sample(tmp_path):
    """The tiny training config on the sample's top-left 128 x 128 MS pixels, 32-pixel patches."""
    from diffusion_pansharpening.training.config import resolve_config_path

    text = resolve_config_path("tiny").read_text()
    for setting in ("crop = 0", "patch = 64", "stride = 32"):
        assert setting in text
    path = tmp_path / "tiny-crop.toml"
    path.write_text(text.replace("crop = 0", "crop = 128").replace("patch = 64", "patch = 32")
                    .replace("stride = 32", "stride = 16"))
    return str(path)


def test_a_toy_registered_in_one_place_is_listed_trains_loads_and_runs(toy, tiny_on_sample, sample_paths,
                                                                        tmp_path, capsys):
    from diffusion_pansharpening.engine import cli, models
    from diffusion_pansharpening.training import cli as train_cli

    assert cli.main(["methods"]) == 0
    assert "A toy residual CNN" in capsys.readouterr().out

    pan, ms = sample_paths
    runs = tmp_path / "runs"
    assert train_cli.main(["toy", "--stage", "1", "--config", tiny_on_sample, "--data", pan, ms, "--out", str(runs),
                           "--no-progress"]) == 0
    weights = runs / "toy.safetensors"
    model = models.load(str(weights), device="cpu")
    assert model.architecture == "toy" and model.halo == 2 and model.ratio == 2

    out = tmp_path / "toy.tif"
    assert cli.main(["sharpen", pan, ms, str(out), "--method", "toy", "--weights", str(weights),
                     "--no-check", "--quiet", "--float32"]) == 0
    fused, lms_like = read_raster(out), read_raster(ms)
    assert fused.shape[0] == lms_like.shape[0] and np.isfinite(fused).all()
    # band means follow the MS (the consistency projection runs after any deep model)
    np.testing.assert_allclose(fused.mean((1, 2)), lms_like.astype(float).mean((1, 2)), rtol=0.02)


def test_the_training_loss_of_the_toy_goes_down(toy, tiny_on_sample, sample_paths, tmp_path):
    import csv

    from diffusion_pansharpening.training import cli as train_cli

    pan, ms = sample_paths
    assert train_cli.main(["toy", "--stage", "1", "--config", tiny_on_sample, "--data", pan, ms,
                           "--out", str(tmp_path), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(next(tmp_path.glob("toy-stage1/*.csv")))))
    losses = [float(r["loss"]) for r in rows if r.get("loss")]
    assert len(losses) > 10 and np.mean(losses[-5:]) < np.mean(losses[:5])


def test_unknown_names_are_refused_in_one_line():
    from diffusion_pansharpening.engine.errors import PansharpenError

    with pytest.raises(PansharpenError, match="unknown architecture 'nope'; choose one of fose"):
        registry.get("nope")
    assert registry.preferred() == ("fose", "ksdiff")
    assert set(registry.exported()) == set(registry.names())

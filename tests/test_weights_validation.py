"""Issue 11, defects 2 and 3: a weights file or a training checkpoint, however forged,
truncated or malformed, gives one PansharpenError line, and nothing is allocated for
it before its config and tensor shapes are checked."""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.models import build, build_metadata, load

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def tiny_e2e_file(path, config=None, **metadata):
    """A real tiny e2e model saved with its metadata, ``config`` and ``metadata`` forged."""
    torch.manual_seed(0)
    model = build("e2e", "tiny")
    meta = build_metadata("e2e", model.config, sensor="IKONOS", bands=["b", "g", "r", "n"], ratio=4,
                          scale=2047, training_data="test", licence="CC0", quality={})
    if config is not None:
        meta["config"] = config if isinstance(config, str) else json.dumps({**json.loads(meta["config"]), **config})
    meta.update(metadata)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    return str(path)


def refused(path, match=None):
    with pytest.raises(PansharpenError, match=match) as info:
        load(path, device="cpu")
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    return message


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("config, match", [
    ({"e2e_width": 6000}, "'e2e_width' must be a whole number in 1..1024"),
    ({"e2e_width": 1e9}, "'e2e_width' must be a whole number"),
    ({"timesteps": 1e10}, "'timesteps' must be a whole number"),
    ({"sample_steps": 1_000_000}, "'sample_steps' must be a whole number in 1..1000"),
    ({"widths": []}, "'widths' must be a list of 1 to"),
    ({"widths": [4, "8"]}, "'widths' must be a list"),
    ({"e2e_blocks": "3"}, "'e2e_blocks' must be a whole number"),
    ({"residual_scale": "ten"}, "'residual_scale' must be a finite number"),
    ({"bands": 0}, "'bands' must be a whole number in 1..64"),
    ({"sample_steps": 900, "timesteps": 100}, "more than its 100 timesteps"),
    ("[1, 2]", "not an object of settings"),
    ("\"fose\"", "not an object of settings"),
    (DEEP, "'config' is not valid JSON"),
    ("{oops", "'config' is not valid JSON"),
], ids=["width6000", "width1e9", "timesteps1e10", "steps1e6", "widths-empty", "widths-str", "blocks-str",
        "scale-str", "bands0", "steps>timesteps", "list", "string", "deep", "broken"])
def test_forged_config_is_one_line_before_anything_is_built(tmp_path, config, match):
    refused(tiny_e2e_file(tmp_path / "forged.safetensors", config), match)


@pytest.mark.parametrize("key, value, match", [
    ("ratio", "abc", "'ratio' must be a whole number from 2 to 8"),
    ("ratio", "1", "'ratio' must be a whole number from 2 to 8"),
    ("ratio", "4.5", "'ratio' must be"),
    ("scale", "nan", "'scale' must be a positive number"),
    ("scale", "-3", "'scale' must be a positive number"),
    ("bands", "[]", "lists 0 band names but the config has 4 bands"),
    ("bands", "{\"a\": 1}", "'bands' must be a list of band names"),
    ("bands", DEEP, "'bands' is not valid JSON"),
    ("quality", "[1]", "'quality' must be a JSON object"),
    ("quality", "{", "'quality' is not valid JSON"),
], ids=["ratio-abc", "ratio1", "ratio4.5", "scale-nan", "scale-neg", "bands-empty", "bands-dict", "bands-deep",
        "quality-list", "quality-broken"])
def test_malformed_metadata_is_one_line(tmp_path, key, value, match):
    refused(tiny_e2e_file(tmp_path / "meta.safetensors", **{key: value}), match)


def test_a_config_that_cannot_be_built_is_one_line(tmp_path):
    path = tmp_path / "fose.safetensors"
    model = build("fose", "tiny")
    meta = build_metadata("fose", model.config, sensor="x", bands=list("bgrn"), ratio=4, scale=2047,
                          training_data="t", licence="CC0", quality={})
    config = json.loads(meta["config"])
    config["blocks"] = [1]  # two levels of widths, one of blocks
    meta["config"] = json.dumps(config)
    save_file(model.state_dict(), str(path), metadata=meta)
    refused(str(path), "does not describe a model that can be built|does not match")


def test_a_weights_folder_is_not_said_to_be_missing(tmp_path):
    assert "is a folder, not a file" in refused(str(tmp_path))


MEMORY_PROBE = """
import json, resource, sys, torch
from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.models import load
torch.set_num_threads(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:
        load(path, device="cpu")
    except PansharpenError:
        pass
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024))
"""


@pytest.mark.slow  # a few seconds: out of make test-fast
def test_a_small_forged_file_cannot_make_the_engine_allocate(tmp_path):
    """Sizes within the bounds but not those of the file's tensors, and a fose whose
    config asks for hundreds of millions of parameters: refused from the header and a
    meta-device build, with no real allocation (the old loader built them first:
    about 230 MB for the first, gigabytes for the second)."""
    files = [tiny_e2e_file(tmp_path / "wide.safetensors", {"e2e_width": 1024}),
             tiny_e2e_file(tmp_path / "deep.safetensors", {"e2e_width": 1000, "e2e_blocks": 8})]
    assert all(Path(f).stat().st_size < 100_000 for f in files)
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, *files], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    grown_mb = json.loads(done.stdout.strip().splitlines()[-1])
    assert grown_mb < 60, f"loading two forged files grew the peak RSS by {grown_mb} MB"


# ------------------------------------------------------------ training checkpoints

def _stage():
    from diffusion_pansharpening.engine.models.fose import E2ENet, FoseConfig
    from diffusion_pansharpening.training.trainer import Stage

    net = E2ENet(FoseConfig.tiny(bands=4))
    loss = lambda b: (net(b["pan"], b["lms"], b["ms"]) - b["gt"]).abs().mean()
    return Stage("test-e2e", net, loss, predict=lambda b: net(b["pan"], b["lms"], b["ms"]))


@pytest.fixture(scope="module")
def patches():
    return _patches()


def _patches():
    from diffusion_pansharpening.training.datasets import PatchSet

    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(16, 4, 32, 32, generator=gen)
    ms = gt.reshape(16, 4, 8, 4, 8, 4).mean((3, 5))
    lms = ms.repeat_interleave(4, 2).repeat_interleave(4, 3)
    return PatchSet(gt=gt, lms=lms, ms=ms, pan=gt.mean(1, keepdim=True), scale=1.0, ratio=4,
                    source="random")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickle", "foreign"])
def test_resume_from_a_damaged_checkpoint_is_one_line(tmp_path, patches, damage):
    from diffusion_pansharpening.training.config import StageConfig
    from diffusion_pansharpening.training.trainer import CHECKPOINT, train_stage

    cfg = StageConfig(steps=2, batch=4, warmup=1, checkpoint_every=1000)
    train_stage(_stage(), patches, None, cfg, tmp_path, progress=False)
    ckpt = tmp_path / CHECKPOINT
    data = ckpt.read_bytes()
    if damage == "truncated":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"\x07" * 5000)
    elif damage == "pickle":
        ckpt.write_bytes(pickle.dumps({"model": [1, 2, 3]}))
    else:  # a real safetensors file of the right stage, with tensors of another model
        save_file({"model.x": torch.zeros(3)}, str(ckpt), metadata={
            "format": "diffusion-pansharpening training checkpoint v1", "stage": "test-e2e", "step": "1"})
    with pytest.raises(PansharpenError, match="--resume: the checkpoint .* delete it") as info:
        train_stage(_stage(), patches, None, cfg, tmp_path, resume=True, progress=False)
    assert "\n" not in str(info.value)


TRAINER = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_weights_validation import _stage, _patches
from diffusion_pansharpening.training.config import StageConfig
from diffusion_pansharpening.training.trainer import train_stage
torch.set_num_threads(1)
cfg = StageConfig(steps=100000, batch=4, warmup=1, checkpoint_every=3)
train_stage(_stage(), _patches(), None, cfg, sys.argv[1], progress=False)
"""


@pytest.mark.training  # runs a training stage
def test_fault_killing_a_training_stage_keeps_the_last_checkpoint(tmp_path):
    """SIGTERM and SIGKILL at random points of a stage that checkpoints every 3 steps:
    the checkpoint left is always a complete one, and --resume continues from it."""
    import random
    import signal
    import time

    from diffusion_pansharpening.training.config import StageConfig
    from diffusion_pansharpening.training.trainer import CHECKPOINT, train_stage

    rng = random.Random(5)
    script = TRAINER.format(tests=str(Path(__file__).parent))
    steps = []
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
        run = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE)
        end = time.time() + 60
        while not (tmp_path / CHECKPOINT).exists() and time.time() < end and run.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        run.send_signal(sig)
        run.communicate(timeout=60)
        assert run.returncode != 0
        from safetensors import safe_open

        with safe_open(str(tmp_path / CHECKPOINT), framework="pt") as f:  # complete and readable
            steps.append(int(f.metadata()["step"]))
    assert steps[0] >= 3 and steps[-1] >= steps[0]
    cfg = StageConfig(steps=steps[-1] + 2, batch=4, warmup=1, checkpoint_every=3)
    result = train_stage(_stage(), _patches(), None, cfg, tmp_path, resume=True, progress=False)
    assert result.step == steps[-1] + 2

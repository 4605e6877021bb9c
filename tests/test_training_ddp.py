"""Multi-process training: the real command under ``torchrun --nproc_per_node 2`` on
the CPU (gloo) agrees with the same command in one process (same global batch)."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from conftest import shared_file

from diffusion_pansharpening.engine.models.weights import read_weights

ROOT = Path(__file__).resolve().parents[1]

# the teacher's stage (diffusion loss: per-sample noise and timesteps must be split
# across the processes exactly as one process draws them), 6 steps, EMA on
CONFIG = """
seed = 5
[data]
val_fraction = 0.2
[stage]
steps = 6
batch = 8
lr = 3e-3
warmup = 2
ema = 0.9
checkpoint_every = 100
val_patches = 4
sample_steps = 2
[fose.model]
preset = "tiny"
"""


def _train(out: Path, config: Path, processes: int) -> subprocess.CompletedProcess:
    command = ["-m", "diffusion_pansharpening.training.cli", "train", "fose", "--stage", "1",
               "--config", str(config), "--data", str(shared_file("wv3_patches/train.mat")),
               "--out", str(out), "--device", "cpu", "--no-progress"]
    if processes > 1:
        command = ["-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}"] + command
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable] + command, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_two_gloo_processes_agree_with_one(tmp_path):
    config = tmp_path / "ddp.toml"
    config.write_text(CONFIG)
    single = _train(tmp_path / "single", config, 1)
    assert single.returncode == 0, single.stderr
    double = _train(tmp_path / "double", config, 2)
    assert double.returncode == 0, double.stderr
    a, _ = read_weights(str(tmp_path / "single" / "dm50.safetensors"))
    b, meta = read_weights(str(tmp_path / "double" / "dm50.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    # the logged losses (global means) agree step by step
    import csv
    rows = lambda p: [float(r["loss"]) for r in csv.DictReader(open(p / "fose-stage1" / "log.csv"))]
    torch.testing.assert_close(torch.tensor(rows(tmp_path / "double")),
                               torch.tensor(rows(tmp_path / "single")), rtol=1e-5, atol=1e-7)
    # only rank 0 wrote: one log, one report line
    assert double.stderr.count("fose stage 1: step 6") == 1

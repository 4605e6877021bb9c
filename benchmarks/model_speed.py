"""Time the deep models side by side on the same tile and device: the papers' ratios.

Fose claims 7.42x over its 50-step teacher, KSDiff over 500x over pixel-space
diffusion. Each round runs every model once on the same normalised tile, in turn, so
machine noise hits all of them alike; the medians over rounds and the ratios are
printed (and written as JSON with --json).

    .venv/bin/python benchmarks/model_speed.py [--tile 512] [--rounds 5] [--weights-dir DIR]

Without weights the shipped default configurations are built untrained: the compute
is the same as that of trained weights of the same configuration.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffusion_pansharpening.engine.models import DeepModel, build, load

ARCHITECTURES = ("e2e", "dm1", "fose", "ksdiff", "dm50")


def models(weights_dir: Path | None, bands: int, ratio: int, device: str) -> dict[str, DeepModel]:
    out = {}
    for arch in ARCHITECTURES:
        files = sorted(weights_dir.glob(f"*{arch}.safetensors")) if weights_dir else []
        if files:
            out[arch] = load(str(files[0]), device=device)
        else:
            out[arch] = DeepModel(build(arch, None, bands=bands), arch, {"architecture": arch, "ratio": ratio}, device)
    return out


def tile(size: int, bands: int, ratio: int, seed: int = 0):
    """A tile of real-looking statistics: smooth MS, PAN correlated with it."""
    rng = np.random.default_rng(seed)
    ms = rng.uniform(0.2, 0.6, (bands, size // ratio, size // ratio)).astype(np.float32)
    lms = np.repeat(np.repeat(ms, ratio, 1), ratio, 2)
    pan = (lms.mean(0) + 0.05 * rng.standard_normal((size, size))).astype(np.float32)
    return pan, lms, ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--ratio", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    nets = models(args.weights_dir, args.bands, args.ratio, args.device)
    pan, lms, ms = tile(args.tile, args.bands, args.ratio)
    for net in nets.values():  # warm-up: allocator, kernels, lazy halo
        net(pan[:64, :64], lms[:, :64, :64], ms[:, :64 // args.ratio, :64 // args.ratio])
    times = {arch: [] for arch in nets}
    for _ in range(args.rounds):
        for arch, net in nets.items():
            start = time.perf_counter()
            net(pan, lms, ms)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[arch].append(time.perf_counter() - start)
    median = {arch: statistics.median(t) for arch, t in times.items()}
    print(f"{args.tile} x {args.tile} tile, {args.bands} bands, ratio {args.ratio}, {args.device}, "
          f"torch threads {torch.get_num_threads()}, {args.rounds} rounds")
    for arch, t in times.items():
        print(f"  {arch:7s} median {median[arch]:8.3f} s   min {min(t):8.3f}   max {max(t):8.3f}")
    ratios = {"dm50/fose": median["dm50"] / median["fose"], "dm50/ksdiff": median["dm50"] / median["ksdiff"],
              "fose/e2e": median["fose"] / median["e2e"]}
    for name, value in ratios.items():
        print(f"  {name:12s} {value:8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": times, "median": median, "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

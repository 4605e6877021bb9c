"""The CUDA half of ``benchmarks/gpu_check.sh``: deep-method throughput on a GPU and a
CUDA-against-CPU check on one tile, as a markdown table.

1. For ``--methods`` (default fose, ksdiff, e2e; shipped ``--family`` weights) and each
   precision (float16 autocast, float32): ``pipeline.sharpen`` on the Landsat-8 scene
   upsampled to ``--size`` x ``--size`` PAN (``inputs.landsat_scene``), whole raster,
   in this process, the model loaded once before the clock starts (a warm-up run on a
   small scene), output MP/s.
2. One 512-pixel tile of the real sample through each model on the GPU and on the
   CPU (eager PyTorch float32, the reference): largest absolute difference, against
   2e-3 for float32 (cuDNN may use TF32) and 2e-2 for float16.

``--dry-run`` runs the same code on the CPU (``--device cpu``) on a small scene with
one method, for checking the script where there is no GPU.

    .venv/bin/python benchmarks/gpu_check.py [--size 8000] [--methods fose,ksdiff,e2e]
    .venv/bin/python benchmarks/gpu_check.py --dry-run
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inputs  # noqa: E402

from diffusion_pansharpening.engine.models import load, precision_name  # noqa: E402
from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = {"float32": 2e-3, "float16": 2e-2, "bfloat16": 2e-2}  # bfloat16: the CPU dry run


def weights(family: str, method: str) -> str:
    path = ROOT / "resources" / "weights" / f"{family}-{method}.safetensors"
    if not path.exists():
        raise SystemExit(f"gpu_check: shipped weights {path} are missing")
    return str(path)


def run_scene(scene, method, path, device, half, out: Path) -> float:
    start = time.perf_counter()
    sharpen(SharpenRequest(scene.pan, scene.ms, str(out), method=method, weights=path, device=device,
                           half=half, check=False, overwrite=True))
    seconds = time.perf_counter() - start
    out.unlink(missing_ok=True)
    return seconds


def tile_check(path: str, device: str, half: bool, size: int = 512) -> float:
    gpu = load(path, device=device, half=half, backend="torch")
    cpu = load(path, device="cpu", half=False, backend="torch")
    rng = np.random.default_rng(0)
    size -= size % (4 * gpu.ratio)
    base = rng.random((size // gpu.ratio, size // gpu.ratio), dtype=np.float32)
    smooth = np.kron(base, np.ones((gpu.ratio, gpu.ratio), np.float32))  # image-like: a blocky field
    pan = (0.6 * smooth + 0.1 * rng.random((size, size), dtype=np.float32)).astype(np.float32)
    ms = np.stack([base * (0.8 + 0.1 * b) for b in range(gpu.bands)]).astype(np.float32)
    lms = np.stack([np.kron(m, np.ones((gpu.ratio, gpu.ratio), np.float32)) for m in ms])
    return float(np.abs(gpu(pan, lms, ms) - cpu(pan, lms, ms)).max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=8000)
    p.add_argument("--methods", default="fose,ksdiff,e2e")
    p.add_argument("--family", default="landsat8")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dry-run", action="store_true", help="CPU, a 512-pixel scene, e2e only")
    args = p.parse_args(argv)
    if args.dry_run:
        args.device, args.size, args.methods = "cpu", min(args.size, 512), "e2e"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: torch.cuda.is_available() is False (no GPU, no driver, or a CPU-only PyTorch)",
              file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU (dry run)"
    precisions = [(precision_name(args.device, half), half) for half in (True, False)]
    rows, failed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        scene = inputs.landsat_scene(args.size, Path(tmp))
        (Path(tmp) / "warm").mkdir()
        warm = inputs.landsat_scene(512, Path(tmp) / "warm")
        for method in args.methods.split(","):
            path = weights(args.family, method)
            for prec, half in precisions:
                run_scene(warm, method, path, args.device, half, Path(tmp) / "warm.tif")  # CUDA context, halo
                seconds = run_scene(scene, method, path, args.device, half, Path(tmp) / "out.tif")
                diff = tile_check(path, args.device, half)
                ok = diff <= TOLERANCE[prec]
                failed |= not ok
                rows.append((method, prec, seconds, scene.pixels / 1e6 / seconds, diff, ok))
                print(f"{method} {prec}: {seconds:.1f} s, tile difference {diff:.2e}", file=sys.stderr, flush=True)
    print(f"\n{name}, torch {torch.__version__}, Landsat-8 scene {args.size} x {args.size} "
          f"({args.size ** 2 / 1e6:.1f} MP), {args.family} weights, whole raster in one process\n")
    print("| method | precision | s | MP/s | max abs diff to CPU float32 (tile) | within tolerance |")
    print("|---|---|---:|---:|---:|---|")
    for method, prec, seconds, rate, diff, ok in rows:
        print(f"| {method} | {prec} | {seconds:.1f} | {rate:.2f} | {diff:.2e} (<= {TOLERANCE[prec]:g}) | "
              f"{'yes' if ok else 'NO'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

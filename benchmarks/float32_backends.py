"""Deep methods in float32 on the CPU, whole processes: eager PyTorch against ONNX Runtime.

Runs ``pansharpen sharpen PAN MS OUT --method M --full-precision --no-check`` on the
Landsat-8 scene upsampled to N x N PAN (``inputs.landsat_scene``), every method with
every backend (``DIFFUSION_PANSHARPENING_BACKEND``) once per round, rounds alternating,
and prints the median whole-process seconds, MP/s, the speed-up of each backend over
eager PyTorch and the fose / e2e time ratio per backend. A method may name its weights,
``METHOD@PATH`` (e.g. the former fose beside the shipped one, in the same rounds). The
host is shared and its speed drifts, so only the ratios within one run mean much
(docs/performance.md, "Deep methods in float32 and against the machine's limit").

    DIFFUSION_PANSHARPENING_THREADS=2 .venv/bin/python benchmarks/float32_backends.py \
        [--size 2048] [--methods fose,e2e,fose@OLD.safetensors] [--backends torch,onnxruntime] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "pansharpen"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--methods", default="fose,e2e")
    p.add_argument("--backends", default="torch,onnxruntime")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--precision", choices=("float32", "default"), default="float32")
    args = p.parse_args(argv)
    methods, backends = args.methods.split(","), args.backends.split(",")
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scene = inputs.landsat_scene(args.size, Path(tmp))
        mp = scene.pixels / 1e6
        for rnd in range(args.rounds):
            for method in methods:
                for backend in backends:
                    name, _, weights = method.partition("@")
                    out = Path(tmp) / f"{name}-{backend}.tif"
                    cmd = [str(CLI), "sharpen", scene.pan, scene.ms, str(out), "--method", name, "--no-check",
                           "--overwrite"] + (["--full-precision"] if args.precision == "float32" else [])
                    cmd += ["--weights", weights] if weights else []
                    env = dict(os.environ, DIFFUSION_PANSHARPENING_BACKEND=backend)
                    start = time.perf_counter()
                    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
                    seconds = time.perf_counter() - start
                    times.setdefault((method, backend), []).append(seconds)
                    print(f"round {rnd} {method} {backend}: {seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"\nLandsat-8 scene {args.size} x {args.size} ({mp:.2f} MP), {args.precision}, "
          f"{args.rounds} rounds, whole processes, medians\n")
    print("| method | backend | s | MP/s | speed-up over torch | runs (s) |")
    print("|---|---|---:|---:|---:|---|")
    med = {k: statistics.median(v) for k, v in times.items()}
    for (method, backend), s in med.items():
        ref = med.get((method, "torch"))
        gain = f"{ref / s:.2f}" if ref else "-"
        print(f"| {method} | {backend} | {s:.1f} | {mp / s:.3f} | {gain} | "
              f"{', '.join(f'{x:.1f}' for x in times[(method, backend)])} |")
    if "e2e" in methods:
        for fose in (m for m in methods if m.partition("@")[0] == "fose"):
            for backend in backends:
                print(f"\n{fose} / e2e whole-process time, {backend}: "
                      f"{med[(fose, backend)] / med[('e2e', backend)]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

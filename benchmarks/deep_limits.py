"""The deep methods against this machine's limit: FLOPs per pixel, seconds per MP,
achieved GFLOP/s and the share of the CPU's peak.

For each deep method (fose, ksdiff, e2e, dm1, dm50; the shipped ``--family`` weights):

- FLOPs of one tile from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions,
  linear layers, matrix products: 2 FLOPs per multiply-add). It does NOT count the
  elementwise work (SiLU, sigmoid, the adaptive convolutions' lerp, residual adds, FiLM),
  the nearest upsampling, padding, concatenation and layout copies, nor the biases:
  on this CPU that uncounted work is about a quarter of a float32 tile's time
  (``torch.profiler``: convolutions 72 %), so GFLOP/s here is the useful rate;
- GFLOP per MP of network input (what one evaluation costs per pixel it computes) and
  per MP of output at the engine's CPU tile (``DeepModel.preferred_tile``: the halo
  a tile computes and throws away, (tile + 2 halo)^2 / tile^2, included);
- seconds per input MP in float32 (eager PyTorch, the reference; ONNX Runtime where
  installed, the default there) and bfloat16 autocast (where the CPU has it natively),
  medians of ``--reps`` interleaved runs on one ``--size`` input;
- achieved GFLOP/s and the share of the peak in that precision.

Peak (stated assumption, overridable): cores x clock x FP32 FLOPs per cycle per core.
FLOPs per cycle: 2 FMA pipes x vector lanes x 2. AMD Zen 4 (family 25 with avx512f) runs
AVX-512 on 256-bit pipes: 2 x 8 x 2 = 32; an Intel core with AVX-512 and two FMA units:
64; AVX2 + FMA: 32; else SSE: 8. bfloat16 (AVX512_BF16 ``vdpbf16ps``, two products per
FP32 lane): twice the FP32 figure. Clock: ``cpu MHz`` of /proc/cpuinfo (on a VM the
nominal/TSC clock; boost may be higher, so the % of peak is an upper bound).

    DIFFUSION_PANSHARPENING_THREADS=2 .venv/bin/python benchmarks/deep_limits.py \
        [--family landsat8] [--size 536] [--reps 3] [--methods fose,ksdiff,e2e,dm1,dm50]
        [--dry-run]   # FLOPs and machine only, tiny inputs, no timing (seconds)
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))

from diffusion_pansharpening.engine.models import load, native_bfloat16  # noqa: E402
from diffusion_pansharpening.engine.models import onnx_backend  # noqa: E402

METHODS = ("fose", "ksdiff", "e2e", "dm1", "dm50")
DM50_SIZE = 200  # dm50 is 50 evaluations: timed on a smaller input (per-MP figures still hold)


def cpu_info() -> dict:
    info = {"model": "unknown", "mhz": 0.0, "flags": set(), "family": None}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for key, pattern in (("model", r"model name\s*:\s*(.*)"), ("mhz", r"cpu MHz\s*:\s*([\d.]+)"),
                         ("family", r"cpu family\s*:\s*(\d+)"), ("vendor", r"vendor_id\s*:\s*(\S+)")):
        m = re.search(pattern, text)
        if m:
            info[key] = m.group(1).strip()
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    info["flags"] = set(m.group(1).split()) if m else set()
    info["mhz"] = float(info["mhz"] or 0)
    return info


def fp32_flops_per_cycle(info: dict) -> tuple[int, str]:
    flags = info["flags"]
    if "avx512f" in flags:
        if info.get("vendor") == "AuthenticAMD":
            return 32, "AVX-512 on AMD Zen 4: 2 x 256-bit FMA pipes x 8 lanes x 2"
        return 64, "AVX-512, 2 FMA units x 16 lanes x 2"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2: 2 FMA units x 8 lanes x 2"
    return 8, "SSE: 4 lanes x (add + mul)"


def threads() -> int:
    return torch.get_num_threads()


def tile_inputs(model, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    r, b = model.ratio, model.bands
    size -= size % (4 * r)
    return (rng.random((size, size), dtype=np.float32), rng.random((b, size, size), dtype=np.float32),
            rng.random((b, size // r, size // r), dtype=np.float32))


def count_flops(model, tile) -> float:
    pan, lms, ms = (torch.from_numpy(a)[None] for a in tile)
    pan = pan[None]  # (1, 1, H, W)
    kwargs = {}
    shape = model.model.noise_shape(tuple(lms.shape[1:]))
    if shape is not None:
        kwargs["noise"] = torch.zeros(shape)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.model(pan, lms, ms, **kwargs)
    return float(counter.get_total_flops())


def timed(model, tile) -> float:
    start = time.perf_counter()
    model(*tile)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", default="landsat8")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--size", type=int, default=536, help="input side in PAN pixels (536: a 448 tile + halo)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--ghz", type=float, default=None, help="clock for the peak (default: cpu MHz)")
    p.add_argument("--flops-per-cycle", type=int, default=None, help="FP32 FLOPs per cycle per core")
    p.add_argument("--dry-run", action="store_true", help="FLOPs and machine only, on a small input, no timing")
    args = p.parse_args(argv)
    info = cpu_info()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    fpc, why = fp32_flops_per_cycle(info)
    fpc = args.flops_per_cycle or fpc
    ghz = args.ghz or info["mhz"] / 1000 or 1.0
    peak32 = cores * ghz * fpc
    bf16 = native_bfloat16()
    peak16 = 2 * peak32 if bf16 else None
    ort = onnx_backend.available()
    interesting = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"]
    print(f"CPU: {info['model']} (family {info.get('family')}), {cores} cores for this process, "
          f"{info['mhz']:.0f} MHz in /proc/cpuinfo, torch threads {threads()}, torch {torch.__version__}")
    print(f"flags: {' '.join(f for f in interesting if f in info['flags']) or 'none of ' + ', '.join(interesting)}")
    print(f"peak: {cores} cores x {ghz:.2f} GHz x {fpc} FP32 FLOPs/cycle ({why}) = {peak32:.0f} GFLOP/s FP32"
          + (f", {peak16:.0f} GFLOP/s bfloat16 (2x: AVX512_BF16 dot products)" if peak16 else ""))
    print(f"ONNX Runtime: {'installed' if ort else 'not installed'}; bfloat16: {'native' if bf16 else 'not native'}")

    size = 64 if args.dry_run else args.size
    runs = {}  # (method, precision) -> DeepModel
    rows = {}
    for method in args.methods.split(","):
        path = ROOT / "resources" / "weights" / f"{args.family}-{method}.safetensors"
        if not path.exists():
            print(f"{method}: no weights at {path}; skipped")
            continue
        ref = load(str(path), device="cpu", half=False, backend="torch")
        side = min(size, DM50_SIZE) if method == "dm50" and not args.dry_run else size
        tile = tile_inputs(ref, side)
        flops = count_flops(ref, tile)
        in_mp = tile[0].size / 1e6
        out_tile = ref.preferred_tile
        halo = ref.halo
        waste = (out_tile + 2 * halo) ** 2 / out_tile ** 2
        rows[method] = {"flops": flops, "in_mp": in_mp, "per_in": flops / in_mp / 1e9,
                        "per_out": flops / in_mp / 1e9 * waste, "tile": out_tile, "halo": halo, "tile_in": tile}
        runs[(method, "float32")] = ref
        if ort:
            fast = load(str(path), device="cpu", half=False, backend="onnxruntime")
            if fast.backend == "onnxruntime":  # dm50 stays in PyTorch (runtime.ORT_ARCHITECTURES)
                runs[(method, "float32 ORT")] = fast
        if bf16:
            runs[(method, "bfloat16")] = load(str(path), device="cpu", half=True, backend="torch")
    precisions = ["float32"] + (["float32 ORT"] if ort else []) + (["bfloat16"] if bf16 else [])
    times: dict = {}
    if not args.dry_run:
        for (method, prec), model in runs.items():  # warm up; ORT exports on the second call
            for _ in range(2 if prec == "float32 ORT" else 1):
                model(*rows[method]["tile_in"])
        for _ in range(args.reps):
            for (method, prec), model in runs.items():
                times.setdefault((method, prec), []).append(timed(model, rows[method]["tile_in"]))
    print()
    print(f"Shipped {args.family} weights; FLOPs by FlopCounterMode (convolutions and matrix products only); "
          f"input {size} x {size} PAN pixels (dm50: {min(size, DM50_SIZE)}), median of {args.reps}.")
    print()
    head = "| method | halo | CPU tile | GFLOP per input MP | GFLOP per output MP |"
    sep = "|---|---:|---:|---:|---:|"
    for prec in precisions:
        head += f" s per MP {prec} | GFLOP/s {prec} | % of peak {prec} |"
        sep += "---:|---:|---:|"
    print(head)
    print(sep)
    for method, row in rows.items():
        line = f"| {method} | {row['halo']} | {row['tile']} | {row['per_in']:.1f} | {row['per_out']:.1f} |"
        for prec in precisions:
            if (method, prec) not in times:
                line += " - | - | - |"
                continue
            s = statistics.median(times[(method, prec)])
            rate = row["flops"] / s / 1e9
            peak = peak16 if prec == "bfloat16" else peak32
            line += f" {s / row['in_mp']:.2f} | {rate:.1f} | {100 * rate / peak:.0f} % |"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What Fose's parts cost at a given U-Net width: one tile, float32, channels-last, untrained
weights (time and FLOPs do not depend on the values).

For each ``--widths`` candidate it times the one-step student (``dm1``) and the ensemble
blocks beside the end-to-end net (``e2e``, whose width does not change) and prints the
FLOPs of one evaluation (``FlopCounterMode``: convolutions and matrix products) and the
network-only ratio (dm1 + e2e + ensemble) / e2e. The whole process adds fixed costs (I/O,
upsampling, projection) to both sides and fose's larger halo to its side, so this ratio is
only a guide; ``float32_backends.py`` measures the real one (docs/performance.md,
"A narrower U-Net").

    DIFFUSION_PANSHARPENING_THREADS=2 .venv/bin/python benchmarks/fose_widths.py \
        [--widths 12,24,48/8,16,32/6,12,24] [--tile 792] [--reps 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from diffusion_pansharpening.engine.models.fose import E2ENet, EnsembleBlocks, FoseConfig, OneStepStudent  # noqa: E402
from diffusion_pansharpening.engine.models.runtime import limit_cpu_threads  # noqa: E402


def timed(model: torch.nn.Module, run, reps: int) -> tuple[float, float]:
    """(median seconds, GFLOP) of ``run(model)`` after one warm-up."""
    model = model.to(memory_format=torch.channels_last).eval()
    with torch.inference_mode():
        run(model)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            run(model)
            times.append(time.perf_counter() - start)
        with FlopCounterMode(display=False) as counter:
            run(model)
    return statistics.median(times), counter.get_total_flops() / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="12,24,48/8,16,32/6,12,24", help="candidates, '/'-separated")
    p.add_argument("--tile", type=int, default=792, help="PAN pixels a side (fose's 640 tile with its halo)")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    limit_cpu_threads()
    cl = lambda *shape: torch.rand(*shape).contiguous(memory_format=torch.channels_last)
    s = args.tile
    pan, lms, ms = cl(1, 1, s, s), cl(1, 4, s, s), cl(1, 4, s // 4, s // 4)
    noise = torch.zeros_like(lms)
    t_e2e, g_e2e = timed(E2ENet(FoseConfig()), lambda m: m.predict(pan, lms, ms), args.reps)
    print(f"{s} x {s} tile, float32, channels-last, {torch.get_num_threads()} threads; "
          f"e2e: {t_e2e:.3f} s, {g_e2e:.1f} GFLOP\n")
    print("| U-Net widths | dm1 s | dm1 GFLOP | ensemble s | (dm1 + e2e + ensemble) / e2e |")
    print("|---|---:|---:|---:|---:|")
    for text in args.widths.split("/"):
        config = FoseConfig(widths=tuple(int(w) for w in text.split(",")))
        t_dm1, g_dm1 = timed(OneStepStudent(config), lambda m: m.predict(pan, lms, ms, noise=noise), args.reps)
        feats = cl(1, config.widths[0], s, s), cl(1, config.e2e_width, s, s)
        t_ens, _ = timed(EnsembleBlocks(config), lambda m: m(lms, lms, *feats, pan, lms), args.reps)
        print(f"| {config.widths} | {t_dm1:.3f} | {g_dm1:.1f} | {t_ens:.3f} | {(t_dm1 + t_e2e + t_ens) / t_e2e:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

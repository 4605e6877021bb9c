"""What the classical anchor (engine/anchor.py) costs a deep method, side by side.

    .venv/bin/python benchmarks/anchor_cost.py [--size 2048] [--rounds 2] [--methods e2e,fose]

On the Landsat-8 benchmark scene at ``--size`` PAN pixels a side (``inputs.landsat_scene``),
each round runs every method with ``--anchor 0`` (the network alone) and with the default
anchor, in turn, as whole ``pansharpen sharpen`` processes (float32, no check), so machine
noise hits both alike. Prints the median wall times and their ratio.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inputs import ROOT, landsat_scene  # noqa: E402
from classical_vs_gdal import cpu_info  # noqa: E402

CLI = ROOT / ".venv" / "bin" / "pansharpen"


def run(scene, method: str, anchor: str | None, out: Path) -> float:
    command = [str(CLI), "sharpen", scene.pan, scene.ms, str(out), "--method", method, "--quiet",
               "--full-precision", "--no-check", "--overwrite"] + (["--anchor", anchor] if anchor else [])
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--methods", default="e2e,fose")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        scene = landsat_scene(args.size, Path(tmp))
        times = {}
        for _ in range(args.rounds):
            for method in args.methods.split(","):
                for anchor in ("0", None):
                    times.setdefault((method, anchor), []).append(run(scene, method, anchor, Path(tmp) / "out.tif"))
    model, flags = cpu_info()
    shown = " ".join(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16"))
    print(f"Landsat-8 scene {args.size} x {args.size} PAN, {args.rounds} rounds, float32; {model}, "
          f"flags: {shown}")
    print("| method | network alone s | with the anchor s | ratio |")
    print("|---|---:|---:|---:|")
    for method in args.methods.split(","):
        alone, mixed = (statistics.median(times[(method, a)]) for a in ("0", None))
        print(f"| {method} | {alone:.2f} | {mixed:.2f} | {mixed / alone:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What ``--adapt`` adds to a whole run on a 2000 x 2000 PAN (the adaptation issue's size).

    .venv/bin/python benchmarks/adaptation_time.py [--size 2000] [--budgets 30,120] [--method fose]

The Landsat-8 benchmark scene at ``--size`` PAN pixels a side (``inputs.landsat_scene``),
sharpened by ``pansharpen sharpen`` with the shipped model, without adaptation and with
each budget (a fresh adaptation cache each time, so nothing is reused); wall times of
the whole processes and the adaptation's own line.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inputs import ROOT, landsat_scene  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=2000)
    p.add_argument("--budgets", default="30,120")
    p.add_argument("--method", default="fose")
    args = p.parse_args(argv)
    print("| adaptation budget s | whole run s | adaptation |")
    print("|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        scene = landsat_scene(args.size, Path(tmp))
        for budget in [None] + args.budgets.split(","):
            env = dict(os.environ, DIFFUSION_PANSHARPENING_CACHE=str(Path(tmp) / f"cache-{budget}"))
            command = [str(ROOT / ".venv" / "bin" / "pansharpen"), "sharpen", scene.pan, scene.ms,
                       f"{tmp}/out.tif", "--method", args.method, "--quiet", "--overwrite"]
            start = time.perf_counter()
            run = subprocess.run(command + (["--adapt", budget] if budget else []), env=env,
                                 capture_output=True, text=True, check=True)
            line = next((l for l in run.stderr.splitlines() if l.startswith("Adapted")), "-")
            print(f"| {budget or 0} | {time.perf_counter() - start:.1f} | {line.split(' (/')[0]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak resident memory of one ``sharpen`` run, measured in a fresh child process.

The approach of ``peak_memory.py`` (the child's ``ru_maxrss`` after the run, so
nothing the benchmark itself holds is counted), with a weights file and device
passed through for the deep methods.

    python benchmarks/memory.py PAN MS OUT --method NAME [--tile N] [--weights W] [--device D]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def peak_rss(pan: str, ms: str, out: str, method: str, tile: int | None = None, weights: str | None = None,
             device: str = "auto") -> dict:
    """{"peak_rss_mib", "seconds"} of the job run in a child process."""
    args = [sys.executable, __file__, pan, ms, out, "--method", method, "--device", device]
    if tile:
        args += ["--tile", str(tile)]
    if weights:
        args += ["--weights", weights]
    child = subprocess.run(args, capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"memory run of {method} failed: {child.stderr[-600:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _child(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("pan")
    parser.add_argument("ms")
    parser.add_argument("out")
    parser.add_argument("--method", required=True)
    parser.add_argument("--tile", type=int, default=None, help="default: the engine's")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen
    start = time.perf_counter()
    sharpen(SharpenRequest(args.pan, args.ms, args.out, method=args.method, tile=args.tile,
                           weights=args.weights, device=args.device, overwrite=True))
    seconds = time.perf_counter() - start
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1:])))

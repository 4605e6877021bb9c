"""What the band order costs a deep model: the left-out vhr4 inputs given as R, G, B, NIR.

    .venv/bin/python benchmarks/band_order.py [--work .build/loso]

Each whole-scene left-out input of the vhr4 family (reduced resolution, Wald's protocol;
11-bit and the 8-bit product; outputs as stored), sharpened by the fold's fose and ksdiff
with its MS bands as the model takes them (blue, green, red, NIR) and as R, G, B, NIR with
no names to say so (the output put back in order to be scored), beside mtf-glp-hpm. What
``engine/band_order.py`` recovers where the bands are named. No sensor is given, so both
orders get the same MTF gains.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generalisation as g  # noqa: E402

from diffusion_pansharpening.engine import quality  # noqa: E402
from diffusion_pansharpening.engine.evaluate import Pair, sharpen_arrays  # noqa: E402

RGBN = [2, 1, 0, 3]  # its own inverse


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(g.ROOT / ".build" / "loso"))
    args = p.parse_args(argv)
    print("| left out | bits | method | bands given as | Q2n | SAM | ERGAS |\n|---|---|---|---|---:|---:|---:|")
    for family, name, label, bits, data, weights, top in g.left_out_inputs(Path(args.work), families=("vhr4",)):
        if not isinstance(data, Pair):
            continue
        pair, red = g.full_and_reduced(data)
        runs = {"blue, green, red, NIR": (red.ms, lambda o: o), "red, green, blue, NIR": (red.ms[RGBN], lambda o: o[RGBN])}
        for method in ("fose", "ksdiff", "mtf-glp-hpm"):
            for given, (ms, back) in list(runs.items())[:1 if method == "mtf-glp-hpm" else 2]:
                out = sharpen_arrays(Pair(red.pan, ms, red.ratio, red.scale, None), method,
                                     weights=weights.get(method), device="cpu")
                s = quality.reduced_indices(g.as_stored(back(out), bits), pair.ms, pair.ratio)
                print(f"| {name} ({label}) | {bits} | {method} | {given} | {s['Q2n']:.4f} | {s['SAM']:.3f} | "
                      f"{s['ERGAS']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

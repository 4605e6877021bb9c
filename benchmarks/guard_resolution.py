"""How well the check behind ``auto`` (engine/guard.py) predicts the winner.

    .venv/bin/python benchmarks/guard_resolution.py [--sizes 512,256,128]

For each left-out scene of the leave-one-scene-out benchmark whose fold is trained
(``.build/loso``, see benchmarks/generalisation.py) and each product (11-bit, 8-bit), the
reduced-resolution input of that benchmark is checked as ``auto`` checks a user's input:
a central sample of S PAN pixels a side, degraded once more, fose against gsa and
mtf-glp-hpm by Q2n. Printed: the check's margin (fose minus the best classical method
on the sample) next to the true margin on the whole input against its reference (from
docs/quality.json). A check that resolves the winner has the two margins of one sign.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT / "benchmarks"))

import generalisation as loso  # noqa: E402
from diffusion_pansharpening.engine import guard  # noqa: E402
from diffusion_pansharpening.engine.anchor import default_share  # noqa: E402
from diffusion_pansharpening.engine.evaluate import Pair  # noqa: E402

CASES = (("vhr4", "ikonos"), ("vhr4", "wv2"), ("vhr4", "spacenet6"), ("wv8", "wv2"), ("landsat8", "landsat8"))
RIVALS = ("gsa", "mtf-glp-hpm")


def reduced_input(item: Pair) -> Pair:
    return loso.full_and_reduced(item)[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="512,256,128")
    p.add_argument("--work", default=str(ROOT / ".build" / "loso"))
    args = p.parse_args(argv)
    truth = {(e["family"], e["scene"], e["part"], e["bits"]): e["scores"]["reduced"]
             for e in json.loads((ROOT / "docs" / "quality.json").read_text())}
    print("| family | left out | part | bits | sample | check: fose - best classical | true: fose - best classical |")
    print("|---|---|---|---|---|---:|---:|")
    for family, scene in CASES:
        weights = loso.fold_weights(family, scene, Path(args.work), "cpu", False)
        if weights is None:
            print(f"| {family} | {scene} | fold not trained | | | | |")
            continue
        for label, item in loso.test_items(family, scene):
            for bits in ("11-bit", "8-bit"):
                reduced = reduced_input(item if bits == "11-bit" else loso.as_8bit(item))
                true = truth.get((family, scene, label, bits))
                true_margin = (true["fose"]["Q2n"] - max(true[m]["Q2n"] for m in RIVALS)) if true else float("nan")
                for size in (int(s) for s in args.sizes.split(",")):
                    sample = loso._content_sample(reduced, size)
                    scores = guard.score_candidates(sample, {"fose": weights["fose"], **{m: None for m in RIVALS}},
                                                    device="cpu", anchor=default_share(sample.sensor))
                    margin = scores["fose"]["Q2n"] - max(scores[m]["Q2n"] for m in RIVALS)
                    print(f"| {family} | {scene} | {label} | {bits} | {sample.pan.shape[1]} x {sample.pan.shape[0]} "
                          f"| {margin:+.4f} | {true_margin:+.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Should the check choose the anchor's share on the user's scene? Measured on the
leave-one-scene-out inputs of ``benchmarks/generalisation.py``: every share beside the
one the check chooses (the oracle), where ``generalisation.py`` shows the chosen one.

    .venv/bin/python benchmarks/anchor_share.py [--work .build/loso] [--archs fose,ksdiff]

A deep output is F = P((1 - a) P(N) + a MTF-GLP-HPM) (``engine/anchor.py``, a = 0.5). The
check behind ``auto`` (``engine/guard.py``) already runs the deep model and MTF-GLP-HPM
on a Wald-degraded sample of the user's own scene; from the same two outputs it could
pick the share a with the best Q2n there, at no extra cost (``anchor=None``: what the
engine now does). This script tells whether that choice carries over to the scene
itself: for every left-out input (11-bit and 8-bit), the share is chosen by
``guard.judge`` on the content sample the benchmark's check sees
(``generalisation._content_sample``, degraded once more) from ``anchor.SHARES``, then the
input is sharpened with it and scored against the ground truth (reduced resolution:
Q2n, SAM, ERGAS) or with HQNR (full resolution: the share chosen on the full input's
own sample). Inputs too small for the check (the WorldView-3 patches) take the unchecked
share (``anchor.default_share``: 0.625 since session 20, 0.5 before).
Printed per input: the chosen share, the scores of every share (the oracle), and the
comparisons won against the best of brovey, gsa and mtf-glp-hpm by the fixed share
and by the chosen one. Each half is stored as the engine bounds it (clipped to the
data's range) before the mix, which is projected onto the MS for a > 0 (since session 16;
the measurements in the docs before it mixed without); whole images (the engine mixes per tile).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import generalisation as g  # noqa: E402

from diffusion_pansharpening.engine import consistency, quality  # noqa: E402
from diffusion_pansharpening.engine.anchor import ANCHOR, ANCHOR_METHOD, UNCHECKED, default_share, projected_mix  # noqa: E402
from diffusion_pansharpening.engine.evaluate import FULL_BORDER, Pair, sharpen_arrays  # noqa: E402

SHOWN = (0.0, 0.25, 0.5, UNCHECKED, 0.75, 1.0)  # every share scored (the oracle); the check picks from anchor.SHARES
CLASSICAL = ("brovey", "gsa", "mtf-glp-hpm")


def halves(p: Pair, arch: str, weights: str, top: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's output after the projection and the anchor's, each as stored, and
    Brovey's (the floor under the mix: ``anchor.floored``)."""
    clip = lambda a: np.clip(np.asarray(a, np.float32), 0, top)
    return (clip(sharpen_arrays(p, arch, weights=weights, device="cpu", anchor=0.0)),
            clip(sharpen_arrays(p, ANCHOR_METHOD)), sharpen_arrays(p, "brovey"))


def mix(h: tuple[np.ndarray, np.ndarray, np.ndarray], share: float, p: Pair) -> np.ndarray:
    return np.round(projected_mix(*h, share, p.ms, p.ratio, consistency.gains_for(p.sensor, len(p.ms))))


def chosen_share(p: Pair, arch: str, weights: str) -> tuple[float, dict]:
    """The share the engine's check chooses on ``p`` (``guard.judge`` on the content
    sample, ``anchor`` None) and its scores there; ``anchor.default_share`` where it cannot decide."""
    share, verdict = g.checked_share(p, arch, weights)
    return share, verdict.scores


def outputs(p: Pair, arch: str, weights: str, top: float) -> dict:
    """Every mix of ``SHOWN`` and the classical methods, as stored (1.0: MTF-GLP-HPM floored and projected)."""
    hv = halves(p, arch, weights, top)
    out = {a: np.clip(mix(hv, a, p), 0, top) for a in SHOWN}
    out.update({m: np.clip(np.round(sharpen_arrays(p, m)), 0, top) for m in CLASSICAL})
    return out


def evaluate_pair(pair: Pair, arch: str, weights: str, top: float) -> dict:
    """{"reduced"/"full": {"share": chosen, "check": its Q2n per share, share or method: indices}}."""
    pair, red = g.full_and_reduced(pair)
    r = pair.ratio
    out = {}
    for level, p in (("reduced", red), ("full", pair)):
        share, check_q = chosen_share(p, arch, weights)
        made = outputs(p, arch, weights, top)
        if level == "reduced":
            scores = {k: quality.reduced_indices(o, pair.ms, r) for k, o in made.items()}
        else:
            scores = {k: quality.full_indices(o, pair.pan, pair.ms, r, pair.sensor, border=FULL_BORDER)
                      for k, o in made.items()}
        out[level] = {"share": share, "check": check_q, **scores}
    return out


def evaluate_patches(item, arch: str, weights: str, top: float) -> dict:
    patches, r, scale, sensor = item
    per = []
    for pp, m, gt in patches:
        made = outputs(Pair(pp, m, r, scale, sensor), arch, weights, top)
        per.append({k: quality.reduced_indices(o, gt, r) for k, o in made.items()})
    mean = {k: {i: float(np.mean([s[k][i] for s in per])) for i in ("Q2n", "SAM", "ERGAS")} for k in per[0]}
    return {"reduced": {"share": default_share(sensor), "check": {}, **mean}}


INDICES = {"reduced": ("Q2n", "SAM", "ERGAS"), "full": ("HQNR",)}


def wins(level: str, res: dict, share: float) -> tuple[int, int]:
    won = total = 0
    for k in INDICES[level]:
        higher = k in ("Q2n", "HQNR")
        others = [res[c][k] for c in CLASSICAL]
        x = res[share][k]
        won += x > max(others) if higher else x < min(others)
        total += 1
    return won, total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(ROOT / ".build" / "loso"))
    p.add_argument("--archs", default="fose,ksdiff")
    p.add_argument("--families", default="vhr4,wv8,landsat8")
    args = p.parse_args(argv)
    tally = {}
    for family, name, label, bits, data, weights, top in g.left_out_inputs(Path(args.work),
                                                                            args.families.split(",")):
        for arch in args.archs.split(","):
            res = (evaluate_pair(data, arch, weights[arch], top) if isinstance(data, Pair)
                   else evaluate_patches(data, arch, weights[arch], top))
            print(f"{family} {name} {label} {bits}-bit {arch}", flush=True)
            for level, rows in res.items():
                share = rows["share"]
                check = "  ".join(f"{m}:{q['Q2n']:.4f}" for m, q in rows["check"].items())
                print(f"  {level}: chosen share {share:g} (check Q2n {check or 'undecided'})")
                for key in (*SHOWN, *CLASSICAL[:2]):
                    print(f"    {str(key):12s} " + "  ".join(f"{k} {rows[key][k]:.4f}" for k in INDICES[level]))
                t = tally.setdefault(arch, {"fixed": [0, 0], "chosen": [0, 0]})
                for kind, a in (("fixed", ANCHOR), ("chosen", share)):
                    won, total = wins(level, rows, a)
                    t[kind][0] += won
                    t[kind][1] += total
    print("\nwins against the best of brovey, gsa, mtf-glp-hpm:")
    for arch, t in tally.items():
        print(f"  {arch}: share {ANCHOR:g} {t['fixed'][0]} of {t['fixed'][1]}; "
              f"chosen by the check {t['chosen'][0]} of {t['chosen'][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

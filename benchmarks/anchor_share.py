"""Which anchor share suits the scene? Measured on the leave-one-scene-out inputs of
``benchmarks/generalisation.py``: every share beside the one the run takes (the oracle).

    .venv/bin/python benchmarks/anchor_share.py [--work .build/loso] [--archs fose,ksdiff]

A deep output is F = P((1 - a) P(N) + a C) (``engine/anchor.py``: C the haze-corrected
MTF-GLP-HPM, a = ``anchor.default_share``, 0.625). From session 17 to 20 the check behind
``auto`` (``engine/guard.py``) chose a among 0, 0.25 and 0.5 by Q2n on a Wald-degraded
sample of the user's own scene; this script measured whether that choice carried over to
the scene itself; with the haze-corrected half (session 19) it did not, on average
(``docs/losses.md``, "Session 21"), so the run takes the default share and the check scores
the deep model there. For every left-out input (11-bit and 8-bit) the input is sharpened
with every share of ``SHOWN`` and scored against the ground truth (reduced resolution:
Q2n, SAM, ERGAS) or with HQNR (full resolution), with the check's Q2n of the candidates
on the content sample the benchmark's check sees (``generalisation._content_sample``,
degraded once more). Printed per input: the run's share, the check's scores, the scores
of every share, and the comparisons won against the best of brovey, gsa and mtf-glp-hpm
by the share 0.5 and by the run's. Each half is stored as the engine bounds it (clipped
to the data's range) before the mix, which is projected onto the MS for a > 0 (since
session 16; the measurements in the docs before it mixed without); whole images (the
engine mixes per tile).
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
from diffusion_pansharpening.engine.anchor import ANCHOR, ANCHOR_METHOD, HAZE_SHARE, default_share, projected_mix  # noqa: E402
from diffusion_pansharpening.engine.evaluate import FULL_BORDER, Pair, sharpen_arrays  # noqa: E402

SHOWN = (0.0, 0.25, 0.5, HAZE_SHARE, 0.75, 1.0)  # every share scored (the oracle)
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
    """The share the run takes on ``p`` (``anchor.default_share``) and the check's scores
    there (``guard.judge`` on the content sample; none where it cannot decide)."""
    share, verdict = g.checked_share(p, arch, weights)
    return share, verdict.scores


def outputs(p: Pair, arch: str, weights: str, top: float) -> dict:
    """Every mix of ``SHOWN`` and the classical methods, as stored (1.0: MTF-GLP-HPM floored and projected)."""
    hv = halves(p, arch, weights, top)
    out = {a: np.clip(mix(hv, a, p), 0, top) for a in SHOWN}
    out.update({m: np.clip(np.round(sharpen_arrays(p, m)), 0, top) for m in CLASSICAL})
    return out


def evaluate_pair(pair: Pair, arch: str, weights: str, top: float) -> dict:
    """{"reduced"/"full": {"share": the run's, "check": the check's scores, share or method: indices}}."""
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
                print(f"  {level}: the run's share {share:g} (check Q2n {check or 'undecided'})")
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
              f"the run's share {t['chosen'][0]} of {t['chosen'][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which classical anchor (engine/anchor.py) to mix with the network: measured on the
leave-one-scene-out inputs of ``benchmarks/generalisation.py``.

    .venv/bin/python benchmarks/anchor_variants.py [--work .build/loso]

For every left-out input (11-bit and 8-bit, reduced and full resolution), the fold's
``fose`` and ``ksdiff`` networks alone (after the consistency projection) and the
classical methods are run once; the mixes are then made from the stored
outputs (clipped to the data's range, whole images: the engine mixes per tile) and
scored. Variants of the anchor: ``mtf-glp-hpm`` (the engine's), Brovey, and
``hpm-common``: MTF-GLP-HPM with ONE modulation P / P^L for every band (the PAN
equalised to the MS mean, low-passed with the mean MTF gain), which keeps the
interpolated MS's spectral angles as Brovey does. Printed: each input's indices and,
per variant, the comparisons (Q2n, SAM, ERGAS, HQNR) it wins against the best of
brovey, gsa and mtf-glp-hpm.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import generalisation as g  # noqa: E402

from diffusion_pansharpening.engine import classical, mtf, quality  # noqa: E402
from diffusion_pansharpening.engine.evaluate import FULL_BORDER, Pair, sharpen_arrays  # noqa: E402
from diffusion_pansharpening.engine.upsample import upsample  # noqa: E402

CLASSICAL = ("brovey", "gsa", "mtf-glp-hpm")
MIXES = {
    "fose net": lambda o: o["fose"],
    "fose + mtf-glp-hpm (the engine's)": lambda o: 0.5 * o["fose"] + 0.5 * o["mtf-glp-hpm"],
    "fose + hpm-common": lambda o: 0.5 * o["fose"] + 0.5 * o["hpm-common"],
    "fose + brovey": lambda o: 0.5 * o["fose"] + 0.5 * o["brovey"],
    "fose + both hpm (1/4 each)": lambda o: 0.5 * o["fose"] + 0.25 * o["mtf-glp-hpm"] + 0.25 * o["hpm-common"],
    "ksdiff + mtf-glp-hpm (the engine's)": lambda o: 0.5 * o["ksdiff"] + 0.5 * o["mtf-glp-hpm"],
    "ksdiff + hpm-common": lambda o: 0.5 * o["ksdiff"] + 0.5 * o["hpm-common"],
}


def hpm_common(p: Pair) -> np.ndarray:
    """MTF-GLP-HPM with one modulation for all bands (module doc); whole image."""
    lms = upsample(p.ms, p.ratio).astype(np.float32)
    pan = p.pan.astype(np.float32)
    gains, _ = mtf.sensor_gains(p.sensor, p.ms.shape[0])
    intensity = lms.mean(0)
    spread = float(np.std(mtf.mtf_filter(pan, classical._EQUALISATION_GNYQ, p.ratio, float32=True)))
    scale = float(intensity.std()) / spread
    low = classical._glp_lowpass(pan, float(np.mean(gains)), p.ratio)
    sharp = scale * (pan - pan.mean()) + intensity.mean()
    smooth = scale * (low - pan.mean()) + intensity.mean()
    safe = smooth > 0.01 * intensity.mean()
    return lms * np.where(safe, sharp / np.where(safe, smooth, 1), 1.0)[None]


def outputs(p: Pair, weights: dict, top: float) -> dict:
    clip = lambda a: np.clip(np.asarray(a, np.float32), 0, top)
    out = {m: clip(sharpen_arrays(p, m, weights=weights[m], device="cpu", anchor=0.0)) for m in ("fose", "ksdiff")}
    out.update({m: clip(sharpen_arrays(p, m)) for m in CLASSICAL})
    out["hpm-common"] = clip(hpm_common(p))
    return out


def inputs(work: Path):
    """(key, record) per left-out input; a record holds the outputs and what scores them."""
    for family, name, label, bits, data, weights, top in g.left_out_inputs(work):
        rec = {}
        if isinstance(data, Pair):
            pair, red = g.full_and_reduced(data)
            rec["reduced"] = [(outputs(red, weights, top), pair.ms, pair.ratio)]
            rec["full"] = (outputs(pair, weights, top), pair)
        else:
            patches, r, scale, sensor = data
            rec["reduced"] = [(outputs(Pair(pp, m, r, scale, sensor), weights, top), gt, r)
                              for pp, m, gt in patches]
        yield f"{family}-{name}-{label}-{bits}".replace(" ", "_"), rec


def scores(rec: dict, make) -> dict:
    red = [quality.reduced_indices(np.round(make(o)), ref, r) for o, ref, r in rec["reduced"]]
    out = {k: float(np.mean([s[k] for s in red])) for k in ("Q2n", "SAM", "ERGAS")}
    if "full" in rec:
        o, pair = rec["full"]
        out["HQNR"] = quality.full_indices(np.round(make(o)), pair.pan, pair.ms, pair.ratio, pair.sensor,
                                           border=FULL_BORDER)["HQNR"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(ROOT / ".build" / "loso"))
    args = p.parse_args(argv)
    makers = {**{m: (lambda o, m=m: o[m]) for m in CLASSICAL}, **MIXES}
    wins = {v: [0, 0] for v in MIXES}
    for key, rec in inputs(Path(args.work)):
        res = {v: scores(rec, make) for v, make in makers.items()}
        print(key)
        for v, s in res.items():
            print(f"  {v:36s} " + "  ".join(f"{k} {x:.4f}" for k, x in s.items()))
        for v in MIXES:
            for k, x in res[v].items():
                others = [res[c][k] for c in CLASSICAL]
                higher = k in ("Q2n", "HQNR")
                wins[v][0] += x > max(others) if higher else x < min(others)
                wins[v][1] += 1
    print("\nwins against the best of brovey, gsa, mtf-glp-hpm:")
    for v, (won, total) in wins.items():
        print(f"  {v}: {won} of {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

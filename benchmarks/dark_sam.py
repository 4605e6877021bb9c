"""Where the deep methods lose SAM to brovey, and what pulling their spectra toward the MS's does.

    .venv/bin/python benchmarks/dark_sam.py --family vhr4 --scene spacenet6 [--arch fose]
        [--work .build/loso] [--thetas 20,10,5] [--dark 100,25,10] [--gains | --floor [--floors 0.25,0.5] [--before]]

On the left-out scene's reduced-resolution inputs (Wald, 11-bit and the 8-bit product,
outputs as stored; the fold's weights from ``generalisation.py --train``):

1. the per-pixel spectral angle to the reference of ``--arch`` (what ``sharpen`` writes at
   the anchor share 0.5), of brovey and of the upsampled MS ("lms", whose angle brovey
   keeps), averaged by brightness band of the reference (its band mean, cut at the
   10/25/50/75 % quantiles);
2. the same output with its spectrum clamped to at most THETA degrees from the upsampled
   MS's (the part orthogonal to the MS's spectrum shortened, the part along it kept),
   in every pixel or only in the darkest DARK % of the upsampled MS's intensity, scored
   with Q2n, SAM, ERGAS and SCC. Not in the engine: docs/quality.md says why.

``--gains`` rescales the network's detail instead, ``--floor`` keeps every band at or above a
fraction of brovey's, after the mix's projection or (``--before``) before it (``print_gains``,
``print_floors``; docs/sam.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generalisation as g  # noqa: E402

from diffusion_pansharpening.engine import consistency, quality  # noqa: E402
from diffusion_pansharpening.engine.anchor import ANCHOR_METHOD, bound_halves, mix  # noqa: E402
from diffusion_pansharpening.engine.evaluate import Pair, sharpen_arrays  # noqa: E402

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def clamp(fused: np.ndarray, lms: np.ndarray, theta: float, where: np.ndarray) -> np.ndarray:
    """``fused`` with its spectrum at most ``theta`` degrees from ``lms``'s, in ``where``."""
    e2 = np.maximum((lms * lms).sum(0), 1e-12)
    gain = (fused * lms).sum(0) / e2
    along = lms * gain
    across = fused - along
    limit = np.tan(np.radians(theta)) * np.abs(gain) * np.sqrt(e2)
    shrink = np.minimum(1.0, limit / np.maximum(np.sqrt((across * across).sum(0)), 1e-12))
    return along + across * np.where(where, shrink, 1.0)


def fitted_gain(detail, target, window: int = 0, per_band: bool = True) -> np.ndarray:
    """Least-squares gains g with g * detail closest to target: per band (B, 1, 1), one
    for all bands, or per pixel over ``window`` x ``window`` windows (B, H, W; in [0, 2])."""
    if window:
        g_ = uniform_filter(detail * target, (1, window, window)) / np.maximum(
            uniform_filter(detail * detail, (1, window, window)), 1e-6)
        return np.clip(g_, 0.0, 2.0)
    axes = (1, 2) if per_band else (0, 1, 2)
    g_ = (detail * target).sum(axes, keepdims=True) / np.maximum((detail * detail).sum(axes, keepdims=True), 1e-12)
    return np.broadcast_to(g_, (detail.shape[0], 1, 1))


def gain_variants(pair: Pair, ref: np.ndarray, weights: str, arch: str, windows) -> dict:
    """The network's output with its detail rescaled (module doc, ``--gains``), before
    the anchor: name -> (B, H, W) float."""
    net = lambda p: sharpen_arrays(p, arch, weights=weights, device="cpu", anchor=0.0).astype(np.float64)
    lms = sharpen_arrays(pair, "lms").astype(np.float64)
    detail = net(pair) - lms
    cut, down = g.full_and_reduced(pair)
    down_lms = sharpen_arrays(down, "lms")
    down_detail, down_target = net(down) - down_lms, cut.ms - down_lms
    gains = {"network": np.ones((pair.ms.shape[0], 1, 1)),
             "per band, fitted one scale down": fitted_gain(down_detail, down_target),
             "one gain, fitted one scale down": fitted_gain(down_detail, down_target, per_band=False),
             "per band, fitted to the reference": fitted_gain(detail, ref - lms)}
    gains.update({f"per pixel ({w} px), fitted to the reference": fitted_gain(detail, ref - lms, w) for w in windows})
    mtf_gains = consistency.gains_for(pair.sensor, pair.ms.shape[0])
    return {name: consistency.project((lms + gain * detail).astype(np.float32), pair.ms, pair.ratio, mtf_gains)
            for name, gain in gains.items()}


def print_gains(args, weights) -> None:
    """``--gains``: every whole-scene input of the left-out scene, 11-bit and 8-bit."""
    windows = [int(w) for w in args.windows.split(",")]
    for label, item in g.test_items(args.family, args.scene):
        if not isinstance(item, Pair):
            continue
        for bits in ("11", "8"):
            (pair, ref), = reduced_inputs(item if bits == "11" else g.as_8bit(item))
            top = 255.0 if bits == "8" else 65535.0
            hpm = np.clip(sharpen_arrays(pair, "mtf-glp-hpm"), 0.0, top)
            print(f"\n{args.family} without {args.scene}: {label}, {bits}-bit, reduced resolution, {args.arch}")
            print("| detail | share | Q2n | SAM | ERGAS |\n|---|---:|---:|---:|---:|")
            for name, fused in gain_variants(pair, ref, weights[args.arch], args.arch, windows).items():
                for share in (0.5, 0.0):
                    s = quality.reduced_indices(g.as_stored((1 - share) * np.maximum(fused, 0) + share * hpm, bits),
                                                ref, pair.ratio)
                    print(f"| {name} | {share:g} | {s['Q2n']:.4f} | {s['SAM']:.3f} | {s['ERGAS']:.3f} |")


def print_floors(args, weights) -> None:
    """``--floor``: what ``sharpen`` writes, and the same with every band kept at or above
    C x brovey's value (a floor against the dark bands the network sends to zero), at
    reduced resolution (Q2n, SAM, ERGAS) and at full resolution (HQNR), as stored."""
    floors = [float(c) for c in args.floors.split(",")]
    for label, item in g.test_items(args.family, args.scene):
        for bits in ("11", "8"):
            data = item if bits == "11" else g.as_8bit(item)
            rows = {}
            for level, pairs in (("reduced", reduced_inputs(data)),
                                 ("full", [(g.full_and_reduced(data)[0], None)] if isinstance(data, Pair) else [])):
                for pair, ref in pairs:
                    bro = np.maximum(sharpen_arrays(pair, "brovey"), 0)
                    floored = (floor_before(pair, weights[args.arch], args.arch, bro) if args.before else
                               lambda c, deep=g.as_sharpen(pair, args.arch, weights[args.arch]): np.maximum(deep, c * bro))
                    for c in [0.0] + floors:
                        fused = g.as_stored(floored(c), bits)
                        s = (quality.reduced_indices(fused, ref, pair.ratio) if ref is not None else
                             quality.full_indices(fused, pair.pan, pair.ms, pair.ratio, pair.sensor, border=g.FULL_BORDER))
                        rows.setdefault(c, {}).setdefault(level, []).append(s)
            print(f"\n{args.family} without {args.scene}: {label}, {bits}-bit, {args.arch}")
            print("| floor | Q2n | SAM | ERGAS | HQNR |\n|---|---:|---:|---:|---:|")
            for c, by in rows.items():
                red = [np.mean([s[k] for s in by["reduced"]]) for k in ("Q2n", "SAM", "ERGAS")]
                full = f"{np.mean([s['HQNR'] for s in by['full']]):.4f}" if "full" in by else "-"
                print(f"| {c:g} x brovey | {red[0]:.4f} | {red[1]:.3f} | {red[2]:.3f} | {full} |")


def floor_before(pair: Pair, weights: str, arch: str, bro: np.ndarray):
    """``--floor --before``: C -> the anchored mix at the share the run takes (``generalisation.checked_share``), floored at
    C x brovey, then projected onto the MS as the engine projects the mix (multiplicatively since
    session 17; whole image, where the engine projects per tile)."""
    share, _ = g.checked_share(pair, arch, weights)
    net = sharpen_arrays(pair, arch, weights=weights, device="cpu", anchor=0.0)
    mixed = mix(*bound_halves(net, sharpen_arrays(pair, ANCHOR_METHOD), pair.ms, 0.0), share)
    gains = consistency.gains_for(pair.sensor, len(pair.ms))
    return lambda c: consistency.project_ratio(np.maximum(mixed, c * bro), pair.ms, pair.ratio, gains)


def reduced_inputs(data):
    """(reduced-resolution input, reference) pairs of a scene part (a Pair or ready patches)."""
    if isinstance(data, Pair):
        pair, reduced = g.full_and_reduced(data)
        return [(reduced, pair.ms)]
    items, r, scale, sensor = data
    return [(Pair(p, m, r, scale, sensor), ref) for p, m, ref in items]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="vhr4")
    p.add_argument("--scene", default="spacenet6")
    p.add_argument("--arch", default="fose")
    p.add_argument("--work", default=str(g.ROOT / ".build" / "loso"))
    p.add_argument("--thetas", default="20,10,5")
    p.add_argument("--dark", default="100,25,10")
    p.add_argument("--gains", action="store_true", help="the detail-gain variants instead (module doc)")
    p.add_argument("--windows", default="33,9", help="--gains: window sizes of the per-pixel fits")
    p.add_argument("--floor", action="store_true", help="the floor variants instead (``print_floors``)")
    p.add_argument("--floors", default="0.25,0.5", help="--floor: the factors C")
    p.add_argument("--before", action="store_true", help="--floor: on the mix before its projection")
    args = p.parse_args(argv)
    weights = g.fold_weights(args.family, args.scene, Path(args.work), "cpu", False)
    if weights is None:
        raise SystemExit(f"{args.family} without {args.scene}: not trained (generalisation.py --train)")
    if args.gains:
        print_gains(args, weights)
        return 0
    if args.floor:
        print_floors(args, weights)
        return 0
    thetas = [float(t) for t in args.thetas.split(",")]
    darks = [float(d) for d in args.dark.split(",")]
    for label, item in g.test_items(args.family, args.scene):
        for bits in ("11", "8"):
            data = item if bits == "11" else g.as_8bit(item)
            by_band, scores = {}, {}
            for pair, ref in reduced_inputs(data):
                run = lambda m, w=None: g.as_stored(sharpen_arrays(pair, m, weights=w, device="cpu"), bits)
                deep = sharpen_arrays(pair, args.arch, weights=weights[args.arch], device="cpu")
                lms = sharpen_arrays(pair, "lms")
                bright = ref.mean(0)
                cuts = np.quantile(bright, QUANTILES)
                for name, fused in ((args.arch, g.as_stored(deep, bits)), ("brovey", run("brovey")), ("lms", run("lms"))):
                    a = quality.spectral_angles(fused, ref)
                    by_band.setdefault(name, []).append(
                        [np.nanmean(a)] + [np.nanmean(a[(bright >= lo) & (bright <= hi)]) for lo, hi in zip(cuts[:-1], cuts[1:])])
                intensity = lms.mean(0)
                variants = {"as written": g.as_stored(deep, bits), "brovey": run("brovey")}
                for d in darks:
                    where = intensity <= np.percentile(intensity, d)
                    for t in thetas:
                        variants[f"clamp {t:g} deg, darkest {d:g} %"] = g.as_stored(clamp(deep, lms, t, where), bits)
                for name, fused in variants.items():
                    scores.setdefault(name, []).append(quality.reduced_indices(fused, ref, pair.ratio))
            print(f"\n{args.family} without {args.scene}: {label}, {bits}-bit, reduced resolution, {args.arch}")
            print("| output | SAM | darkest 10 % | 10-25 % | 25-50 % | 50-75 % | brightest 25 % |\n|---|---:|---:|---:|---:|---:|---:|")
            for name, rows in by_band.items():
                print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in np.mean(rows, axis=0)) + " |")
            print("\n| output | Q2n | SAM | ERGAS | SCC |\n|---|---:|---:|---:|---:|")
            for name, rows in scores.items():
                print(f"| {name} | " + " | ".join(f"{np.mean([s[k] for s in rows]):.4f}" for k in g.REDUCED) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

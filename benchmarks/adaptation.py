"""What scene adaptation (engine/adapt.py) gains against its time budget, honestly.

    .venv/bin/python benchmarks/adaptation.py --family vhr4 --weights DIR --scenes wv2,spacenet6 \
        [--budgets 30,60,120] [--archs fose,ksdiff] [--shares] [--out docs/adaptation.md]
    .venv/bin/python benchmarks/adaptation.py --family vhr4 --wins TABLE [TABLE ...]

For each scene (``training/recipes/scenes.py``; each of its full-resolution parts, e.g. the
three SpaceNet-6 tiles; the WorldView-3 patches are too small to adapt on), with models
from ``--weights DIR`` (``DIR/<arch>.safetensors``, or ``DIR/<family>-<arch>.safetensors``) that never saw it:

- reduced resolution: the scene is degraded once by Wald's protocol and that is all the
  adaptation sees (objective "wald" degrades it once more to make its training pairs); the adapted
  model sharpens the degraded scene and is scored against the scene's MS (Q2n, SAM,
  ERGAS);
- full resolution: adaptation on the scene as it is, scored without reference (HQNR).

Beside them: the base model and the best classical method on the same input. Each
budget adapts from the base model again (no reuse). ``--bits 8``: the same on the LOSO
benchmark's 8-bit product of the scene; outputs are scored as stored (rounded, clipped
to the Byte or UInt16 range), as there. ``--objectives``: ``adapt.OBJECTIVES`` side by side.
``--wins``: tables written with ``--shares`` against the LOSO benchmark's best other method
(with GDAL and OTB) on each input, as ``docs/adaptation.md`` reports them.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generalisation as g  # noqa: E402

from diffusion_pansharpening.engine import adapt, guard, quality  # noqa: E402
from diffusion_pansharpening.engine.anchor import default_share  # noqa: E402
from diffusion_pansharpening.engine.errors import PansharpenError  # noqa: E402
from diffusion_pansharpening.engine.evaluate import FULL_BORDER, Pair, sharpen_arrays  # noqa: E402


def weights_file(folder: Path, family: str, arch: str) -> str:
    for name in (f"{arch}.safetensors", f"{family}-{arch}.safetensors"):
        if (folder / name).exists():
            return str(folder / name)
    raise SystemExit(f"no {arch} weights in {folder}")


def scores(fused, pair: Pair, reference, protocol: str) -> dict:
    if protocol == "reduced":
        return quality.reduced_indices(fused, reference, pair.ratio)
    return quality.full_indices(fused, pair.pan, pair.ms, pair.ratio, pair.sensor, border=FULL_BORDER)


def checked_adapted(data: Pair, arch: str, base: str, adapted: str) -> np.ndarray:
    """What ``sharpen --adapt`` runs after its checks (``pipeline._check_adapted``), at
    ``anchor.default_share``: the adapted model, or the base model when the adapted one
    scores a lower Q2n on the check's sample; the adapted one when unchecked."""
    sample, share = g._content_sample(data), default_share(data.sensor)
    before = guard.judge(sample, arch, base, device="cpu", anchor=share)
    weights = adapted
    if not before.undecided:
        after = guard.judge(sample, arch, adapted, device="cpu", anchor=share)
        weights = base if after.scores[arch]["Q2n"] < before.scores[arch]["Q2n"] else adapted
        checked_adapted.log.append(f"{arch}: base Q2n {before.scores[arch]['Q2n']:.4f}, adapted "
                                   f"{after.scores[arch]['Q2n']:.4f} (share {share:g}): "
                                   f"{'base' if weights == base else 'adapted'}")
        print(checked_adapted.log[-1], flush=True)
    return sharpen_arrays(data, arch, weights=weights, device="cpu", anchor=share)


checked_adapted.log = []


def wins(family: str, tables: list[str], quality_json: Path) -> str:
    """The tables written with ``--shares``, as a user gets them (``sharpen --adapt``, after
    its checks), against the best other method of the LOSO benchmark on the same input
    (``quality_json``: every classical method, GDAL's and OTB's; ``g.best_classical``)."""
    saved = {(r["scene"], r["part"], r["bits"]): r["scores"] for r in json.loads(quality_json.read_text())
             if r["family"] == family}
    rows = {}
    for line in (ln for t in tables for ln in Path(t).read_text().splitlines()[2:]):
        scene, bits, protocol, model, *_, q2n, sam, ergas, hqnr = [c.strip() for c in line.strip("|").split("|")]
        rows[scene, bits, protocol, model] = dict(zip(("Q2n", "SAM", "ERGAS", "HQNR"), (q2n, sam, ergas, hqnr)))
    out = ["| input | bits | protocol | index | model | base, share checked | with --adapt (checked) "
           "| best other | wins |", "|---|---|---|---|---|---:|---:|---|---|"]
    for (scene, bits, protocol, model), base in rows.items():
        if not model.endswith(" base, share checked"):
            continue
        arch = model.split()[0]
        adapted = rows.get((scene, bits, protocol, f"{arch} adapted, full, checked"))
        name, part = scene.split(" (", 1)
        for k in ("Q2n", "SAM", "ERGAS") if protocol == "reduced" else ("HQNR",):
            higher = k in ("Q2n", "HQNR")
            other, value = g.best_classical(saved[name, part.rstrip(")"), bits][protocol], k, higher)
            v = float((adapted or base)[k])
            out.append(f"| {scene} | {bits} | {protocol} | {k} | {arch} | {base[k]} | "
                       f"{adapted[k] if adapted else base[k] + ' (not adapted)'} | {other} {value:.4f} | "
                       f"{'yes' if (v > value if higher else v < value) else 'no'} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="vhr4")
    p.add_argument("--weights", help="the fold's weights folder (not needed with --wins)")
    p.add_argument("--scenes", default="wv2,spacenet6")
    p.add_argument("--budgets", default="30,60,120")
    p.add_argument("--archs", default="fose,ksdiff")
    p.add_argument("--bits", default="11", help="11 (the scene as it is) and/or 8 (the LOSO benchmark's 8-bit product)")
    p.add_argument("--objectives", default="full", help="adapt.OBJECTIVES to compare, comma-separated")
    p.add_argument("--steps", type=int, default=None,
                   help="stop each adaptation after this many steps too (a fair comparison on a busy CPU)")
    p.add_argument("--shares", action="store_true",
                   help="also what sharpen runs with its checks: the base model at the run's anchor share "
                        "(anchor.default_share; rows 'share checked', the name kept from when the check "
                        "chose it), and the adapted one after its own check (checked_adapted); the other "
                        "rows use 0.5")
    p.add_argument("--out", default=None)
    p.add_argument("--wins", nargs="+", metavar="TABLE", default=None,
                   help="no scoring: the --family's tables written by --shares runs against the best other "
                        "method of docs/quality.json on the same inputs")
    args = p.parse_args(argv)
    if args.wins:
        print(wins(args.family, args.wins, g.ROOT / "docs" / "quality.json"))
        return 0
    if not args.weights:
        p.error("--weights DIR is needed to adapt: the fold's weights folder")
    folder = Path(args.weights)
    lines = ["| scene | bits | protocol | model | budget s | steps | Q2n | SAM | ERGAS | HQNR |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    tmp = Path(tempfile.mkdtemp())
    parts = ((n, lab, it, b) for n in args.scenes.split(",") for lab, it in g.test_items(args.family, n)
             if isinstance(it, Pair) for b in args.bits.split(","))
    for name, label, pair, bits in parts:
        pair, reduced = g.full_and_reduced(pair if bits == "11" else g.as_8bit(pair))
        for protocol, data, ref in (("reduced", reduced, pair.ms), ("full", pair, None)):
            def row(model, budget, steps, fused):
                s = scores(g.as_stored(fused, bits), data, ref, protocol)  # as in the LOSO benchmark
                cells = [f"{s[k]:.4f}" if k in s else "-" for k in ("Q2n", "SAM", "ERGAS", "HQNR")]
                lines.append(f"| {name} ({label}) | {bits}-bit | {protocol} | {model} | {budget} | {steps} | "
                             + " | ".join(cells) + " |")
                print(lines[-1], flush=True)

            for m in ("brovey", "gsa", "mtf-glp-hpm"):
                row(m, "-", "-", sharpen_arrays(data, m))
            for arch in args.archs.split(","):
                base = weights_file(folder, args.family, arch)
                row(f"{arch} base", 0, 0, sharpen_arrays(data, arch, weights=base, device="cpu"))
                if args.shares:
                    row(f"{arch} base, share checked", 0, 0, g.as_sharpen(data, arch, base))
                for objective in args.objectives.split(","):
                    for budget in (float(b) for b in args.budgets.split(",")):
                        start = time.perf_counter()
                        out = tmp / f"{name}-{bits}-{protocol}-{arch}-{objective}-{budget:.0f}.safetensors"
                        try:
                            result = adapt.adapt(None, base, seconds=budget, device="cpu", sample=data,
                                                 out=str(out), objective=objective, max_steps=args.steps)
                        except PansharpenError as exc:  # too small a scene: the base model runs
                            print(f"{name} {protocol} {arch}: {exc}", flush=True)
                            break
                        fused = sharpen_arrays(data, arch, weights=result.path or base, device="cpu")
                        row(f"{arch} adapted, {objective}{'' if result.path else ' (not kept)'}",
                            f"{budget:.0f} ({time.perf_counter() - start:.0f} wall)", result.steps, fused)
                        if args.shares and result.path:
                            row(f"{arch} adapted, {objective}, checked", f"{budget:.0f}", result.steps,
                                checked_adapted(data, arch, base, result.path))
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Could the check behind ``auto`` also choose between fose and ksdiff? (Measured, not adopted.)

    .venv/bin/python benchmarks/deep_pick.py

For each left-out input of the leave-one-scene-out benchmark that is large enough to check
(folds in ``.build/loso``; Landsat-8: the shipped models), at reduced and at full resolution:
the check's Q2n of fose and of ksdiff on the input's content-rich sample, degraded once more,
each at the anchor share the run takes (``anchor.default_share``, ``guard.score_candidates``;
at its best share of 0, 0.25 and 0.5 when this was measured, session 18), the one it would pick, and what
that pick scores on the whole input against fose alone (Q2n at reduced, HQNR at full
resolution, from docs/quality.json). docs/adaptation.md, "The fallback", gives the result.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import generalisation as loso  # noqa: E402
from guard_resolution import CASES  # noqa: E402

from diffusion_pansharpening.engine import guard  # noqa: E402
from diffusion_pansharpening.engine.anchor import default_share  # noqa: E402

DEEP = ("fose", "ksdiff")


def main() -> int:
    truth = {(e["family"], e["scene"], e["part"], e["bits"]): e["scores"]
             for e in json.loads((ROOT / "docs" / "quality.json").read_text())}
    print("| input | bits | protocol | check: fose | check: ksdiff | picks | index | fose | pick | pick - fose |")
    print("|---|---|---|---:|---:|---|---|---:|---:|---:|")
    for family, scene in CASES:
        weights = loso.fold_weights(family, scene, ROOT / ".build" / "loso", "cpu", False)
        for label, item in loso.test_items(family, scene):
            for bits in ("11-bit", "8-bit"):
                full, reduced = loso.full_and_reduced(item if bits == "11-bit" else loso.as_8bit(item))
                for protocol, data, index in (("reduced", reduced, "Q2n"), ("full", full, "HQNR")):
                    sample = loso._content_sample(data)
                    if guard.too_small(sample.pan.shape, data.ratio):
                        continue  # too small to check: auto runs fose unchecked
                    scores = guard.score_candidates(sample, {**{a: weights[a] for a in DEEP}, "mtf-glp-hpm": None},
                                                    device="cpu", anchor=default_share(data.sensor))
                    pick = max(DEEP, key=lambda a: scores[a]["Q2n"])
                    true = truth[family, scene, label, bits][protocol]
                    print(f"| {family} {scene} {label} | {bits} | {protocol} | {scores['fose']['Q2n']:.4f} | "
                          f"{scores['ksdiff']['Q2n']:.4f} | {pick} | {index} | {true['fose'][index]:.4f} | "
                          f"{true[pick][index]:.4f} | {true[pick][index] - true['fose'][index]:+.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

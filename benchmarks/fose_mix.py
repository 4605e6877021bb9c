"""Why Fose's ensemble hardly beats its e2e part: what the ensemble blocks learnt to mix.

    .venv/bin/python benchmarks/fose_mix.py [--work .build/loso] [--folds vhr4:ikonos,...]

Fose's stage 4 (``EnsembleBlocks``) outputs ``m * r_dm1 + (1 - m) * r_e2e + correction``
per pixel and band, with ``m`` a sigmoid (0.5 where training starts). On each fold's
left-out scene at reduced resolution (Wald, 11-bit; the WorldView-3 patches as they are)
this prints, for the fold's weights from ``generalisation.py --train``: the mean of ``m``
(the share of the one-step student dm1), the share of values with ``m`` under 0.1, the
correction's size against the e2e residual's (mean absolute values), and Q2n of the
networks alone (no classical anchor) for dm1, e2e, fose and the plain mean of dm1 and
e2e (``m`` = 0.5 everywhere, no correction).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generalisation as g  # noqa: E402
from dark_sam import reduced_inputs  # noqa: E402

from diffusion_pansharpening.engine import quality  # noqa: E402
from diffusion_pansharpening.engine.evaluate import sharpen_arrays  # noqa: E402
from diffusion_pansharpening.engine.models.fose import EnsembleBlocks  # noqa: E402

FOLDS = "vhr4:ikonos,vhr4:wv2,vhr4:wv3,vhr4:spacenet6,wv8:wv2,wv8:wv3,landsat8:landsat8"


class Recorder:
    """Wraps ``EnsembleBlocks.weights`` to keep each tile's m, correction and e2e residual."""

    def __init__(self):
        self.m, self.correction, self.e2e = [], [], []

    def __enter__(self):
        original = self.original = EnsembleBlocks.weights

        def weights(block, r_dm1, r_e2e, *rest):
            m, correction = original(block, r_dm1, r_e2e, *rest)
            for kept, value in ((self.m, m), (self.correction, correction.abs()), (self.e2e, r_e2e.abs())):
                kept.append(value.detach().float().flatten())
            return m, correction

        EnsembleBlocks.weights = weights
        return self

    def __exit__(self, *exc):
        EnsembleBlocks.weights = self.original

    def summary(self) -> tuple[float, float, float]:
        m = torch.cat(self.m)
        return (float(m.mean()), float((m < 0.1).float().mean()),
                float(torch.cat(self.correction).mean() / torch.cat(self.e2e).mean()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(g.ROOT / ".build" / "loso"))
    p.add_argument("--folds", default=FOLDS)
    args = p.parse_args(argv)
    print("| fold | left out | mean m (dm1's share) | m < 0.1 | correction / e2e residual | "
          "Q2n dm1 | Q2n e2e | Q2n fose | Q2n mean of dm1 and e2e |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for fold in args.folds.split(","):
        family, scene = fold.split(":")
        weights = g.fold_weights(family, scene, Path(args.work), "cpu", False)
        if weights is None:
            print(f"| {family} | {scene} | not trained | | | | | | |")
            continue
        for label, item in g.test_items(family, scene):
            rows = {k: [] for k in ("dm1", "e2e", "fose", "mean")}
            recorder = Recorder()
            for pair, ref in reduced_inputs(item):
                run = lambda arch: sharpen_arrays(pair, arch, weights=weights[arch], device="cpu", anchor=0.0)
                outs = {"dm1": run("dm1"), "e2e": run("e2e")}
                with recorder:
                    outs["fose"] = run("fose")
                outs["mean"] = 0.5 * (outs["dm1"] + outs["e2e"])
                for key, fused in outs.items():
                    rows[key].append(quality.reduced_indices(g.as_stored(fused, "11"), ref, pair.ratio)["Q2n"])
            share, low, correction = recorder.summary()
            q = {k: np.mean(v) for k, v in rows.items()}
            print(f"| {family} | {label} | {share:.3f} | {100 * low:.0f} % | {correction:.3f} | {q['dm1']:.4f} | "
                  f"{q['e2e']:.4f} | {q['fose']:.4f} | {q['mean']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

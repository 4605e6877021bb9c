"""Where the time of a deep-model run goes, and what the fast path gains.

Runs ``sharpen`` with a shipped model on the Landsat-8 scene upsampled to N x N PAN
(``inputs.landsat_scene``):

1. the plain path (``threads=False``: read, model, write in turn) under cProfile, and
   splits its wall time into the engine's phases (scene statistics, reading and
   upsampling tiles, the model, blending and writing cells, the final compression);
2. the model alone on one tile, split into its parts (for fose: the one-step
   student, the E2E net, the ensemble blocks), in each precision the CPU runs
   (bfloat16 where it is native, the default, and float32);
3. the model alone at each tile size of ``--tiles``, interleaved, in each precision
   (the cache cliff that sets the engine's tile size for deep models on the CPU);
4. the fast path (reader and writer threads) and the plain path, side by side, at the
   engine's tile, with the throughput in output megapixels per second.

The tables are rewritten on each run; a "## Findings" section written below them by
hand is kept.

    .venv/bin/python benchmarks/profile_run.py [--size 2048] [--method fose]
        [--tiles 256,384,448,512,640,768,1024] [--out docs/profile-fose.md]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inputs  # noqa: E402
import machine  # noqa: E402

from diffusion_pansharpening.engine.models import load, precision_name  # noqa: E402
from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen  # noqa: E402
from diffusion_pansharpening.engine.streaming import tile_for  # noqa: E402
from diffusion_pansharpening.engine.tiling import DEFAULT_OVERLAP  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# engine functions whose cumulative time makes a phase (module file, function name)
PHASES = {
    "scene statistics (once)": ("radiometry.py", "from_source"),
    "read + upsample tiles": ("streaming.py", "read_tile"),
    "model": ("models/__init__.py", "run_batch"),
    "blend + write cells": ("streaming.py", "__call__"),
    "compress the output (commit)": ("writer.py", "commit"),
}


FINDINGS = "## Findings"


def kept_findings(path: Path) -> str:
    """The hand-written findings of an earlier report (they read the numbers; kept)."""
    if not path.exists() or FINDINGS not in path.read_text():
        return ""
    return "\n" + path.read_text()[path.read_text().index(FINDINGS):]


def host() -> str:
    m = machine.describe()
    return f"{m['cpu']}, {m['cores']} cores, torch {m.get('torch')}, load average {m['load_average']:.1f} at the start"


def weights(method: str) -> str:
    return str(ROOT / "resources" / "weights" / f"landsat8-{method}.safetensors")


def run(scene, method: str, tile: int, threads: bool, out: Path) -> float:
    start = time.perf_counter()
    sharpen(SharpenRequest(scene.pan, scene.ms, str(out), method=method, weights=weights(method),
                           device="cpu", tile=tile, overwrite=True, threads=threads))
    return time.perf_counter() - start


def phases(scene, method: str, tile: int, out: Path) -> tuple[float, dict[str, float]]:
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    sharpen(SharpenRequest(scene.pan, scene.ms, str(out), method=method, weights=weights(method),
                           device="cpu", tile=tile, overwrite=True, threads=False))
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile).stats
    found = {}
    for label, (file, name) in PHASES.items():
        found[label] = sum(v[3] for (f, _, n), v in stats.items() if f.endswith(file) and n == name)
    return wall, found


def precisions() -> dict[str, bool]:
    """Precision name -> ``half`` of the runs to compare: the CPU's default, and float32."""
    return {precision_name("cpu", True): True, "float32": False}


def tile_inputs(method: str, tile: int, half: bool = True):
    """Random normalised inputs of one tile with its halo, and that side length."""
    model = load(weights(method), device="cpu", half=half)
    size = tile + 2 * model.halo
    gen = torch.Generator().manual_seed(0)
    pan, lms = torch.rand(1, 1, size, size, generator=gen), torch.rand(1, 4, size, size, generator=gen)
    return model, (pan, lms, torch.rand(1, 4, size // 2, size // 2, generator=gen)), size


def timed(fn, rounds: int = 3) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def model_parts(method: str, tile: int, half: bool) -> dict[str, float]:
    """Seconds of each part of the model on one tile (median of 3)."""
    model, (pan, lms, ms), _ = tile_inputs(method, tile, half)
    net = model.model
    noise = torch.randn(lms.shape, generator=torch.Generator().manual_seed(0))
    if method == "fose":
        r1, f1 = net.student.predict(pan, lms, ms, noise=noise)
        r2, f2 = net.e2e.predict(pan, lms, ms)
        parts = {"one-step student (dm1)": lambda: net.student.predict(pan, lms, ms, noise=noise),
                 "E2E net": lambda: net.e2e.predict(pan, lms, ms),
                 "ensemble blocks": lambda: net.ensemble(r1, r2, f1, f2, pan, lms),
                 "whole fose": lambda: net(pan, lms, ms, noise=noise)}
    else:
        parts = {method: lambda: model(pan[0, 0].numpy(), lms[0].numpy(), ms[0].numpy())}
    with torch.inference_mode(), model.autocast():
        return {label: timed(fn) for label, fn in parts.items()}


def tile_sizes(method: str, tiles: list[int], rounds: int) -> list[tuple[str, int, int, float, float]]:
    """(precision, tile, input side, median s, net output MP/s) of the model alone per tile
    size and precision, all taken in turn within each round so that machine noise hits
    them alike. Net output: a tile delivers (tile - overlap)^2 new pixels in a long run."""
    runs = {(name, tile): tile_inputs(method, tile, half) for name, half in precisions().items() for tile in tiles}
    times: dict[tuple, list[float]] = {key: [] for key in runs}

    def once(model, inputs_) -> float:
        with model.autocast():
            start = time.perf_counter()
            model.model(*inputs_, **noise_kwarg(model, inputs_))
            return time.perf_counter() - start

    with torch.inference_mode():
        for model, inputs_, _ in runs.values():
            once(model, inputs_)
        for _ in range(rounds):
            for key, (model, inputs_, _) in runs.items():
                times[key].append(once(model, inputs_))
    out = []
    for (name, tile), (_, _, side) in runs.items():
        seconds = float(np.median(times[(name, tile)]))
        out.append((name, tile, side, seconds, (tile - DEFAULT_OVERLAP) ** 2 / 1e6 / seconds))
    return out


def noise_kwarg(model, inputs_) -> dict:
    return {"noise": torch.zeros_like(inputs_[1])} if model.architecture in ("fose", "dm1", "dm50") else {}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--method", default="fose")
    p.add_argument("--tiles", default="256,384,448,512,640,768,1024")
    p.add_argument("--rounds", type=int, default=4, help="rounds of the tile-size comparison")
    p.add_argument("--repeats", type=int, default=2, help="runs of each path in the fast/plain comparison")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    tiles = [int(t) for t in args.tiles.split(",")]
    lines = [f"# Profile of a `{args.method}` run", "",
             f"Made by `benchmarks/profile_run.py --size {args.size} --method {args.method} "
             f"--tiles {args.tiles}` on {host()}; the Landsat-8 scene upsampled to "
             f"{args.size} x {args.size} PAN, torch threads {torch.get_num_threads()}.", ""]
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        work = Path(tmp)
        scene = inputs.landsat_scene(args.size, work)
        mp = scene.pixels / 1e6
        model = load(weights(args.method), device="cpu")
        tile, side = tile_for(model), tile_for(model) + 2 * model.halo
        wall, found = phases(scene, args.method, tile, work / "plain.tif")
        lines += [f"## The plain path, tile {tile} (the engine's choice): {wall:.1f} s under cProfile", "",
                  "| phase | seconds | share |", "|---|---:|---:|"]
        for label, seconds in found.items():
            lines.append(f"| {label} | {seconds:.2f} | {100 * seconds / wall:.0f} % |")
        rest = wall - sum(found.values())
        lines += [f"| the rest (opening files, loading the model, torch import) | {rest:.2f} | "
                  f"{100 * rest / wall:.0f} % |", ""]
        parts = {name: model_parts(args.method, tile, half) for name, half in precisions().items()}
        lines += [f"## The model on one {tile}-pixel tile ({side} x {side} with its halo)", "",
                  "Seconds per tile (median of 3) in each precision.", "",
                  "| part | " + " | ".join(f"{name} s" for name in parts) + " |",
                  "|---|" + "---:|" * len(parts)]
        for label in next(iter(parts.values())):
            lines.append(f"| {label} | " + " | ".join(f"{p[label]:.3f}" for p in parts.values()) + " |")
        lines += ["", "## The model alone against tile size", "",
                  f"{args.rounds} rounds, every size and precision once per round; median seconds per tile; "
                  f"net output = (tile - {DEFAULT_OVERLAP})^2 new pixels per tile in a long run.", "",
                  "| precision | tile | input side | s per tile | input MP/s | net output MP/s |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, t, side_t, seconds, net in tile_sizes(args.method, tiles, args.rounds):
            lines.append(f"| {name} | {t} | {side_t} | {seconds:.2f} | {side_t ** 2 / 1e6 / seconds:.3f} | {net:.3f} |")
            print(lines[-1], flush=True)
        lines += ["", f"## Fast path against plain path, side by side, tile {tile}", "",
                  f"{args.repeats} runs of each, alternating; median seconds.", "",
                  "| plain s | fast s | plain MP/s | fast MP/s | fast / plain speed |", "|---:|---:|---:|---:|---:|"]
        plain, fast = [], []
        for _ in range(args.repeats):
            plain.append(run(scene, args.method, tile, False, work / "o.tif"))
            fast.append(run(scene, args.method, tile, True, work / "o.tif"))
        tp, tf = float(np.median(plain)), float(np.median(fast))
        lines.append(f"| {tp:.1f} | {tf:.1f} | {mp / tp:.3f} | {mp / tf:.3f} | {tp / tf:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text + kept_findings(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

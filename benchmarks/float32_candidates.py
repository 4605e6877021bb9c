"""The float32 speed-ups tried for the deep models on the CPU, side by side on one tile.

One process, one shipped model (``--family``, ``--methods``), one input of ``--size``
PAN pixels; every candidate once per round, rounds interleaved, median seconds and the
speed-up over eager PyTorch (the reference), and the largest difference from it:

- ``eager``: ``DeepModel`` with ``backend="torch"`` (NCHW, oneDNN convolutions);
- ``channels_last``: model and inputs in channels-last memory format;
- ``onnxruntime``: ``backend="onnxruntime"`` (``engine/models/onnx_backend.py``);
- ``compile``: ``torch.compile`` (inductor, ``freezing=True``: prepacked oneDNN weights,
  fused elementwise kernels); needs a C++ compiler; the first call's compile time is
  printed and is not in the median.

    DIFFUSION_PANSHARPENING_THREADS=2 .venv/bin/python benchmarks/float32_candidates.py \
        [--methods fose,e2e] [--size 536] [--rounds 3] [--no-compile]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))

from diffusion_pansharpening.engine.models import load  # noqa: E402
from diffusion_pansharpening.engine.models import onnx_backend  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", default="landsat8")
    p.add_argument("--methods", default="fose,e2e")
    p.add_argument("--size", type=int, default=536)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args(argv)
    use_compile = not args.no_compile and shutil.which("g++") is not None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size} px, "
          f"compile: {'yes' if use_compile else 'no (no g++ or --no-compile)'}")
    print("\n| method | candidate | median s | speed-up | max abs diff | runs (s) |\n|---|---|---:|---:|---:|---|")
    for method in args.methods.split(","):
        path = str(ROOT / "resources" / "weights" / f"{args.family}-{method}.safetensors")
        ref = load(path, device="cpu", half=False, backend="torch")
        rng = np.random.default_rng(0)
        s, r, b = args.size, ref.ratio, ref.bands
        tile = (rng.random((s, s), dtype=np.float32), rng.random((b, s, s), dtype=np.float32),
                rng.random((b, s // r, s // r), dtype=np.float32))
        pan, lms, ms = (torch.from_numpy(a)[None] for a in tile)
        pan = pan[None]
        shape = ref.model.noise_shape(tuple(lms.shape[1:]))
        kw = {} if shape is None else {"noise": ref._noise(tuple(lms.shape[1:]))}
        cl = lambda t: t.contiguous(memory_format=torch.channels_last)
        net_cl = load(path, device="cpu", half=False, backend="torch").model.to(memory_format=torch.channels_last)
        kw_cl = {k: cl(v) for k, v in kw.items()}
        candidates = {
            "eager": lambda: ref(*tile),
            "channels_last": lambda: net_cl(cl(pan), cl(lms), cl(ms), **kw_cl),
        }
        if onnx_backend.available():
            ort = load(path, device="cpu", half=False, backend="onnxruntime")
            start = time.perf_counter()
            ort(*tile), ort(*tile)  # the second call exports
            print(f"{method}: ONNX export + first run {time.perf_counter() - start:.1f} s", flush=True)
            candidates["onnxruntime"] = lambda: ort(*tile)
        if use_compile:
            import torch._inductor.config as inductor

            inductor.freezing = True
            compiled = torch.compile(load(path, device="cpu", half=False, backend="torch").model)
            start = time.perf_counter()
            with torch.inference_mode():
                compiled(pan, lms, ms, **kw)
            print(f"{method}: torch.compile + first run {time.perf_counter() - start:.1f} s", flush=True)
            candidates["compile"] = lambda: compiled(pan, lms, ms, **kw)
        expected = ref(*tile)
        times: dict[str, list[float]] = {}
        diffs = {}
        for _ in range(args.rounds):
            for name, run in candidates.items():
                with torch.inference_mode():
                    start = time.perf_counter()
                    out = run()
                    times.setdefault(name, []).append(time.perf_counter() - start)
                out = out.numpy()[0] if isinstance(out, torch.Tensor) else out
                diffs[name] = float(np.abs(out - expected).max())
        base = statistics.median(times["eager"])
        for name, t in times.items():
            m = statistics.median(t)
            print(f"| {method} | {name} | {m:.3f} | {base / m:.2f} | {diffs[name]:.1e} | "
                  f"{', '.join(f'{x:.2f}' for x in t)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

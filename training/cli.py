"""``pansharpen train ...``: one command per stage, and ``all`` for every stage in order.

    pansharpen train fose   --config C --stage 1|2|3|4 [--data ...] [--out DIR] [--resume]
    pansharpen train ksdiff --config C --stage 1|2     [--data ...] [--out DIR] [--resume]
    pansharpen train all    --config C                 [--data ...] [--out DIR] [--resume]

``--config`` is a TOML path or a shipped name (``tiny``, ``cpu``; default ``cpu``).
``--data``: one PanCollection ``.h5``, one ``.mat`` (patches or a PAN/MS pair), or a
PAN and an MS GeoTIFF. Multi-GPU / multi-machine: the same command under
``torchrun --nproc_per_node N -m diffusion_pansharpening.training.cli ...``.
Also runnable as ``python -m diffusion_pansharpening.training.cli ...``; ``main``
accepts argv with or without the leading ``train``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..engine import registry
from ..engine.errors import PansharpenError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pansharpen train",
                                description="Train Fose or KSDiff, one stage at a time.")
    p.add_argument("pipeline", choices=[*registry.pipelines(), "all"])
    p.add_argument("--config", default="cpu", help="TOML file or shipped name (tiny, cpu)")
    p.add_argument("--stage", type=int, help="stage number (fose 1-4, ksdiff 1-2)")
    p.add_argument("--data", nargs="+", help=".h5, .mat, or PAN and MS GeoTIFFs")
    p.add_argument("--validation", help="a separate validation .h5 (PanCollection)")
    p.add_argument("--out", default="runs/train", help="output folder (weights, logs)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    return p


def _stages(args) -> list[tuple[str, int]]:
    if args.pipeline == "all":
        if args.stage is not None:
            raise PansharpenError("'train all' runs every stage; drop --stage")
        return [(name, s) for name, p in registry.pipelines().items() for s in p.stage_table()]
    n = registry.pipeline(args.pipeline).count
    if args.stage is None or not 1 <= args.stage <= n:
        raise PansharpenError(f"{args.pipeline} has stages 1 to {n}: pass --stage N")
    return [(args.pipeline, args.stage)]


def run_stages(args) -> list:
    from .config import data_paths, load_config
    from .datasets import load_training_data
    from .run import Run
    from .trainer import init_distributed

    stages = _stages(args)
    config = load_config(args.config)
    data = config.get("data", {})
    train, val = load_training_data(
        data_paths(config, args.data), val_fraction=data.get("val_fraction", 0.2),
        patch=data.get("patch", 64), stride=data.get("stride", 32),
        crop=data.get("crop") or None, validation=args.validation,
        normalisation=data.get("normalisation", "scale"))
    dist = init_distributed(args.device)
    resume = ("auto" if len(stages) > 1 else True) if args.resume else False
    run = Run(config, train, val, Path(args.out), resume=resume, dist=dist,
              progress=not args.no_progress)
    if dist.main:
        print(f"training data: {len(train)} training and {len(val)} validation patches "
              f"from {train.source} / {val.source}", file=sys.stderr)
    results = []
    for pipeline, n in stages:
        result = registry.pipeline(pipeline).stage_table()[n](run)
        results.append(result)
        if dist.main:
            _report(pipeline, n, result)
    return results


def _report(pipeline: str, n: int, result) -> None:
    v = result.validation or {}
    scores = "  ".join(f"{k} {v[k]:.4f}" for k in ("SAM", "ERGAS", "Q2n", "SCC") if k in v)
    print(f"{pipeline} stage {n}: step {result.step}, last loss "
          f"{result.losses[-1] if result.losses else float('nan'):.5f}; validation: "
          f"{scores or '-'}; logs in {result.out_dir}"
          + ("" if result.tensorboard else " (CSV only: tensorboard is not installed)"),
          file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        argv = argv[1:]
    args = parser().parse_args(argv)
    try:
        run_stages(args)
    except PansharpenError as exc:
        print(f"pansharpen train: {exc}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as tdist
        if tdist.is_available() and tdist.is_initialized():
            tdist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

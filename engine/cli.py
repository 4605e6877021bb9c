"""The ``pansharpen`` command: the engine without QGIS.

    pansharpen sharpen PAN MS OUT [--method NAME] [--tile N] [--overlap N] [--device D]
    pansharpen batch FOLDER|MANIFEST.csv OUT_DIR [--scheduler tcp://HOST:PORT] [sharpen options]
    pansharpen adapt PAN MS --out W.safetensors [--method fose] [--seconds S]
    pansharpen methods
    pansharpen models
    pansharpen evaluate --pan P --ms M --methods a,b --protocol reduced|full [--sensor S] [--json OUT]
    pansharpen score FUSED (--reference GT | --pan P --ms M) [--json OUT]
    pansharpen train ...      (see training/cli.py)
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time


def _tune_this_process() -> None:
    """Process-wide settings for the command line, made before numpy loads (issue 18).

    * One BLAS thread unless the user sets ``OPENBLAS_NUM_THREADS`` (OpenBLAS reads it
      once, at load): the engine's BLAS products are small (the upsampling's banded
      blocks) and OpenBLAS's extra threads only spin against GDAL's DEFLATE threads.
    * glibc keeps freed tile buffers for the next tile (mmap threshold 32 MiB, trim
      above 512 MiB) instead of unmapping them and paying their page faults again.
    Measured on brovey, 4096 x 4096, whole process: wall 2.05-2.48 -> 1.87-1.95 s (BLAS),
    system time 0.33-0.75 -> 0.19-0.29 s and the same peak (glibc). Torch keeps its
    own threads (models.runtime); other front-ends (QGIS) keep their process's defaults.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, Windows): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 512 << 20)


_tune_this_process()

from . import sensors
from .anchor import ANCHOR, ANCHOR_FALLBACK, ANCHOR_METHOD, HAZE_SHARE
from .errors import Cancelled, PansharpenError
from .tiling import DEFAULT_OVERLAP, DEFAULT_TILE


class ProgressBar:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, label: str, stream=sys.stderr, width: int = 30):
        self.label, self.stream, self.width = label, stream, width
        self.start = time.perf_counter()

    def __call__(self, fraction: float) -> None:
        filled = int(round(fraction * self.width))
        elapsed = time.perf_counter() - self.start
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{fraction:6.1%} {elapsed:6.1f}s elapsed, {eta:6.1f}s left"
        )
        if fraction >= 1:
            self.stream.write("\n")
        self.stream.flush()


def _sharpen(args) -> int:
    from .pipeline import SharpenRequest, sharpen

    request = SharpenRequest(
        pan=args.pan, ms=args.ms, output=args.output, method=args.method,
        pan_band=args.pan_band, weights=args.weights, device=args.device,
        tile=args.tile, overlap=args.overlap, overwrite=args.overwrite,
        float32=args.float32, sensor=args.sensor, half=not args.full_precision, cog=args.cog,
        overviews=not args.no_overviews,
        check=not args.no_check, adapt=args.adapt, consistent=not args.no_consistency,
        anchor=args.anchor, register=args.register,
    )
    bar = None if args.quiet else ProgressBar("sharpening")
    result = sharpen(request, progress=bar, log=lambda m: print(m, file=sys.stderr))
    print(result.output)
    return 0


def _adapt(args) -> int:
    from . import adapt
    from .families import choose_model
    from .raster_io import RasterPair

    pair = RasterPair(args.pan, args.ms, args.pan_band, args.sensor)
    if args.weights:
        base = args.weights
    else:
        choice = choose_model(pair.info(), args.method)
        if not choice.weights:
            raise PansharpenError(f"{choice.reason} Give the model to adapt with --weights.")
        base = choice.weights
    bar = None if args.quiet else ProgressBar("adapting")
    result = adapt.adapt(pair, base, seconds=args.seconds, device=args.device, out=args.out, progress=bar)
    print(result.summary(), file=sys.stderr)
    if result.path is None:
        return 1
    print(result.path)
    return 0


def _methods(args) -> int:
    from .methods import list_methods

    for m in list_methods():
        state = "" if m.available else f"  [unavailable: {m.why_unavailable}]"
        print(f"{m.name:12s} {m.kind:9s} {m.summary}{state}")
    return 0


def _models(args) -> int:
    from .families import format_models, shipped_models

    print(format_models(shipped_models()))
    return 0


def _evaluate(args) -> int:
    from .evaluate import evaluate, format_table

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    _check_json(args.json)
    report = evaluate(args.pan, args.ms, methods, protocol=args.protocol, sensor=args.sensor,
                      pan_band=args.pan_band, weights=args.weights, device=args.device,
                      tile=args.tile, overlap=args.overlap,
                      progress=None if args.quiet else lambda name: ProgressBar(name))
    print(format_table(report))
    _write_json(args.json, report)
    return 0


def _score(args) -> int:
    from .evaluate import format_scores
    from .scoring import score_files

    _check_json(args.json)
    scores = score_files(args.fused, pan=args.pan, ms=args.ms, reference=args.reference,
                         sensor=args.sensor, pan_band=args.pan_band)
    print(format_scores(scores))
    _write_json(args.json, scores)
    return 0


def _write_json(path: str | None, data) -> None:
    if path:
        try:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2)
        except OSError as exc:
            raise PansharpenError(f"Cannot write the JSON file {path} ({exc.strerror or exc}): "
                                  "choose a writable folder for --json.") from None
        print(f"JSON written to {path}", file=sys.stderr)


def _check_json(path: str | None) -> None:
    """Refuse, before any work, a --json file whose folder does not exist."""
    import os

    folder = os.path.dirname(os.path.abspath(path)) if path else None
    if folder and not os.path.isdir(folder):
        raise PansharpenError(f"The folder of the JSON file {path} does not exist: create it or choose another.")
    if path and os.path.isdir(path):
        raise PansharpenError(f"The JSON file {path} is a folder: give a file name.")


class Terminated(BaseException):
    """SIGTERM (``kill``, ``timeout``): unwinds like Ctrl-C, so scratch files are removed."""


def _terminate(signum, frame):
    raise Terminated()


SENSOR_HELP = (f"sensor name or alias ({sensors.names()}) for the MTF gains and the scale; "
               "default: from the raster's metadata")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pansharpen", description="Diffusion-informed and classical pansharpening.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_common(p):
        p.add_argument("--pan-band", type=int, default=None, help="PAN band (1-based) when the PAN has several")
        p.add_argument("--sensor", default=None, help=SENSOR_HELP)
        p.add_argument("--weights", default=None, help="a .safetensors model for a deep method")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument("--tile", type=int, default=None,
                       help=f"tile size in PAN pixels (default: {DEFAULT_TILE}; deep models on the CPU "
                            "choose theirs, about 448)")
        p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                       help=f"tile overlap (blended) in PAN pixels ({DEFAULT_OVERLAP})")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("sharpen", help="sharpen a PAN/MS pair into a GeoTIFF")
    p.add_argument("pan")
    p.add_argument("ms")
    p.add_argument("output")
    p.add_argument("--method", default="auto", help="method name (see `pansharpen methods`); auto picks the best fit")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--float32", action="store_true", help="write float32 instead of the MS data type")
    p.add_argument("--cog", action="store_true",
                   help="write a Cloud Optimized GeoTIFF (default: tiled GeoTIFF with internal overviews)")
    p.add_argument("--no-overviews", action="store_true",
                   help="write the full resolution only, no internal overviews (faster to write; QGIS then "
                        "draws a large result slowly until you build them)")
    p.add_argument("--full-precision", action="store_true",
                   help="run deep models in float32 (default: float16 autocast on CUDA, bfloat16 on a "
                        "CPU with native bfloat16, e.g. AVX512-BF16)")
    p.add_argument("--adapt", type=float, nargs="?", const=120.0, default=None, metavar="SECONDS",
                   help="fine-tune the deep model on this scene first (at its own scale: its output, "
                        "blurred by the sensor MTF and decimated, must give back the MS; no ground "
                        "truth), for about SECONDS (default 120); reused on a rerun")
    p.add_argument("--no-check", action="store_true",
                   help="deep methods: skip the check against the classical methods on a sample")
    p.add_argument("--no-consistency", action="store_true",
                   help="deep methods: keep the network's output as it is (default: projected so that, "
                        "blurred and decimated, it gives back the MS)")
    p.add_argument("--anchor", type=float, default=None, metavar="SHARE",
                   help=f"deep methods: share of the classical {ANCHOR_METHOD} ({ANCHOR_FALLBACK} for an unknown sensor) "
                        "mixed into the output, 0 to 1 "
                        f"(0: the network alone; default {HAZE_SHARE:g}, {ANCHOR:g} with {ANCHOR_FALLBACK}; "
                        "the check scores the deep model at this share)")
    p.add_argument("--register", action="store_true",
                   help="deep methods: move the PAN onto the MS first, by the offset measured on a sample "
                        "(up to 2 PAN pixels; for products whose colours fringe the edges)")
    add_common(p)
    p.set_defaults(run=_sharpen)

    p = sub.add_parser("adapt", help="fine-tune a deep model on a scene and keep the weights")
    p.add_argument("pan")
    p.add_argument("ms")
    p.add_argument("--out", required=True, help="the adapted .safetensors file to write")
    p.add_argument("--method", default="fose", help="shipped model to adapt (fose, ksdiff, e2e, dm1)")
    p.add_argument("--seconds", type=float, default=120.0, help="time budget (default 120)")
    add_common(p)
    p.set_defaults(run=_adapt)

    from .batch import add_arguments as add_batch_arguments, run_from_args as run_batch

    p = sub.add_parser("batch", help="sharpen many PAN/MS pairs on a Dask cluster, one task per scene")
    add_batch_arguments(p)
    add_common(p)
    p.set_defaults(run=run_batch)

    p = sub.add_parser("methods", help="list the methods and whether they are available")
    p.set_defaults(run=_methods)

    p = sub.add_parser("models", help="list the shipped models (family, bands, ratio, quality)")
    p.set_defaults(run=_models)

    p = sub.add_parser("evaluate", help="quality indices of methods on a real PAN/MS pair")
    p.add_argument("--pan", required=True, help="PAN raster, or a .mat pair (I_PAN, I_MS)")
    p.add_argument("--ms", required=True, help="MS raster, or the same .mat pair")
    p.add_argument("--methods", required=True, help="comma-separated method names")
    p.add_argument("--protocol", choices=["reduced", "full"], default="reduced")
    p.add_argument("--json", default=None, help="also write the results as JSON")
    add_common(p)
    p.set_defaults(run=_evaluate)

    p = sub.add_parser("score", help="quality indices of a given sharpened image")
    p.add_argument("fused")
    p.add_argument("--reference", default=None, help="ground truth: reduced-resolution indices")
    p.add_argument("--pan", default=None, help="PAN: full-resolution indices (with --ms)")
    p.add_argument("--ms", default=None, help="MS: full-resolution indices (with --pan)")
    p.add_argument("--pan-band", type=int, default=None)
    p.add_argument("--sensor", default=None, help=SENSOR_HELP)
    p.add_argument("--json", default=None)
    p.set_defaults(run=_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        from ..training.cli import main as train_main

        return train_main(argv[1:])
    args = build_parser().parse_args(argv)
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.run(args)
    except PansharpenError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    except Cancelled as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nInterrupted; nothing was written.", file=sys.stderr)
        return 130
    except Terminated:
        print("\nTerminated; nothing was written.", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

"""`pansharpen batch` on Dask against a plain loop of `sharpen` in one process.

Eight scenes, each a PAN crop of the real Landsat-8 scene in ../shared/data with its
MS (the same place, Landsat's half-pixel phase kept), are sharpened three ways: a loop
of ``pipeline.sharpen`` in this process, and ``batch.run_batch`` on a LocalCluster of
1 and of 2 workers (one scene at a time each). The batch runs without the quality
sample (``sample=0``) so that all three do the same work; the cluster's start (and the
engine's import on its workers, done before the loop's timing too) is timed apart
from the scenes. Prints a Markdown table: seconds, scenes per minute, CPU
seconds (the workers', the scheduler's and the client's: what a busy machine cannot
blur), and the overheads against the loop.

    .venv/bin/python benchmarks/batch.py [--size 1024] [--method gsa] [--scenes 8]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "landsat8"


def make_scenes(folder: Path, count: int, size: int) -> list[tuple[str, str, str]]:
    """``count`` pairs of ``size`` PAN pixels at spread-out places: (name, pan, ms)."""
    from osgeo import gdal

    gdal.UseExceptions()
    pan_src = gdal.Open(str(SCENE / "l8_B8.tif"))
    stack = gdal.BuildVRT("", [str(SCENE / f"l8_B{b}.tif") for b in (2, 3, 4, 5)], separate=True)
    half = size // 2
    span_x, span_y = stack.RasterXSize - half, stack.RasterYSize - half
    if span_x < 0 or span_y < 0:
        sys.exit(f"--size {size} is larger than the scene ({pan_src.RasterXSize} PAN pixels)")
    scenes = []
    for i in range(count):
        x, y = span_x * (i % 4) // 3, span_y * (i // 4) // max(1, (count - 1) // 4)
        name = f"scene{i}"
        pan, ms = folder / f"{name}_pan.tif", folder / f"{name}_ms.tif"
        gdal.Translate(str(pan), pan_src, srcWin=[2 * x, 2 * y, size, size])
        gdal.Translate(str(ms), stack, srcWin=[x, y, half, half])
        scenes.append((name, str(pan), str(ms)))
    return scenes


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def plain_loop(scenes, out: Path, method: str) -> tuple[float, float]:
    """(seconds, CPU seconds) of a loop of sharpen() in this process."""
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    start, cpu = time.perf_counter(), cpu_seconds()
    for name, pan, ms in scenes:
        sharpen(SharpenRequest(pan, ms, str(out / f"{name}.tif"), method=method, overwrite=True))
    return time.perf_counter() - start, cpu_seconds() - cpu


def on_dask(scenes, out: Path, method: str, workers: int) -> tuple[float, float, float, list[dict]]:
    """(cluster start s, scenes s, CPU s of the workers, scheduler and client, rows) with
    a LocalCluster of ``workers`` workers."""
    from dask.distributed import Client, LocalCluster

    from diffusion_pansharpening.engine import batch
    from diffusion_pansharpening.engine.pipeline import SharpenRequest

    jobs = [batch.Scene(name, pan, (ms,), str(out / f"{name}.tif")) for name, pan, ms in scenes]
    start = time.perf_counter()
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      env=batch.worker_env(threads)) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        client.run(_import_engine)  # as the loop's process has it: not part of the scenes' time
        started = time.perf_counter() - start
        start, cpu, workers_cpu = time.perf_counter(), cpu_seconds(), client.run(cpu_seconds)
        rows = batch.run_batch(jobs, SharpenRequest("", "", "", method=method, overwrite=True),
                               sample=0, stream=None, client=client)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu + sum(client.run(cpu_seconds).values()) - sum(workers_cpu.values())
    failed = [r for r in rows if r["status"] != "sharpened"]
    if failed:
        sys.exit(f"batch failed: {failed[0]}")
    return started, seconds, cpu, rows


def _import_engine() -> None:
    import diffusion_pansharpening.engine.batch  # noqa: F401
    import diffusion_pansharpening.engine.pipeline  # noqa: F401


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="PAN pixels a side of each scene (1024)")
    p.add_argument("--method", default="gsa")
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="runs of each way; the median is shown (2)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        folder = Path(tmp)
        scenes = make_scenes(folder, args.scenes, args.size)
        (folder / "out").mkdir()
        megapixels = args.scenes * args.size ** 2 / 1e6
        loops, dask = [], {1: [], 2: []}
        for _ in range(args.repeats):  # interleaved, so that a busy spell hits every way alike
            loops.append(plain_loop(scenes, folder / "out", args.method))
            for workers in dask:
                dask[workers].append(on_dask(scenes, folder / "out", args.method, workers))
        loop, loop_cpu = statistics.median(r[0] for r in loops), statistics.median(r[1] for r in loops)
        rows = [("plain loop of sharpen()", "-", loop, loop_cpu)]
        for workers, runs in dask.items():
            start = statistics.median(r[0] for r in runs)
            rows.append((f"Dask, {workers} worker{'s' if workers > 1 else ''}", f"{start:.1f}",
                         statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)))
    print(f"{args.scenes} scenes of {args.size} x {args.size} PAN pixels ({megapixels:.1f} MP in all), "
          f"`{args.method}`, median of {args.repeats}; load average {os.getloadavg()[0]:.1f} "
          f"on {len(os.sched_getaffinity(0))} CPUs.\n")
    print("| way | cluster start s | scenes s | scenes per minute | MP/s | time against the loop "
          "| CPU s | CPU against the loop |")
    print("|---|---|---|---|---|---|---|---|")
    for way, start, seconds, cpu in rows:
        print(f"| {way} | {start} | {seconds:.2f} | {60 * args.scenes / seconds:.1f} | "
              f"{megapixels / seconds:.2f} | {100 * (seconds / loop - 1):+.0f} % | {cpu:.2f} | "
              f"{100 * (cpu / loop_cpu - 1):+.0f} % |")


if __name__ == "__main__":
    main()

"""Our classical methods against ``gdal_pansharpen.py`` as whole processes (issue 18).

The scene: a 4096 x 4096 PAN and a 1024 x 1024, 4-band MS (ratio 4, UInt16, tiled
uncompressed GeoTIFFs) made from the CC0 Landsat-8 scene in ``../shared/data/landsat8``:
the 1200 x 1200 PAN crop (B8) mirror-tiled to 4096 x 4096, and bands 2-5 (600 x 600
at 30 m) mirror-tiled the same way and averaged 2 x 2 to 60 m, on the engine's centred
MS phase (the MS grid half a PAN pixel east and south), so nothing is resampled. The
files go to a temporary folder (``--keep`` to keep them); nothing is written into the
project.

Jobs, each a fresh process, run in turn (alternating, ``--repeats`` rounds, the order
rotated each round), so the machine's load hits every job alike:

* ours: ``pansharpen sharpen PAN MS OUT --method M --quiet`` for brovey, gsa and
  mtf-glp-hpm: a tiled (256), DEFLATE + PREDICTOR=2 GeoTIFF with internal averaged
  overviews (our default output); "ours M no-ovr": the same with ``--no-overviews``, the
  format ``gdal_pansharpen.py`` writes (compare it with the gdal row);
* gdal: ``gdal_pansharpen.py PAN MS OUT -of GTiff -r cubic -q`` with the same creation
  options (``-co TILED=YES -co BLOCKXSIZE=256 -co BLOCKYSIZE=256 -co COMPRESS=DEFLATE
  -co PREDICTOR=2 -co NUM_THREADS=ALL_CPUS``): the same format without overviews;
* gdal+ovr: that, then ``gdaladdo -r average`` with DEFLATE overviews at our factors
  (two processes): the same file as ours;
* gdal plain: ``gdal_pansharpen.py`` with its defaults (an uncompressed GeoTIFF), for
  reference;
* with ``--before DIR`` (a folder holding an older ``diffusion_pansharpening`` package,
  e.g. ``git archive <commit>`` unpacked into ``DIR/diffusion_pansharpening``), "before M":
  the same ``sharpen`` command run by that code, to measure a change side by side.

Each run's wall time, CPU time (user + system) and peak resident memory of the child
(``/usr/bin/time -f "%M %U %S"`` when present, else ``os.wait4``'s rusage, whose
``ru_maxrss`` on Linux also counts this process's own size at the fork, which is why
the scene is made and the bandwidth measured in child processes); for gdal+ovr the CPU
of both processes and the larger peak.
The table gives medians and the ratio GDAL time / our time (above 1: we are faster).

Memory traffic: the bytes a method must move per output pixel at the least (PAN and
MS read, the output written, each once, uncompressed), against the machine's memory
bandwidth measured here with a STREAM-like numpy copy (one thread, and two), gives the
lower bound of time the memory alone imposes; the table says how far each run is from
it (time / bound).

    .venv/bin/python benchmarks/classical_vs_gdal.py [--repeats 5] [--size 4096] [--keep DIR] [--json OUT]
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LANDSAT = ROOT.parent / "shared" / "data" / "landsat8"
PANSHARPEN = [str(Path(sys.executable).with_name("pansharpen"))]
METHODS = ("brovey", "gsa", "mtf-glp-hpm")
CREATION = ["-co", "TILED=YES", "-co", "BLOCKXSIZE=256", "-co", "BLOCKYSIZE=256", "-co", "COMPRESS=DEFLATE",
            "-co", "PREDICTOR=2", "-co", "NUM_THREADS=ALL_CPUS"]
ADDO = ["gdaladdo", "-q", "-r", "average", "--config", "COMPRESS_OVERVIEW", "DEFLATE",
        "--config", "PREDICTOR_OVERVIEW", "2"]
RATIO, BANDS = 4, 4


def make_scene(folder, size: int = 4096) -> tuple[str, str]:
    """PAN (size x size) and MS (size/4, 4 bands) GeoTIFFs with Landsat-8 texture."""
    from osgeo import gdal

    gdal.UseExceptions()
    size -= size % (2 * RATIO)
    folder = Path(folder)
    src = gdal.Open(str(LANDSAT / "l8_B8.tif"))
    crop = min(1200, size)  # PAN pixels of the real scene used
    pan = src.ReadAsArray()[:crop, :crop]
    pan = np.pad(pan, ((0, size - crop), (0, size - crop)), mode="symmetric")
    ms = np.stack([gdal.Open(str(LANDSAT / f"l8_B{b}.tif")).ReadAsArray()[:crop // 2, :crop // 2]
                   for b in (2, 3, 4, 5)])
    half = size // 2  # 30 m pixels
    ms = np.pad(ms, ((0, 0), (0, half - crop // 2), (0, half - crop // 2)), mode="symmetric").astype(np.float32)
    ms = ms.reshape(BANDS, half // 2, 2, half // 2, 2).mean(axis=(2, 4)).round().astype(np.uint16)
    x0, y0 = src.GetGeoTransform()[0], src.GetGeoTransform()[3]
    pixel = 15.0

    def write(path: Path, stack: np.ndarray, step: float, x: float, y: float) -> str:
        stack = stack if stack.ndim == 3 else stack[None]
        ds = gdal.GetDriverByName("GTiff").Create(str(path), stack.shape[2], stack.shape[1], stack.shape[0],
                                                  gdal.GDT_UInt16, ["TILED=YES"])
        ds.SetGeoTransform((x, step, 0.0, y, 0.0, -step))
        ds.SetProjection(src.GetProjection())
        for b, plane in enumerate(stack, start=1):
            ds.GetRasterBand(b).WriteArray(plane)
        ds = None
        return str(path)

    return (write(folder / "pan.tif", pan, pixel, x0, y0),
            write(folder / "ms.tif", ms, pixel * RATIO, x0 + pixel / 2, y0 - pixel / 2))


TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


def run(commands: list[list[str]], report: Path) -> dict:
    """Run commands one after the other; wall, CPU and peak RSS (KiB) of the children."""
    start, cpu, peak = time.perf_counter(), 0.0, 0
    for command in commands:
        wrapped = [TIME, "-o", str(report), "-f", "%M %U %S", *command] if TIME else command
        child = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=report.parent)
        _, status, usage = os.wait4(child.pid, 0)
        failed = os.waitstatus_to_exitcode(status)
        errors = child.stderr.read().decode()
        child.stderr.close()
        if failed:
            raise RuntimeError(f"{' '.join(command[:4])} ... failed: {errors[-600:]}")
        if TIME:
            kib, user, system = report.read_text().split()[-3:]
            cpu, peak = cpu + float(user) + float(system), max(peak, int(kib))
        else:
            cpu, peak = cpu + usage.ru_utime + usage.ru_stime, max(peak, usage.ru_maxrss)
    return {"wall": time.perf_counter() - start, "cpu": cpu, "peak_mib": peak / 1024}


def jobs(pan: str, ms: str, out: Path, size: int, before: Path | None = None) -> dict[str, list[list[str]]]:
    from diffusion_pansharpening.engine.writer import overview_factors

    gdal = ["gdal_pansharpen.py", pan, ms, str(out), "-of", "GTiff", "-r", "cubic", "-q"]
    found = {f"ours {m}": [[*PANSHARPEN, "sharpen", pan, ms, str(out), "--method", m, "--quiet"]] for m in METHODS}
    found.update({f"ours {m} no-ovr": [[*PANSHARPEN, "sharpen", pan, ms, str(out), "--method", m, "--quiet",
                                        "--no-overviews"]] for m in METHODS})
    if before is not None:
        old = ["env", f"PYTHONPATH={before}", sys.executable, "-m", "diffusion_pansharpening.engine.cli"]
        found.update({f"before {m}": [[*old, "sharpen", pan, ms, str(out), "--method", m, "--quiet"]]
                      for m in METHODS})
        found.update({f"before {m} no-ovr": [[*old, "sharpen", pan, ms, str(out), "--method", m, "--quiet",
                                              "--no-overviews"]] for m in METHODS})
    found["gdal"] = [gdal + CREATION]
    found["gdal+ovr"] = [gdal + CREATION, ADDO + [str(out), *map(str, overview_factors(size, size))]]
    found["gdal plain"] = [gdal]
    return found


def in_child(function: str, *args) -> str:
    """This module's ``function(*args)`` in a child process (keeps this one small); its printed result."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import classical_vs_gdal as m; " \
           f"print(m.{function}(*{args!r}))"
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def copy_bandwidth(threads: int, mib: int = 512, repeats: int = 5) -> float:
    """STREAM-like copy bandwidth in GB/s (bytes read + written), best of ``repeats``."""
    src = np.ones(mib * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def copy(a: int, b: int) -> None:
        np.copyto(dst[a:b], src[a:b])

    best = float("inf")
    for _ in range(repeats):
        workers = [threading.Thread(target=copy, args=bound) for bound in bounds]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def cpu_info() -> tuple[str, list[str]]:
    import machine

    return machine.cpu_model(), machine.cpu_flags()


def minimum_bytes() -> float:
    """Bytes per output pixel at the least: PAN (2) + MS (4 bands x 2 / 16) read, output (4 x 2) written."""
    return 2 + BANDS * 2 / RATIO**2 + BANDS * 2


def medians(result: dict) -> dict[str, dict[str, float]]:
    return {name: {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "peak_mib")}
            for name, runs in result["runs"].items()}


def table(result: dict) -> str:
    """The Markdown table: medians, ratios GDAL / ours (above 1: ours faster), memory bound."""
    med, pixels = medians(result), result["size"] ** 2
    gdal, with_ovr = med.get("gdal"), med.get("gdal+ovr")
    bound = minimum_bytes() * pixels / (result["bandwidth_gbs"]["two_threads"] * 1e9)
    lines = ["| job | runs | wall s | CPU s | peak MiB | GDAL wall / ours | GDAL+ovr wall / ours | "
             "GDAL CPU / ours | peak / GDAL's | GB/s at the minimum traffic | time / memory bound |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in med.items():
        ours = not name.startswith("gdal")
        ratio = f"{gdal['wall'] / m['wall']:.2f}" if ours and gdal else ""
        ratio_ovr = f"{with_ovr['wall'] / m['wall']:.2f}" if ours and with_ovr else ""
        memory = f"{m['peak_mib'] / gdal['peak_mib']:.2f}" if ours and gdal else ""
        cpu = f"{gdal['cpu'] / m['cpu']:.2f}" if ours and gdal else ""
        moved = minimum_bytes() * pixels / m["wall"] / 1e9  # GB/s
        lines.append(f"| {name} | {len(result['runs'][name])} | {m['wall']:.2f} | {m['cpu']:.2f} | "
                     f"{m['peak_mib']:.0f} | {ratio} | {ratio_ovr} | {cpu} | {memory} | {moved:.3f} | "
                     f"{m['wall'] / bound:.0f} x |")
    return "\n".join(lines)


TITLE = "Classical methods against gdal_pansharpen (issue 18)"


def markdown(result: dict) -> str:
    """The section of docs/benchmarks.md (``report.write`` adds it when ``make bench`` ran it)."""
    size, bw = result["size"], result["bandwidth_gbs"]
    bound = minimum_bytes() * size**2 / (bw["two_threads"] * 1e9)
    commands = "\n".join(f"{name}: {command}" for name, command in result["commands"].items())
    return f"""## {TITLE}

`benchmarks/classical_vs_gdal.py --repeats {result['repeats']}` (`make bench` runs it too). Whole processes on
the same inputs, one after the other, the order rotated each round: a {size} x {size} PAN and a
{size // RATIO} x {size // RATIO}, {BANDS}-band MS (ratio {RATIO}, UInt16, tiled uncompressed GeoTIFFs) made of the
Landsat-8 scene's real texture (mirror-tiled; see the script), on the engine's MS phase, so nothing is
resampled. Ours writes its default output: a tiled (256) GeoTIFF, DEFLATE with PREDICTOR=2, and
internal averaged overviews; the `no-ovr` rows write it without overviews (`--no-overviews`). `gdal`
is `gdal_pansharpen.py` (weighted Brovey, cubic) writing the same format without overviews;
`gdal+ovr` adds `gdaladdo -r average` with DEFLATE overviews: the same file as our default. So the
`no-ovr` rows compare with `gdal`, the others with `gdal+ovr`. `gdal plain` is its default,
uncompressed output. Medians of {result['repeats']} rounds;
CPU is user + system time of the process(es), peak the largest resident size (`/usr/bin/time`).
GDAL wall / ours above 1 means ours is faster.

{table(result)}

Machine: {result['cpu']}, {result['cores']} cores (flags: {' '.join(result['flags'])}), GDAL {result['gdal']};
load average {result['load'][0]:.1f} at the start and {result['load'][1]:.1f} at the end (the machine is
shared: the wall times carry that load; the CPU times are the steadier measure).

Memory traffic: at the least a run reads the PAN (2 bytes per output pixel) and the MS (0.5) and
writes the output (8, uncompressed), {minimum_bytes():.1f} bytes per output pixel. A STREAM-like numpy
copy moves {bw['one_thread']:.1f} GB/s (read + write) on one thread and {bw['two_threads']:.1f} GB/s on two here,
so the memory bound of the whole job is {bound * 1000:.0f} ms: every run is two to three orders of
magnitude above it (last column). Counting the engine's intermediate planes too (an estimate from
the code, not a measurement: a few hundred bytes per output pixel for brovey and gsa, about 1.5 kB
for mtf-glp-hpm, whose statistics and filters run in float64), the traffic over the CPU time is
still only some 5 to 20 % of one core's copy bandwidth: the classical methods are bound by
computation (DEFLATE above all, then the 23-tap upsampling and, for mtf-glp-hpm, the FFT
filters), not by memory.

Commands (`OUT` a fresh file each run):

```
{commands}
```
"""


def shown(commands: list[list[str]], folder: Path, out: Path) -> str:
    """A job's command lines as the report shows them: paths relative, the output OUT."""
    text = " && ".join(" ".join(c) for c in commands)
    return text.replace(str(folder) + "/", "").replace(str(ROOT) + "/", "").replace(out.name, "OUT")


def measure(size: int = 4096, repeats: int = 5, only: list[str] | None = None, folder: Path | None = None,
            log=print, before: Path | None = None) -> dict:
    """Make the scene (in ``folder``, else a temporary one, removed) and time every job."""
    keep = folder is not None
    folder = folder or Path(tempfile.mkdtemp(prefix="classical-vs-gdal-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        pan, ms = ast.literal_eval(in_child("make_scene", str(folder), size))
        from osgeo import gdal

        size = gdal.Open(pan).RasterXSize
        out = folder / "out.tif"
        todo = jobs(pan, ms, out, size, before)
        if only:
            todo = {k: v for k, v in todo.items() if k in only}
        model, flags = cpu_info()
        result = {"cpu": model, "cores": os.cpu_count(), "gdal": gdal.__version__, "size": size,
                  "repeats": repeats, "load": [os.getloadavg()[0], None],
                  "flags": [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16") if f in flags],
                  "bandwidth_gbs": {"one_thread": float(in_child("copy_bandwidth", 1)),
                                    "two_threads": float(in_child("copy_bandwidth", 2))},
                  "commands": {name: shown(commands, folder, out) for name, commands in todo.items()},
                  "runs": {name: [] for name in todo}}
        log(f"CPU: {model}, {result['cores']} cores; flags: {' '.join(result['flags'])}; GDAL {gdal.__version__}; "
            f"copy bandwidth {result['bandwidth_gbs']['one_thread']:.1f} / "
            f"{result['bandwidth_gbs']['two_threads']:.1f} GB/s (1 / 2 threads)")
        names = list(todo)
        for round_ in range(repeats):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                out.unlink(missing_ok=True)
                r = run(todo[name], folder / "time.txt")
                result["runs"][name].append(r)
                log(f"  round {round_ + 1} {name}: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, "
                    f"{r['peak_mib']:.0f} MiB")
        out.unlink(missing_ok=True)
        result["load"][1] = os.getloadavg()[0]
        return result
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=4096, help="PAN pixels a side (4096)")
    p.add_argument("--repeats", type=int, default=5, help="rounds of every job (5)")
    p.add_argument("--only", default=None, help="comma-separated job names (default all)")
    p.add_argument("--keep", type=Path, default=None, help="make the scene in this folder and keep it")
    p.add_argument("--json", type=Path, default=None, help="also write the raw runs as JSON")
    p.add_argument("--before", type=Path, default=None, help="also time the package in this folder (see above)")
    args = p.parse_args(argv)
    if shutil.which("gdal_pansharpen.py") is None:
        print("gdal_pansharpen.py is not installed (Debian: gdal-bin)", file=sys.stderr)
        return 2
    result = measure(args.size, args.repeats, args.only.split(",") if args.only else None, args.keep,
                     log=lambda line: print(line, flush=True), before=args.before)
    print()
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

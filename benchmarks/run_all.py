"""Run the whole benchmark suite and write ``docs/benchmarks.md`` (what ``make bench`` runs).

Sections (``--sections``, all by default; see ``main`` for the order they run in):
  throughput  every method (in-process ``sharpen``) and every installed peer on each
              scene (the bundled sample, Landsat-8 and WorldView-2 at --size PAN),
              repeated; median and min-max spread; deep methods only with real weights
  ratios      dm50 / fose and dm50 / ksdiff time on the sample (same tiles, device)
  tiles       throughput against tile size (table and PNG plot)
  memory      peak RSS of one run at 2000, 8000 and 16000 PAN pixels a side (child process)
  qgis        the same job through qgis_process.bin, the ``pansharpen`` command and in-process
  classical   brovey, gsa and mtf-glp-hpm against gdal_pansharpen.py as whole processes, same
              output format, on a 4096 x 4096 4-band ratio-4 scene (``classical_vs_gdal``; 1024 with --quick)

    .venv/bin/python benchmarks/run_all.py [--size 8000] [--repeats 3] [--quick]
        [--scenes sample,landsat8,worldview2] [--sections ...] [--weights-dir DIR] [--out docs/benchmarks.md]

A job on a large scene whose time, predicted from its throughput on the sample, is
over ``--budget`` seconds per run is skipped and the table says so (dm50 on CPU); a
job whose runs add up to more than the budget is not repeated further (the table
gives the number of runs).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.models import precision_name

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inputs  # noqa: E402
import machine  # noqa: E402
import memory  # noqa: E402
import ours  # noqa: E402
import report  # noqa: E402
from measure import repeat  # noqa: E402
from peers import PEERS, PeerFailed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("throughput", "ratios", "tiles", "memory", "qgis", "classical")
SCENES = ("sample", "landsat8", "worldview2")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=None, help="PAN pixels a side of the large scenes (8000; --quick 800)")
    p.add_argument("--repeats", type=int, default=None, help="runs of each job (3; --quick 1)")
    p.add_argument("--quick", action="store_true", help="small sizes and 1 repeat (development, smoke test)")
    p.add_argument("--scenes", default=",".join(SCENES))
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--methods", default=None, help="only these of our methods (comma-separated; default all)")
    p.add_argument("--weights-dir", type=Path, default=None, help="weights for the deep methods (else shipped ones)")
    p.add_argument("--memory-sizes", default=None, help="PAN sizes of the memory runs (2000,8000,16000)")
    p.add_argument("--tiles", default=None, help="tile sizes of the tile sweep (128,256,512,1024,2048)")
    p.add_argument("--budget", type=float, default=900.0,
                   help="seconds: skip a large-scene job predicted over this per run; stop repeating past it")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--keep", type=Path, default=None, help="keep the sample's outputs in this folder")
    p.add_argument("--update", action="store_true",
                   help="keep the other sections of an earlier run (its JSON beside --out), and its "
                        "throughput rows of other scenes; redo only --sections on --scenes")
    args = p.parse_args(argv)
    args.size = args.size or (800 if args.quick else 8000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.memory_sizes = [int(s) for s in (args.memory_sizes or ("400,800" if args.quick else "2000,8000,16000")).split(",")]
    args.tiles = [int(t) for t in (args.tiles or ("128,256,512" if args.quick else "128,256,512,1024,2048")).split(",")]
    args.scenes = [s for s in args.scenes.split(",") if s]
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = (set(args.scenes) - set(SCENES)) | (set(args.sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown scene or section: {', '.join(sorted(unknown))}")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_scenes(names: list[str], size: int, work: Path) -> list[inputs.Scene]:
    makers = {"sample": lambda: inputs.sample_scene(),
              "landsat8": lambda: inputs.landsat_scene(size, work),
              "worldview2": lambda: inputs.worldview2_scene(size, work)}
    return [makers[name]() for name in names]


def timed_row(scene, tool: str, name: str, label: str, job, repeats: int, out: Path, keep: Path | None,
              budget: float | None = None) -> dict:
    """One table row: the job repeated (fewer times when over ``budget`` s), or why it could not run."""
    row = {"scene": scene.name, "tool": tool, "name": name, "label": label, "pixels": scene.pixels}
    try:
        timing = repeat(job, repeats, budget)
    except PansharpenError as exc:  # e.g. a deep model trained for another band count
        row["note"] = f"cannot run: {exc}"
        log(f"  {name}: cannot run: {exc}")
        return row
    except (PeerFailed, RuntimeError, OSError, ValueError) as exc:
        row["note"] = f"failed: {exc}"
        log(f"  {name}: FAILED {exc}")
        return row
    finally:
        if keep is not None and scene.name == "sample" and out.exists():
            shutil.move(str(out), keep / f"{scene.name}_{name.replace(' ', '_').replace(':', '_')}.tif")
        out.unlink(missing_ok=True)
    row["timing"], row["repeats"] = timing.as_dict(), repeats
    mps = timing.throughput(scene.pixels)
    row["mp_per_s"] = {"median": mps.median, "low": mps.low, "high": mps.high}
    log(f"  {name}: {timing.median:.2f} s median, {mps.median:.3f} MP/s")
    return row


def throughput(scenes, methods, args, work: Path, device: str = "auto", prior: list[dict] = (),
               half: bool = True) -> list[dict]:
    """Rows for every method and peer on each scene; ``prior`` rows (the sample's) predict times."""
    rows = []
    for scene in scenes:
        log(f"throughput on {scene.name} ({scene.width} x {scene.height}, {scene.bands} bands, device {device})")
        out = work / "out.tif"
        for method in methods:
            base = {"scene": scene.name, "tool": "ours", "name": method.name, "label": method.kind,
                    "pixels": scene.pixels, "device": device}
            if not method.runnable:
                rows.append({**base, "note": method.why_not})
                continue
            skip = over_budget(measured_rates([*prior, *rows]), method.name, scene.pixels, args.budget)
            if skip:
                rows.append({**base, "note": skip})
                continue
            job = ours.in_process(scene, method, out, device=device, half=half)
            row = timed_row(scene, "ours", method.name, method.kind, job, args.repeats, out, args.keep, args.budget)
            rows.append({**row, "device": device, "precision": precision_name(device, half)})
        if device != "auto":
            continue  # the peers run once, with the CPU tables
        for peer in PEERS:
            missing = peer.missing()
            if missing:
                if not any(r["scene"] == scene.name and r["name"] == peer.name for r in prior):
                    rows.append({"scene": scene.name, "tool": "peer", "name": peer.name, "label": peer.label,
                                 "pixels": scene.pixels, "note": f"not installed: {', '.join(missing)}"})
                continue  # (--update: the row measured where it was installed stays)
            job = (lambda peer=peer, scene=scene: peer.run(scene, out, work))
            rows.append(timed_row(scene, "peer", peer.name, peer.label, job, args.repeats, out, args.keep,
                                  args.budget))
    return rows


CPU_FLOAT32 = ("fose", "ksdiff", "e2e")  # the methods the CPU's float32 table times


def precision_tables(machine_info: dict, deep: list) -> list[tuple[str, str, bool, list]]:
    """(results key, device, half, methods) of the deep methods' extra tables: fose,
    ksdiff and e2e on the CPU in float32 when it runs bfloat16 by default; every deep
    method on the GPU in float16 and in float32."""
    chosen = {"throughput_cpu_float32": [m for m in deep if m.name in CPU_FLOAT32]}
    tables = [(key, device, half, chosen.get(key, deep)) for key, device, half in precision_keys(machine_info)]
    return [t for t in tables if t[3]]


def precision_keys(machine_info: dict) -> list[tuple[str, str, bool]]:
    """(results key, device, half) of the extra tables this machine measures (``precision_tables``)."""
    keys = []
    if machine_info.get("cpu_precision", "float32") != "float32":
        keys.append(("throughput_cpu_float32", "cpu", False))
    if machine_info["cuda"]:
        keys += [("throughput_cuda", "cuda", True), ("throughput_cuda_float32", "cuda", False)]
    return keys


RATIOS = (("dm50", "fose"), ("dm50", "ksdiff"), ("fose", "e2e"))  # slow / fast


def ratios(rows: list[dict]) -> list[dict]:
    """Time ratios of our methods on each scene, same tiles and device: dm50 / fose and
    dm50 / ksdiff (the papers' speed-ups) and fose / e2e (the fast path's target, <= 3)."""
    found = []
    for scene in dict.fromkeys(r["scene"] for r in rows):
        ours_rows = {r["name"]: r for r in rows if r["scene"] == scene and r["tool"] == "ours"}
        for slow, fast in RATIOS:
            if slow not in ours_rows or fast not in ours_rows:
                continue  # a table without one of them (the CPU's float32 table has no dm50)
            pair = [ours_rows[slow], ours_rows[fast]]
            ratio = {"scene": scene, "pair": f"{slow} / {fast}",
                     "precision": next((r["precision"] for r in pair if "precision" in r), "")}
            if all("timing" in r for r in pair):
                slow_s, fast_s = (r["timing"]["median"] for r in pair)
                ratio.update(slow_s=slow_s, fast_s=fast_s, ratio=slow_s / fast_s)
            elif scene != "sample" and slow == "dm50":
                continue  # dm50 runs on the sample only (minutes per megapixel on a CPU)
            else:
                ratio["note"] = "; ".join(f"{name}: {r.get('note', 'not measured')}"
                                          for name, r in zip((slow, fast), pair) if "timing" not in r)
            found.append(ratio)
    return found


def tile_sweep(args, methods, work: Path, rates: dict[str, float]) -> list[dict]:
    scene = inputs.sample_scene() if args.quick else inputs.landsat_scene(2000, work)
    log(f"tile sweep on {scene.name} {scene.width} x {scene.height}")
    chosen = [m for m in methods if m.runnable and m.name in ("brovey", "mtf-glp-hpm", "e2e", "fose", "ksdiff")]
    rows, out = [], work / "tile.tif"
    for method in chosen:
        skip = over_budget(rates, method.name, scene.pixels, args.budget)
        for tile in args.tiles:
            if skip:
                rows.append({"scene": scene.name, "tool": "ours", "name": method.name, "label": f"tile {tile}",
                             "pixels": scene.pixels, "tile": tile, "note": skip})
                continue
            job = ours.in_process(scene, method, out, tile=tile)
            row = timed_row(scene, "ours", method.name, f"tile {tile}", job, args.repeats, out, None, args.budget)
            rows.append({**row, "tile": tile})
    return rows


def measured_rates(rows: list[dict]) -> dict[str, float]:
    """Median MP/s of each of our methods on the largest scene it ran on: predicts its
    time elsewhere (the sample alone underestimates large rasters, where the per-run
    costs are spread over more pixels)."""
    best: dict[str, dict] = {}
    for r in rows:
        if r["tool"] == "ours" and "mp_per_s" in r and r["pixels"] > best.get(r["name"], {}).get("pixels", 0):
            best[r["name"]] = r
    return {name: r["mp_per_s"]["median"] for name, r in best.items()}


def over_budget(rates: dict[str, float], name: str, pixels: int, budget: float) -> str:
    """Why a run of ``name`` on ``pixels`` is skipped (predicted over budget), or ""."""
    if name not in rates:
        return ""
    predicted = pixels / 1e6 / rates[name]
    return f"skipped: predicted {predicted:.0f} s per run > budget {budget:.0f} s" if predicted > budget else ""


def memory_runs(args, methods, work: Path, rates: dict[str, float]) -> list[dict]:
    """Peak RSS of fose at each size (mtf-glp-hpm, the default method, when fose has no
    weights). Never skipped for time: these three runs are the point of the section."""
    by_name = {m.name: m for m in methods if m.runnable}
    method = by_name.get("fose") or by_name.get("mtf-glp-hpm")
    if method is None:
        return []
    rows = []
    for size in args.memory_sizes:
        scene = inputs.landsat_scene(size, work)
        predicted = f", predicted {scene.pixels / 1e6 / rates[method.name]:.0f} s" if method.name in rates else ""
        log(f"peak memory of {method.name} at {scene.width} x {scene.height}{predicted}")
        out = work / "memory.tif"
        try:
            result = memory.peak_rss(scene.pan, scene.ms, str(out), method.name, weights=method.weights)
        except RuntimeError as exc:
            result = {"note": f"failed: {exc}"}
        finally:
            out.unlink(missing_ok=True)
        rows.append({"method": method.name, "size": scene.width, "pixels": scene.pixels, **result})
        log(f"  {result.get('peak_rss_mib', 0):.0f} MiB in {result.get('seconds', 0):.1f} s {result.get('note', '')}")
    return rows


def qgis_overhead(args, methods, work: Path) -> list[dict]:
    """The same job three ways: qgis_process.bin, the ``pansharpen`` command, in-process."""
    scenes = [inputs.sample_scene()] + ([] if args.quick else [inputs.landsat_scene(2000, work)])
    chosen = [m for m in methods if m.runnable and m.name in ("mtf-glp-hpm", "fose")]
    rows, out = [], work / "qgis.tif"
    for scene in scenes:
        log(f"QGIS path on {scene.name}")
        for method in chosen:
            ways = {"qgis_process.bin": lambda: ours.through_qgis(scene, method, out, work),
                    "pansharpen sharpen": lambda: ours.command_line(scene, method, out),
                    "in-process sharpen()": lambda: ours.in_process(scene, method, out)}
            for way, make in ways.items():
                try:
                    job = make()
                except PeerFailed as exc:
                    rows.append({"scene": scene.name, "tool": way, "name": method.name, "label": way,
                                 "pixels": scene.pixels, "note": f"failed: {exc}"})
                    continue
                rows.append(timed_row(scene, way, method.name, way, job, args.repeats, out, None, args.budget))
    return rows


def classical_against_gdal(args, work: Path) -> dict:
    """``classical_vs_gdal.measure``: our classical methods and gdal_pansharpen.py, whole processes."""
    import classical_vs_gdal

    if shutil.which("gdal_pansharpen.py") is None:
        return {"note": "not run: gdal_pansharpen.py is not installed (Debian: gdal-bin)"}
    log("classical methods against gdal_pansharpen.py")
    try:
        return classical_vs_gdal.measure(1024 if args.quick else 4096, args.repeats, folder=work / "classical",
                                         log=log)
    except (RuntimeError, OSError, ValueError) as exc:
        return {"note": f"failed: {exc}"}


def main(argv: list[str] | None = None) -> int:
    """Run the sections; the report is rewritten after each step, so a long run that is
    stopped still leaves every finished table. Order: throughput on all scenes but the
    largest-band one (WorldView-2), ratios, memory, QGIS path, tiles, then WorldView-2:
    the figures the issue asks for first, the longest runs last."""
    args = parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    here = machine.describe()
    results = {"machine": here, "args": {"size": args.size, "repeats": args.repeats,
                                                        "quick": args.quick, "scenes": args.scenes,
                                                        "budget": args.budget},
               "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "finished": "(running)"}
    earlier = args.out.with_suffix(".json")
    if args.update and earlier.exists():
        old = json.loads(earlier.read_text())
        kept = {key: value for key, value in old.items() if key.split("_")[0] not in args.sections}
        if "throughput" in args.sections:  # rows of the scenes, methods and tables not rerun stay
            wanted = args.methods.split(",") if args.methods else None
            rerun_keys = {"throughput"} | {key for key, *_ in precision_keys(here)}

            missing_here = {peer.name for peer in PEERS if peer.missing()}

            def rerun_row(key: str, row: dict) -> bool:
                if row["tool"] == "peer" and row["name"] in missing_here:
                    return False  # not installed on this machine: its earlier row stays
                return (key in rerun_keys and row["scene"] in args.scenes
                        and (wanted is None or row["tool"] != "ours" or row["name"] in wanted))
            for key in (k for k in old if k.startswith("throughput")):
                kept[key] = [r for r in old[key] if not rerun_row(key, r)]
        rerun = (f"sections {', '.join(args.sections)} rerun on {', '.join(args.scenes)} from "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine.summary(here)}")
        results = {**kept, "finished": "(running)", "updated": "; ".join(filter(None, [old.get("updated"), rerun]))}
    log(f"machine: {machine.summary(here)}")

    def save(finished: bool = False) -> None:
        if finished:
            results["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        report.write(results, args.out)

    build = ROOT / ".build"
    with tempfile.TemporaryDirectory(prefix="bench-", dir=build if build.is_dir() else None) as tmp:
        work = Path(tmp)
        methods = ours.methods(args.weights_dir)
        if args.methods:
            wanted = args.methods.split(",")
            methods = [m for m in methods if m.name in wanted]
        scenes = build_scenes(args.scenes, args.size, work)
        described = [{"name": s.name, "width": s.width, "height": s.height, "bands": s.bands,
                      "ratio": s.ratio, "note": s.note} for s in scenes]
        results["scenes"] = [s for s in results.get("scenes", []) if s["name"] not in args.scenes] + described
        first = [s for s in scenes if s.name != "worldview2"]
        last = [s for s in scenes if s.name == "worldview2"]
        deep = [m for m in methods if m.kind == "deep"]

        def measure_throughput(chosen) -> None:
            for scene in chosen:
                results.setdefault("throughput", []).extend(
                    throughput([scene], methods, args, work, prior=results.get("throughput", [])))
                for key, device, half, chosen_methods in precision_tables(here, deep):
                    results.setdefault(key, []).extend(throughput(
                        [scene], chosen_methods, args, work, device=device, prior=results.get(key, []), half=half))
                save()

        if "throughput" in args.sections:
            measure_throughput(first)
        if "ratios" in args.sections:
            results["ratios"] = [r for key in ("throughput", "throughput_cpu_float32")
                                 for r in ratios(results.get(key, []))]
        rates = measured_rates(results.get("throughput", []))
        if "memory" in args.sections:
            results["memory"] = memory_runs(args, methods, work, rates)
            save()
        if "qgis" in args.sections:
            results["qgis"] = qgis_overhead(args, methods, work)
            save()
        if "tiles" in args.sections:
            results["tiles"] = tile_sweep(args, methods, work, rates)
            save()
        if "classical" in args.sections:
            results["classical"] = classical_against_gdal(args, work)
            save()
        if "throughput" in args.sections:
            measure_throughput(last)
    save(finished=True)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

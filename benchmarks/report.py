"""``docs/benchmarks.md`` and its plot, from the results ``run_all`` gathered.

The Markdown is complete and commit-ready: machine first, then one table per
measurement, every time as median and min-max spread. The plot (throughput against
tile size) needs matplotlib (Debian's python3-matplotlib); without it the report
says so and keeps the table.
"""
from __future__ import annotations

from pathlib import Path

PLOT_NAME = "benchmarks_tiles.png"
GPU_CHECK = "gpu_check.md"  # benchmarks/gpu_check.sh's output, saved beside the report where a GPU ran it
_ON_GPU = ("The same jobs as on the CPU with `--device cuda` (`SharpenRequest.half`: float16 autocast by "
           "default, `--full-precision` for float32).")
EXTRA_TABLES = (  # results key, title, what the table is
    ("throughput_cpu_float32", "Throughput on the CPU in float32 (deep methods)",
     "Our deep methods again on the same scenes with `--full-precision` (`SharpenRequest.half=False`): "
     "what a CPU without native bfloat16 runs."),
    ("throughput_cuda", "Throughput on the GPU, float16 autocast (deep methods)", _ON_GPU),
    ("throughput_cuda_float32", "Throughput on the GPU, float32 (deep methods)", _ON_GPU),
)


def write(results: dict, path: Path) -> None:
    parts = [_header(results), _machine(results["machine"]), _scenes(results.get("scenes", []))]
    if "throughput" in results:
        parts.append(_throughput(results["throughput"], "Throughput"))
    for key, title, intro in EXTRA_TABLES:
        if results.get(key):
            parts.append(_throughput(results[key], title, intro))
    if "ratios" in results:
        parts.append(_ratios(results["ratios"]))
    if "tiles" in results:
        parts.append(_tiles(results["tiles"], path.parent / PLOT_NAME))
    if "memory" in results:
        parts.append(_memory(results["memory"]))
    if "qgis" in results:
        parts.append(_qgis(results["qgis"]))
    if "classical" in results:
        parts.append(_classical(results["classical"]))
    parts.append(_gpu_check(path.parent / GPU_CHECK))
    path.write_text("\n\n".join(parts) + "\n")


def _gpu_check(saved: Path) -> str:
    """What ``benchmarks/gpu_check.sh`` printed on a machine with an NVIDIA GPU (saved as
    ``GPU_CHECK`` beside the report), or that it has not run on one yet."""
    title = "## GPU check (`benchmarks/gpu_check.sh`)\n\n"
    if saved.exists():
        return (title + f"Its output on a machine with an NVIDIA GPU, as saved in `{saved.name}` "
                "(`benchmarks/gpu_check.sh | tee " + f"docs/{saved.name}`):\n\n" + saved.read_text().strip())
    return (title + "It has not run on a GPU yet: no machine with an NVIDIA GPU was at hand. Where one is, "
            f"`benchmarks/gpu_check.sh | tee docs/{saved.name}` runs the CUDA tests, fose, ksdiff and e2e "
            "throughput in float16 and float32 on the 8000 x 8000 Landsat-8 scene and CUDA against the CPU "
            "on one tile in under five minutes; this report then shows its tables here.")


def _classical(result: dict) -> str:
    import classical_vs_gdal

    if "runs" not in result:
        return f"## {classical_vs_gdal.TITLE}\n\n{result.get('note', 'not run')}."
    return classical_vs_gdal.markdown(result).rstrip("\n")


def _header(results: dict) -> str:
    args = results["args"]
    return (
        "# Benchmarks\n\n"
        f"Written by `benchmarks/run_all.py` (`make bench`) from {results['started']} to "
        f"{results['finished']}{'; ' + results['updated'] if results.get('updated') else ''}; raw numbers in "
        "`benchmarks.json` beside this file. Do not edit by hand: the analyses written by hand (what made "
        "each path faster, the machine's limits, the GPU check, Dask batches) are in `docs/performance.md`.\n\n"
        f"Every job ran {args['repeats']} time(s){' (quick mode)' if args['quick'] else ''}, fewer when its "
        f"runs added up to more than {args.get('budget', 0):.0f} s (the spread column then says how many): times are "
        "wall-clock seconds of the whole job as a user runs it (read, compute, write a GeoTIFF), "
        "shown as the median and the min-max spread over the runs. Throughput is output megapixels "
        "(PAN-grid pixels, all bands) per second: the median run's, and the range over the runs. "
        "Each tool runs with its own defaults (threads, memory); peers and the command line run as "
        "fresh processes, so their start-up is included; our methods' rows are `sharpen()` in-process "
        "(the QGIS-path table compares the three ways in). Our engine writes a tiled, DEFLATE-compressed "
        "GeoTIFF with internal overviews (compressed as it is written); GDAL and OTB write "
        "uncompressed GeoTIFFs by default, so their times include less writing work. Deep methods are timed only with real "
        "weights (shipped in `resources/weights/` or `--weights-dir`); otherwise the row says "
        "\"no weights\".")


def _machine(m: dict) -> str:
    device = (f"CUDA GPU {m['gpu']}" if m.get("cuda")
              else "CPU only: no CUDA device, so every number below is a CPU run")
    cpu_precision = m.get("cpu_precision", "float32")
    precision = (f"deep models on the CPU run in {cpu_precision} by default (the CPU computes it natively; "
                 "`--full-precision` for float32, in its own table)" if cpu_precision != "float32"
                 else "deep models on the CPU run in float32")
    return "\n".join([
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores (flags: {' '.join(m.get('flags') or ['not recorded'])}), "
        f"{m['memory_gib']:.1f} GiB memory; load average "
        f"{m['load_average']:.1f} when the run started (the machine is shared: other jobs add noise, "
        "which the spread shows); sections rerun later name their own machine in the line above",
        f"- Device: {device}; torch {m.get('torch')} with {m.get('torch_threads')} threads; {precision}",
        f"- Software: {m['os']}, Python {m['python']}, GDAL {m['gdal']}, OTB {m.get('otb') or 'not installed'}, "
        f"QGIS {m.get('qgis') or 'not installed'}",
    ])


def _scenes(scenes: list[dict]) -> str:
    lines = ["## Inputs", "", "| scene | PAN pixels | bands | ratio | what |", "|---|---|---|---|---|"]
    lines += [f"| {s['name']} | {s['width']} x {s['height']} | {s['bands']} | {s['ratio']} | {s['note']} |"
              for s in scenes]
    return "\n".join(lines)


def _seconds(row: dict) -> tuple[str, str]:
    """Median and min-max seconds; the number of runs when the budget cut the repeats."""
    t = row.get("timing")
    if not t:
        return "", ""
    runs = len(t["seconds"])
    short = f" ({runs} run{'s' if runs > 1 else ''})" if runs < row.get("repeats", runs) else ""
    return f"{t['median']:.2f}", f"{t['low']:.2f}-{t['high']:.2f}{short}"


def _rate(row: dict) -> tuple[str, str]:
    r = row.get("mp_per_s")
    if not r:
        return "", ""
    return f"{r['median']:.3f}", f"{r['low']:.3f}-{r['high']:.3f}"


def _throughput(rows: list[dict], title: str, intro: str = "") -> str:
    parts = [f"## {title}"] + ([intro] if intro else [])
    for scene in dict.fromkeys(r["scene"] for r in rows):
        lines = [f"### {scene}", "",
                 "| who | method / tool | median s | spread s | MP/s | MP/s range | note |",
                 "|---|---|---|---|---|---|---|"]
        for row in (r for r in rows if r["scene"] == scene):
            who = "ours" if row["tool"] == "ours" else "peer"
            name = f"`{row['name']}` ({row['label']})" if who == "ours" else row["label"]
            lines.append(f"| {who} | {name} | {' | '.join(_seconds(row))} | {' | '.join(_rate(row))} | "
                         f"{_note(row)} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _note(row: dict) -> str:
    return row.get("note", "").replace("|", "/").replace("\n", " ")[:300]


def _ratios(ratios: list[dict]) -> str:
    lines = ["## Time ratios on our code", "",
             "Median run times of two of our methods on the same scene, tiles and device, "
             "measured in the same run: the 50-step teacher over the fast methods (Fose reports "
             "7.42x for dm50 / fose; dm50 runs on the sample only) and fose over e2e alone "
             "(the target is 3x or less), in each precision measured.", "",
             "| scene | precision | ratio | slow s | fast s | ratio | note |", "|---|---|---|---|---|---|---|"]
    for r in ratios:
        scene, precision = r.get("scene", "sample"), r.get("precision", "")
        if "ratio" in r:
            slow, fast = r.get("slow_s", r.get("dm50_s")), r["fast_s"]
            lines.append(f"| {scene} | {precision} | {r['pair']} | {slow:.2f} | {fast:.2f} | {r['ratio']:.2f}x | |")
        else:
            lines.append(f"| {scene} | {precision} | {r['pair']} | | | | {r.get('note', '')} |")
    return "\n".join(lines)


def _tiles(rows: list[dict], png: Path) -> str:
    lines = ["## Throughput against tile size", ""]
    if rows:
        scene = rows[0]["scene"]
        lines.append(f"On the {scene} scene ({rows[0]['pixels'] / 1e6:.1f} MP), default overlap 32.")
        lines.append("")
    lines += ["| method | tile | median s | spread s | MP/s | MP/s range | note |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| `{row['name']}` | {row['tile']} | {' | '.join(_seconds(row))} | "
                     f"{' | '.join(_rate(row))} | {_note(row)} |")
    made = plot_tiles(rows, png)
    lines += ["", f"![throughput against tile size]({png.name})" if made
              else "(No plot: matplotlib is not installed; `apt-get install python3-matplotlib`.)"]
    return "\n".join(lines)


def plot_tiles(rows: list[dict], png: Path) -> bool:
    """Throughput (median, with the min-max range as error bars) against tile size, per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name in dict.fromkeys(r["name"] for r in rows):
        points = [r for r in rows if r["name"] == name and "mp_per_s" in r]
        if not points:
            continue
        tiles = [r["tile"] for r in points]
        med = [r["mp_per_s"]["median"] for r in points]
        err = [[m - r["mp_per_s"]["low"] for m, r in zip(med, points)],
               [r["mp_per_s"]["high"] - m for m, r in zip(med, points)]]
        ax.errorbar(tiles, med, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ticks = sorted({r["tile"] for r in rows})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("tile size (PAN pixels a side)")
    ax.set_ylabel("output megapixels per second")
    ax.set_title("Throughput against tile size (median, min-max)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return True


def _memory(rows: list[dict]) -> str:
    lines = ["## Peak memory", ""]
    if rows:
        method = rows[0]["method"]
        why = "" if method == "fose" else " (fose has no weights here, so the default method stands in)"
        lines += [f"Peak resident memory of one `{method}` run{why}, in a fresh process, on the Landsat-8 "
                  "scene upsampled to each size. It must stay flat as the raster grows.", ""]
    lines += ["| PAN size | megapixels | peak RSS MiB | seconds |", "|---|---|---|---|"]
    lines += ["| {0} x {0} | {1:.1f} | {2} | {3} |".format(
        r["size"], r["pixels"] / 1e6, f"{r['peak_rss_mib']:.0f}" if "peak_rss_mib" in r else r.get("note", ""),
        f"{r['seconds']:.1f}" if "seconds" in r else "") for r in rows]
    return "\n".join(lines)


def _qgis(rows: list[dict]) -> str:
    lines = ["## Overhead of the QGIS path", "",
             "The same job through `qgis_process.bin run diffusion_pansharpening:pansharpen`, through the "
             "`pansharpen sharpen` command, and through `sharpen()` in-process. Overhead is the median "
             "time over that of `pansharpen sharpen`.", "",
             "| scene | MP | method | way | median s | spread s | overhead s | note |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        base = next((r for r in rows if r["scene"] == row["scene"] and r["name"] == row["name"]
                     and r["tool"] == "pansharpen sharpen" and "timing" in r), None)
        over = ""
        if base and "timing" in row:
            over = f"{row['timing']['median'] - base['timing']['median']:+.2f}"
        lines.append(f"| {row['scene']} | {row['pixels'] / 1e6:.1f} | `{row['name']}` | {row['tool']} | "
                     f"{' | '.join(_seconds(row))} | "
                     f"{over} | {_note(row)} |")
    return "\n".join(lines)

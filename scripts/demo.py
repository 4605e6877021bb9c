"""`make demo`: sharpen the bundled Landsat-8 sample through the plugin's Processing
algorithm run by qgis_process.bin, and write a GeoTIFF plus PNG quicklooks.

It prints the method ``auto`` chose and why (the engine's own words, from the run's
log), the run time, and the full-resolution quality (QNR, HQNR: engine/scoring.py,
no reference needed) of the result next to the classical default's (mtf-glp-hpm) on
the same sample, and writes a side-by-side picture (MS, PAN, result at 1:1).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qgis_env import ROOT, qgis_process  # noqa: E402
from side_by_side import side_by_side  # noqa: E402

from diffusion_pansharpening.engine.families import BEST_CLASSICAL  # noqa: E402
from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen  # noqa: E402
from diffusion_pansharpening.engine.quicklook import quicklook, stretch_limits, rgb_bands  # noqa: E402
from diffusion_pansharpening.engine.raster_io import open_raster  # noqa: E402
from diffusion_pansharpening.engine.scoring import score_files  # noqa: E402

SAMPLE = ROOT / "resources" / "sample"
OUT = ROOT / "out" / "demo"
# the engine's log lines that are not about the choice of method
NOT_REASONS = re.compile(r"^(Wrote |Method: |\S+: \d+ x \d+ pixels, ratio )")
INDICES = ("QNR", "HQNR", "D_lambda", "D_s", "D_lambda_K")


def run_auto(pan: Path, ms: Path, output: Path) -> dict | None:
    """The Processing algorithm with METHOD=auto through qgis_process.bin; its JSON report."""
    result = qgis_process(
        ["run", "diffusion_pansharpening:pansharpen", "--json", "--",
         f"PAN={pan}", f"MS={ms}", "METHOD=auto", f"OUTPUT={output}"],
        home=ROOT / ".build" / "qgis-home",
    )
    report = None
    if result.returncode == 0:
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            pass
    if report is None:
        print(result.stdout)
        print(result.stderr, file=sys.stderr)
        print("The demo failed: see the messages above.", file=sys.stderr)
    return report


def quality_table(rows: list[tuple[str, float, dict[str, float]]]) -> str:
    head = f"  {'method':<14}" + "".join(f"{name:>11}" for name in INDICES) + f"{'time':>9}"
    lines = [head]
    for method, seconds, scores in rows:
        lines.append(f"  {method:<14}" + "".join(f"{scores[name]:>11.4f}" for name in INDICES)
                     + f"{seconds:>8.1f}s")
    return "\n".join(lines)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    pan, ms = SAMPLE / "pan.tif", SAMPLE / "ms.tif"
    output = OUT / "sample_sharpened.tif"
    report = run_auto(pan, ms, output)
    if report is None:
        return 1
    method = report["results"]["METHOD_USED"]
    seconds = float(report["results"]["SECONDS"])
    log = report.get("log", {}).get("info", [])
    reasons = [line for line in log if not NOT_REASONS.match(line)]
    print(f"Sample: {pan.relative_to(ROOT)} + {ms.relative_to(ROOT)} (Landsat-8, 15 m PAN, "
          "30 m blue/green/red/NIR; resources/sample/README.md)")
    print(f"Method: {method} (METHOD=auto)")
    print("Why: " + "\n     ".join(reasons or ["(the engine gave no reason)"]))
    size = open_raster(str(output), "result")
    print(f"Run time: {seconds:.1f} s for {size.RasterXSize} x {size.RasterYSize} PAN pixels "
          "(the engine's own time inside qgis_process)")
    size = None

    rows = [(method, seconds, score_files(str(output), pan=str(pan), ms=str(ms)))]
    classical = output
    if method != BEST_CLASSICAL:
        classical = OUT / f"sample_{BEST_CLASSICAL}.tif"
        done = sharpen(SharpenRequest(str(pan), str(ms), str(classical), method=BEST_CLASSICAL,
                                      overwrite=True))
        rows.append((BEST_CLASSICAL, done.seconds,
                     score_files(str(classical), pan=str(pan), ms=str(ms))))
    print("Full-resolution quality on the sample, no reference needed (engine/scoring.py, as "
          "`pansharpen score`):\nQNR and HQNR: higher is better, 1 is ideal; the distortions "
          "D_lambda, D_s, D_lambda_K: 0 is ideal.")
    print(quality_table(rows))
    if method == BEST_CLASSICAL:
        print(f"  (auto chose the classical default {BEST_CLASSICAL} itself)")

    ds = open_raster(str(output), "result")
    limits = stretch_limits(ds, rgb_bands(ds))
    sharp_png = quicklook(str(output), str(OUT / "sample_sharpened.png"), limits=limits)
    ms_png = quicklook(str(ms), str(OUT / "sample_ms.png"), limits=limits, max_size=1024)
    figure = side_by_side(output, OUT / "sample_side_by_side.png", method)
    print(f"Sharpened GeoTIFF: {output}")
    if classical != output:
        print(f"The classical default's GeoTIFF: {classical}")
    print(f"Quicklook (true colour): {sharp_png}")
    print(f"The MS before sharpening, same stretch: {ms_png}")
    print(f"MS, PAN and result side by side at 1:1 (the town): {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Smoke test of the benchmark suite on the bundled sample, with a real comparison.

``run_all.py --quick`` (throughput only, sample only, 1 repeat) must give a row with a
positive throughput for every classical method and every installed peer, and its
GDAL peer's output must be the same weighted Brovey as ours:

(Deep methods are left out here: with shipped weights they would take minutes.)

* GDAL's file is exactly (<= 1 DN) our ``brovey`` formula applied to the LMS GDAL
  uses: the whole MS raster read onto the PAN raster with cubic resampling;
* with weights 1/B the band mean of a weighted Brovey is the PAN itself, for GDAL's
  file and for ours (<= 0.5 DN), so the two agree there within 1 DN;
* band by band they differ only through the LMS: GDAL stretches the MS raster over
  the PAN raster, ignoring Landsat's half-PAN-pixel (7.5 m) offset between the grids,
  while the engine places it where its georeferencing says. Brovey on an LMS cubic-
  warped by georeferencing agrees with our file within a few DN (median); GDAL's file
  is further off, yet far closer to ours than another method (GIHS) is.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from diffusion_pansharpening.engine.classical import CLASSICAL, brovey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import run_all  # noqa: E402
from peers import PEERS  # noqa: E402

gdal.UseExceptions()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, sample_paths):
    folder = tmp_path_factory.mktemp("bench")
    out, keep = folder / "benchmarks.md", folder / "outputs"
    assert run_all.main(["--quick", "--scenes", "sample", "--sections", "throughput",
                         "--methods", ",".join(CLASSICAL), "--out", str(out), "--keep", str(keep)]) == 0
    import json

    return json.loads(out.with_suffix(".json").read_text()), out.read_text(), keep


def test_a_row_per_classical_method_and_installed_peer_with_positive_throughput(quick_run, sample_paths):
    results, markdown, _ = quick_run
    pan = gdal.Open(sample_paths[0])
    rows = {(r["tool"], r["name"]): r for r in results["throughput"]}
    installed = [p.name for p in PEERS if not p.missing()]
    assert "gdal_pansharpen.py" in installed  # gdal-bin is part of the install
    for key in [("ours", m) for m in CLASSICAL] + [("peer", p) for p in installed]:
        assert rows[key]["mp_per_s"]["median"] > 0, rows[key]
        assert rows[key]["pixels"] == pan.RasterXSize * pan.RasterYSize
    assert "CPU only" in markdown or "CUDA GPU" in markdown
    assert "| ours | `brovey` (classical) |" in markdown


def read(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray().astype(np.float64)


def test_gdal_peer_output_is_the_same_weighted_brovey_as_ours(quick_run, sample_paths):
    _, _, keep = quick_run
    pan_path, ms_path = sample_paths
    pan = read(pan_path)
    h, w = pan.shape
    by_gdal, ours = read(keep / "sample_gdal_pansharpen.py.tif"), read(keep / "sample_brovey.tif")
    assert by_gdal.shape == ours.shape == (4, h, w)
    ms_ds = gdal.Open(str(ms_path))

    # 1. GDAL's file is our formula on GDAL's own LMS, every pixel.
    gdal_lms = ms_ds.ReadAsArray(buf_xsize=w, buf_ysize=h, buf_type=gdal.GDT_UInt16,
                                 resample_alg=gdal.GRIORA_Cubic).astype(np.float64)
    assert np.abs(np.round(brovey(pan, gdal_lms)) - by_gdal).max() <= 1

    # 2. Band means are the PAN for both (weights 1/B), so they agree within 1 DN.
    assert np.abs(by_gdal.mean(axis=0) - pan).max() <= 0.5
    assert np.abs(ours.mean(axis=0) - pan).max() <= 0.5

    # 3. Band by band: our file is Brovey on the georeferenced LMS within a few DN ...
    gt = gdal.Open(str(pan_path)).GetGeoTransform()
    warped = gdal.Warp("/vsimem/bench_lms.tif", ms_ds, width=w, height=h, resampleAlg="cubic",
                       outputBounds=(gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3]))
    placed = np.round(brovey(pan, warped.ReadAsArray().astype(np.float64)))
    gdal.Unlink("/vsimem/bench_lms.tif")
    inner = (slice(None), slice(8, -8), slice(8, -8))  # away from the warp's edge handling
    assert np.median(np.abs(ours - placed)[inner]) <= 10
    # ... GDAL's is half a PAN pixel off, yet far closer to ours than GIHS is.
    relative = np.abs(by_gdal - ours) / by_gdal
    assert np.median(relative) < 0.01
    gihs = read(keep / "sample_gihs.tif")
    assert np.median(np.abs(gihs - ours) / ours) > 10 * np.median(relative)


def test_an_update_keeps_the_row_of_a_peer_not_installed_here(quick_run, tmp_path, monkeypatch):
    """``run_all --update`` on a machine without a peer keeps that peer's row measured
    elsewhere instead of replacing it with "not installed"."""
    import dataclasses
    import json

    results, _, _ = quick_run
    gdal_row = next(r for r in results["throughput"] if r["name"] == "gdal_pansharpen.py")
    index = next(i for i, p in enumerate(PEERS) if p.name.startswith("otb BundleToPerfectSensor"))
    absent = dataclasses.replace(PEERS[index], programs=("no-such-program-anywhere",))
    monkeypatch.setattr(run_all, "PEERS", [absent if i == index else p for i, p in enumerate(PEERS)])
    measured = {**gdal_row, "name": absent.name, "label": absent.label}
    out = tmp_path / "benchmarks.md"
    earlier = {**results, "throughput": [r for r in results["throughput"] if r["name"] != absent.name] + [measured]}
    out.with_suffix(".json").write_text(json.dumps(earlier))
    assert run_all.main(["--quick", "--scenes", "sample", "--sections", "throughput", "--methods", "brovey",
                         "--update", "--out", str(out)]) == 0
    rows = [r for r in json.loads(out.with_suffix(".json").read_text())["throughput"] if r["name"] == absent.name]
    assert rows == [measured]
    assert absent.label in out.read_text()


def test_the_report_says_whether_the_gpu_check_ran(quick_run, tmp_path):
    """docs/benchmarks.md says the GPU check has not run until its output is saved beside
    it, then shows that output."""
    import report

    results, text, _ = quick_run
    assert "## GPU check" in text and "has not run on a GPU yet" in text
    (tmp_path / report.GPU_CHECK).write_text("| method | float16 MP/s |\n|---|---:|\n| fose | 12.5 |\n")
    report.write(results, tmp_path / "benchmarks.md")
    written = (tmp_path / "benchmarks.md").read_text()
    assert "| fose | 12.5 |" in written and "has not run" not in written

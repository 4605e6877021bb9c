"""The `pansharpen` command as a user runs it (the installed console script)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from conftest import read_raster, shared_file

PANSHARPEN = str(Path(sys.executable).parent / "pansharpen")


def run(*args):
    return subprocess.run([PANSHARPEN, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_methods_lists_classical_and_deep():
    result = run("methods")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names[:4] == ["brovey", "gihs", "gsa", "mtf-glp-hpm"]
    assert {"fose", "ksdiff", "e2e", "dm1", "dm50"} <= set(names)


def test_sharpen_writes_and_reports(sample_paths, tmp_path):
    pan, ms = sample_paths
    out = tmp_path / "out.tif"
    result = run("sharpen", pan, ms, out, "--method", "gsa", "--tile", "256")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert "100.0%" in result.stderr  # the progress bar ran to the end
    assert read_raster(out).shape == (4, 306, 654)  # the sample's PAN grid


def test_sharpen_error_is_one_clear_line_and_exit_2(sample_paths, tmp_path):
    pan, _ = sample_paths
    result = run("sharpen", pan, tmp_path / "nope.tif", tmp_path / "out.tif")
    assert result.returncode == 2
    assert "error: The MS file" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.tif").exists()


def test_an_anchor_outside_zero_to_one_is_one_line_and_writes_nothing(sample_paths, tmp_path):
    pan, ms = sample_paths
    result = run("sharpen", pan, ms, tmp_path / "out.tif", "--method", "e2e", "--anchor", "2")
    assert result.returncode == 2
    assert "anchor must be between 0 and 1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.tif").exists()


def test_evaluate_reduced_on_ikonos_ranks_methods_and_writes_json(tmp_path):
    mat = shared_file("grip/imgIK.mat")
    out = tmp_path / "eval.json"
    result = run("evaluate", "--pan", mat, "--ms", mat, "--methods", "lms,brovey,gsa,mtf-glp-hpm",
                 "--protocol", "reduced", "--json", out, "--quiet")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["ratio"] == 4 and report["sensor"] == "IKONOS" and report["size"] == [320, 320]
    m = report["methods"]
    # every sharpening method adds real detail over the plain interpolated MS
    for name in ("brovey", "gsa", "mtf-glp-hpm"):
        assert m[name]["whole"]["Q2n"] > m["lms"]["whole"]["Q2n"] + 0.1
        assert m[name]["whole"]["ERGAS"] < m["lms"]["whole"]["ERGAS"]
        assert m[name]["tiles_mean"]["SCC"] > m["lms"]["tiles_mean"]["SCC"]
    # Brovey keeps the spectral angle of the interpolated MS (it scales each pixel's spectrum)
    assert m["brovey"]["whole"]["SAM"] == pytest.approx(m["lms"]["whole"]["SAM"], abs=0.05)
    assert "gsa" in result.stdout and "Q2n" in result.stdout


def test_evaluate_full_resolution_on_geotiffs(sample_paths, tmp_path):
    pan, ms = sample_paths
    out = tmp_path / "full.json"
    result = run("evaluate", "--pan", pan, "--ms", ms, "--methods", "lms,gsa", "--protocol", "full",
                 "--json", out, "--quiet")
    assert result.returncode == 0, result.stderr
    m = json.loads(out.read_text())["methods"]
    for name in ("lms", "gsa"):
        for key in ("D_lambda", "D_s", "QNR", "HQNR"):
            assert 0.0 <= m[name]["whole"][key] <= 1.0


@pytest.mark.slow  # a few seconds: out of make test-fast
def test_score_against_reference_and_at_full_resolution(sample_paths, tmp_path):
    pan, ms = sample_paths
    fused = tmp_path / "fused.tif"
    assert run("sharpen", pan, ms, fused, "--method", "mtf-glp-hpm", "--quiet").returncode == 0
    # a reference equal to the image scores ideally
    ideal = run("score", fused, "--reference", fused, "--json", tmp_path / "s.json")
    assert ideal.returncode == 0, ideal.stderr
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["SAM"] == pytest.approx(0, abs=1e-6) and scores["Q2n"] == pytest.approx(1, abs=1e-6)
    # a perturbed copy scores worse
    noisy = tmp_path / "noisy.tif"
    ds = gdal.Translate(str(noisy), str(fused))
    data = read_raster(fused).astype(float)
    rng = np.random.default_rng(0)
    for b in range(4):
        ds.GetRasterBand(b + 1).WriteArray((data[b] * rng.uniform(0.9, 1.1, data[b].shape)).astype(np.uint16))
    ds = None
    worse = run("score", noisy, "--reference", fused, "--json", tmp_path / "w.json")
    assert json.loads((tmp_path / "w.json").read_text())["Q2n"] < 0.99
    full = run("score", fused, "--pan", pan, "--ms", ms, "--json", tmp_path / "f.json")
    assert full.returncode == 0, full.stderr
    f = json.loads((tmp_path / "f.json").read_text())
    assert set(f) >= {"D_lambda", "D_s", "QNR", "HQNR"}
    assert f["QNR"] == pytest.approx((1 - f["D_lambda"]) * (1 - f["D_s"]), abs=1e-6)


def test_score_refuses_a_raster_off_the_pan_grid(sample_paths, tmp_path):
    pan, ms = sample_paths
    result = run("score", ms, "--pan", pan, "--ms", ms)
    assert result.returncode == 2 and "not on the PAN grid" in result.stderr

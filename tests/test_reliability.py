"""Issue 11: nothing lost, nothing run, nothing hidden. Real GeoTIFFs (tiny, or the
bundled sample), the real engine and the real ``pansharpen`` command; each test fails
on the code before the fix."""
import gc
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal, osr

from conftest import read_raster, write_geotiff
from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen
from diffusion_pansharpening.engine.raster_io import RasterPair
from diffusion_pansharpening.engine.writer import GeoTiffWriter

gdal.UseExceptions()
PANSHARPEN = str(Path(sys.executable).parent / "pansharpen")


@pytest.fixture(autouse=True)
def _release_gdal_objects():
    """Free the datasets a refused pair held (they sit in exception tracebacks) while GDAL
    is still up: collected at interpreter exit, GDAL objects can crash the process."""
    yield
    gc.collect()


def _sharpen(pan, ms, out, **kw):
    return sharpen(SharpenRequest(pan=str(pan), ms=str(ms), output=str(out), **kw))


def one_line(error) -> str:
    message = str(error.value if hasattr(error, "value") else error)
    assert "\n" not in message.strip() and "Traceback" not in message, message
    return message


def tiny_pair(folder, size=64, ratio=4, bands=4, dtype=gdal.GDT_UInt16, seed=0, ms_values=None):
    """PAN (size x size, 1 m) and MS (bands, size/ratio) on the engine's aligned grid."""
    rng = np.random.default_rng(seed)
    ms = ms_values if ms_values is not None else rng.uniform(200, 1500, (bands, size // ratio, size // ratio))
    pan = np.repeat(np.repeat(ms.mean(0), ratio, 0), ratio, 1) + rng.uniform(-50, 50, (size, size))
    np_type = np.float32 if dtype == gdal.GDT_Float32 else np.uint16
    pan_path = write_geotiff(Path(folder) / "pan.tif", pan.astype(np_type), 1, dtype)
    ms_path = write_geotiff(Path(folder) / "ms.tif", ms.astype(np_type), ratio, dtype)
    return pan_path, ms_path


def corner_aligned(path):
    """Move an MS onto a corner-aligned grid (VHR products): the engine must resample it."""
    ds = gdal.Open(str(path), gdal.GA_Update)
    gt = list(ds.GetGeoTransform())
    gt[0], gt[3] = 500000.0, 4000000.0
    ds.SetGeoTransform(gt)
    ds = None


def listing(folder):
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------- 1. output == input
@pytest.mark.parametrize("how", ["same", "dot", "symlink", "hardlink", "vrt"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, how):
    pan, ms = tiny_pair(tmp_path)
    before = Path(ms).read_bytes()
    ms_input, out = ms, ms
    if how == "dot":
        out = os.path.join(os.path.relpath(tmp_path), ".", "ms.tif")
    elif how == "symlink":
        out = str(tmp_path / "link.tif")
        os.symlink(ms, out)
    elif how == "hardlink":
        out = str(tmp_path / "hard.tif")
        os.link(ms, out)
    elif how == "vrt":
        ms_input = str(tmp_path / "ms.vrt")
        gdal.BuildVRT(ms_input, [ms]).FlushCache()
    with pytest.raises(PansharpenError, match="is the MS input") as error:
        _sharpen(pan, ms_input, out, method="brovey", overwrite=True)
    assert "choose another output" in one_line(error)
    assert Path(ms).read_bytes() == before


def test_the_command_refuses_to_overwrite_its_pan(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    before = Path(pan).read_bytes()
    done = subprocess.run([PANSHARPEN, "sharpen", pan, ms, pan, "--method", "gsa", "--overwrite", "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "is the PAN input" in done.stderr and "Traceback" not in done.stderr
    assert Path(pan).read_bytes() == before


# ---------------------------------------------------------------- 4. holes, colours
def test_a_resampled_ms_keeps_dark_pixels_valid(tmp_path):
    """A corner-aligned MS (read through a warp) with dark areas: the output declares no
    nodata value its data can take; only pixels outside the MS footprint are masked."""
    rng = np.random.default_rng(1)
    ms = rng.uniform(0, 40, (4, 32, 32))  # dark: many sharpened pixels clip to 0
    pan, ms_path = tiny_pair(tmp_path, size=128, ms_values=ms)
    corner_aligned(ms_path)
    result = _sharpen(pan, ms_path, tmp_path / "out.tif", method="gsa")
    assert result.info.resampled
    ds = gdal.Open(result.output)
    data = read_raster(result.output)
    assert (data == 0).sum() > 100  # the case of the issue: valid pixels at 0
    for b in range(ds.RasterCount):
        nodata = ds.GetRasterBand(b + 1).GetNoDataValue()
        assert nodata is None, f"band {b + 1} declares nodata {nodata}"
    band = ds.GetRasterBand(1)
    if band.GetMaskFlags() & gdal.GMF_PER_DATASET:
        mask = band.GetMaskBand().ReadAsArray()
        masked = mask == 0
        # the MS footprint reaches 2 PAN pixels short of the PAN's right and bottom edges
        assert not masked[:-4, :-4].any() and masked.mean() < 0.07
    assert listing(tmp_path) == ["ms.tif", "out.tif", "pan.tif"]


def test_a_declared_nodata_value_is_never_taken_by_a_valid_pixel(tmp_path):
    rng = np.random.default_rng(2)
    ms = rng.uniform(1, 30, (4, 16, 16))
    ms[:, :4, :4] = 0  # nodata corner
    pan, ms_path = tiny_pair(tmp_path, ms_values=ms)
    ds = gdal.Open(ms_path, gdal.GA_Update)
    for b in range(4):
        ds.GetRasterBand(b + 1).SetNoDataValue(0)
    ds = None
    out = _sharpen(pan, ms_path, tmp_path / "out.tif", method="brovey").output
    data = read_raster(out)
    assert gdal.Open(out).GetRasterBand(1).GetNoDataValue() == 0
    nodata = (data == 0).any(axis=0)
    assert nodata[:16, :16].all()
    assert not nodata[20:, 20:].any(), "valid dark pixels were written as nodata"


def in_fill(path, out, pad, nodata=None):
    """``path`` set in zero fill, as a scene's footprint in its product: ``pad`` pixels
    around it and its top-left corner cut diagonally; the grid keeps its alignment."""
    ds = gdal.Open(path)
    data = ds.ReadAsArray().reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)
    filled = np.zeros((data.shape[0], data.shape[1] + 2 * pad, data.shape[2] + 2 * pad), data.dtype)
    filled[:, pad:-pad, pad:-pad] = data
    rows, cols = np.mgrid[:filled.shape[1], :filled.shape[2]]
    filled[:, rows / filled.shape[1] + cols / filled.shape[2] < 0.7] = 0
    gt = list(ds.GetGeoTransform())
    gt[0], gt[3] = gt[0] - pad * gt[1], gt[3] - pad * gt[5]
    target = gdal.GetDriverByName("GTiff").Create(str(out), filled.shape[2], filled.shape[1], filled.shape[0],
                                                  ds.GetRasterBand(1).DataType)
    target.SetGeoTransform(gt)
    target.SetProjection(ds.GetProjection())
    for b, band in enumerate(filled):
        target.GetRasterBand(b + 1).WriteArray(band)
        if nodata is not None:
            target.GetRasterBand(b + 1).SetNoDataValue(nodata)
    target = None  # written and closed
    return str(out)


def test_zero_fill_around_a_scene_without_nodata_is_nodata(sample_paths, tmp_path):
    """A product whose footprint sits in zeros but declares no nodata value: the zeros are
    taken as nodata (and said so), so the run equals the one with nodata 0 declared, and
    the check finds a sample inside the footprint, though it is narrower than the sample."""
    from diffusion_pansharpening.engine import guard
    from diffusion_pansharpening.engine.families import DEFAULT_WEIGHTS_DIR

    pan, ms = sample_paths
    plain = in_fill(pan, tmp_path / "pan.tif", 60), in_fill(ms, tmp_path / "ms.tif", 30)
    declared = in_fill(pan, tmp_path / "pan0.tif", 60, 0), in_fill(ms, tmp_path / "ms0.tif", 30, 0)
    pair = RasterPair(*plain)
    assert pair.fill == 0.0 and RasterPair(*declared).fill is None
    assert any("0 in every band" in w and "nodata" in w for w in pair.info().warnings)
    outputs = [read_raster(_sharpen(*p, tmp_path / f"out{i}.tif", method="mtf-glp-hpm").output)
               for i, p in enumerate((plain, declared))]
    footprint = (read_raster(plain[0])[0] > 0)[: outputs[0].shape[1], : outputs[0].shape[2]]
    written = gdal.Open(str(tmp_path / "out0.tif"))
    mask = written.GetRasterBand(1).GetMaskBand().ReadAsArray() > 0
    assert 0.3 < footprint.mean() < 0.5 and (mask == footprint).mean() > 0.99
    assert np.abs(outputs[0].astype(float) - outputs[1])[:, footprint].max() <= 1
    verdict = guard.check(pair, "fose", str(DEFAULT_WEIGHTS_DIR / "landsat8-fose.safetensors"), device="cpu")
    assert not verdict.undecided and verdict.method == "fose" and max(verdict.size) < guard.SAMPLE


def test_a_band_at_zero_along_an_edge_is_not_fill(tmp_path):
    """A stretched product's dark pixels are 0 in a band, not in all of them: no fill."""
    from diffusion_pansharpening.engine.raster_io import edge_fill

    ms = np.random.default_rng(3).uniform(1, 200, (4, 64, 64))
    ms[0, :, :20] = 0
    pan, ms_path = tiny_pair(tmp_path, size=256, ms_values=ms)
    assert edge_fill(gdal.Open(ms_path), 4) == 0.0 and RasterPair(pan, ms_path).fill is None
    ms[1:, :, :20] = 0
    assert edge_fill(gdal.Open(write_geotiff(tmp_path / "f.tif", ms, 4)), 4) == pytest.approx(20 / 64, abs=0.02)


def with_alpha(path, out, transparent_cols):
    """``path`` with an alpha band after its bands (``gdalwarp -dstalpha``, as an RGBA
    export has), 0 in the first ``transparent_cols`` columns."""
    target = gdal.Warp(str(out), path, dstAlpha=True)
    alpha = target.GetRasterBand(target.RasterCount)
    values = alpha.ReadAsArray()
    values[:, :transparent_cols] = 0
    alpha.WriteArray(values)
    target = None
    return str(out)


def test_an_alpha_band_is_a_mask_not_a_band(tmp_path):
    """RGBA exports: the alpha band of the MS (and of a PAN) is the validity mask; the
    output has the data bands only, masked where the alpha is 0."""
    pan, ms = tiny_pair(tmp_path, size=128)
    pan_a, ms_a = with_alpha(pan, tmp_path / "pan_a.tif", 0), with_alpha(ms, tmp_path / "ms_a.tif", 8)
    pair = RasterPair(pan_a, ms_a)
    assert (pair.bands, pair.pan_band_index, pair.ms_alpha) == (4, 1, 5)
    out = _sharpen(pan_a, ms_a, tmp_path / "out.tif", method="gsa").output
    written = gdal.Open(out)
    assert written.RasterCount == 4
    mask = written.GetRasterBand(1).GetMaskBand().ReadAsArray()
    assert (mask[:, :28] == 0).all() and (mask[:, 36:] > 0).all()


def test_a_nir_band_a_byte_rgb_tiff_calls_alpha_stays_a_band(tmp_path):
    """A 4-band Byte GeoTIFF written as RGB has its 4th band (NIR) read as alpha; its values
    are not a mask, so it stays a band, also when the MS must be resampled (warped): dark
    water, NIR 0, keeps its red, green and blue."""
    ms = np.random.default_rng(4).uniform(50, 250, (4, 32, 32))
    ms[3, :, :8] = 0  # water
    pan, ms = tiny_pair(tmp_path, size=128, dtype=gdal.GDT_Byte, ms_values=ms)
    tagged = str(tmp_path / "rgbn.tif")
    gdal.Translate(tagged, ms, creationOptions=["PHOTOMETRIC=RGB", "ALPHA=YES"])
    corner_aligned(tagged)
    check = gdal.Open(tagged)
    assert check.GetRasterBand(4).GetColorInterpretation() == gdal.GCI_AlphaBand
    pair = RasterPair(pan, tagged)
    assert pair.bands == 4 and pair.info().resampled
    out = read_raster(_sharpen(pan, tagged, tmp_path / "out.tif", method="gsa").output)
    assert out.shape[0] == 4 and out[3, :, 40:].mean() > 100
    assert out[:3, 8:-8, 4:24].mean() > 100  # under the water: not made transparent by the warp


def test_colour_interpretation_is_red_green_blue_or_undefined(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    ds = gdal.Open(ms, gdal.GA_Update)
    for b, name in enumerate(["Blue", "green", "RED", "nir"]):
        ds.GetRasterBand(b + 1).SetDescription(name)
    ds.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None
    assert gdal.Open(ms).GetRasterBand(4).GetColorInterpretation() == gdal.GCI_AlphaBand
    out = gdal.Open(_sharpen(pan, ms, tmp_path / "out.tif", method="brovey").output)
    names = [gdal.GetColorInterpretationName(out.GetRasterBand(b + 1).GetColorInterpretation())
             for b in range(4)]
    assert names == ["Blue", "Green", "Red", "Undefined"]


# ---------------------------------------------------------------- 5. NaN / Inf
def test_nan_and_inf_in_a_float_input_are_nodata(tmp_path):
    rng = np.random.default_rng(3)
    ms = rng.uniform(0.1, 0.5, (4, 16, 16)).astype(np.float32)
    ms[:, 2:6, 2:6] = np.nan
    ms[1, 10:12, 10:12] = np.inf
    pan, ms_path = tiny_pair(tmp_path, dtype=gdal.GDT_Float32, ms_values=ms)
    out = gdal.Open(_sharpen(pan, ms_path, tmp_path / "out.tif", method="brovey").output)
    data = out.ReadAsArray()
    band = out.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    if band.GetMaskFlags() & gdal.GMF_PER_DATASET:
        invalid = band.GetMaskBand().ReadAsArray() == 0
    else:
        assert nodata is not None, "the NaN pixels are written without any nodata"
        invalid = np.isnan(data[0]) if np.isnan(nodata) else data[0] == nodata
    assert invalid[8:24, 8:24].all() and invalid[40:48, 40:48].all()
    assert invalid.mean() < 0.12


# ---------------------------------------------------------------- 6. scratch files
def _scratch(folder):
    return [n for n in os.listdir(folder) if ".partial-" in n or ".packing-" in n]


def _start(pan, ms, out, *extra):
    return subprocess.Popen([PANSHARPEN, "sharpen", pan, ms, out, "--method", "mtf-glp-hpm", "--tile", "64",
                             "--overlap", "24", "--quiet", "--overwrite", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_scratch(process, folder, before=(), timeout=60):
    """Wait until ``process`` has created its scratch file (one not in ``before``)."""
    end = time.time() + timeout
    while time.time() < end and process.poll() is None:
        if set(_scratch(folder)) - set(before):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow  # a few seconds: out of make test-fast
def test_sigterm_removes_the_scratch_file_and_a_rerun_removes_a_killed_runs(sample_paths, tmp_path):
    pan, ms = sample_paths
    out = str(tmp_path / "out.tif")
    run = _start(pan, ms, out)
    assert _wait_for_scratch(run, tmp_path), run.communicate()
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143 and "Terminated" in err and "Traceback" not in err, err
    assert listing(tmp_path) == []
    # a SIGKILLed run leaves its scratch file; the next run into the folder removes it
    run = _start(pan, ms, out)
    assert _wait_for_scratch(run, tmp_path, _scratch(tmp_path))
    run.kill()
    run.wait()
    assert _scratch(tmp_path)
    done = subprocess.run([PANSHARPEN, "sharpen", pan, ms, out, "--method", "brovey", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert listing(tmp_path) == ["out.tif"]


def test_a_live_runs_scratch_file_is_left_alone(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    alive = tmp_path / f".other.tif.partial-{os.getpid()}-0123abcd.tif"
    alive.write_bytes(b"in progress")
    _sharpen(pan, ms, tmp_path / "out.tif", method="brovey")
    assert alive.exists()


@pytest.mark.slow  # a few seconds: out of make test-fast
def test_fault_sigterm_and_sigkill_at_random_points_keep_the_previous_output(sample_paths, tmp_path):
    """Kill a run over an existing output at random points: the previous output is intact
    afterwards, SIGTERM leaves no scratch file, and a rerun succeeds and cleans up."""
    pan, ms = sample_paths
    out = tmp_path / "out.tif"
    _sharpen(pan, ms, out, method="brovey")
    previous = out.read_bytes()
    rng = random.Random(11)
    interrupted = 0
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL):
        left = _scratch(tmp_path)
        run = _start(pan, ms, str(out))
        started = _wait_for_scratch(run, tmp_path, left)
        time.sleep(rng.uniform(0.0, 0.3))
        run.send_signal(sig)
        run.communicate(timeout=60)
        if run.returncode == 0:  # finished before the signal: a complete new output
            assert gdal.Open(str(out)).RasterCount == 4
            previous = out.read_bytes()
            continue
        interrupted += 1
        assert started and out.read_bytes() == previous
        if sig == signal.SIGTERM:
            assert run.returncode == 143 and not _scratch(tmp_path)
    assert interrupted >= 2
    done = subprocess.run([PANSHARPEN, "sharpen", pan, ms, str(out), "--method", "brovey", "--overwrite",
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert listing(tmp_path) == ["out.tif"]


# ---------------------------------------------------------------- 7. --weights with auto
def _tiny_weights(path, arch="e2e"):
    from diffusion_pansharpening.engine.models import build, build_metadata, save_weights

    torch.manual_seed(0)
    model = build(arch, "tiny", bands=4)
    meta = build_metadata(arch, model.config, sensor="IKONOS", bands=["blue", "green", "red", "nir"],
                          ratio=4, scale=2047, training_data="test", licence="CC0", quality={})
    save_weights(str(path), model, meta)
    return str(path)


def test_auto_with_weights_runs_the_given_file(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    weights = _tiny_weights(tmp_path / "mine.safetensors")
    messages = []
    result = sharpen(SharpenRequest(pan=pan, ms=ms, output=str(tmp_path / "out.tif"), method="auto",
                                    weights=weights, device="cpu"), log=messages.append)
    assert result.method == "e2e"
    assert any("mine.safetensors" in m for m in messages)


def test_auto_with_a_pickle_is_refused(tmp_path):
    import pickle

    pan, ms = tiny_pair(tmp_path)
    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"state": [1, 2, 3]}))
    with pytest.raises(PansharpenError, match="never loaded") as error:
        _sharpen(pan, ms, tmp_path / "out.tif", method="auto", weights=str(bad))
    one_line(error)
    assert not (tmp_path / "out.tif").exists()


# ---------------------------------------------------------------- 8. write-time and I/O
def huge_vrt_pair(folder, width, height, ratio=4):
    """A PAN/MS pair of VRTs with no sources: any size, no disk, zeros when read."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    paths = []
    for name, scale, bands in (("pan", 1, 1), ("ms", ratio, 4)):
        path = str(Path(folder) / f"{name}.vrt")
        ds = gdal.GetDriverByName("VRT").Create(path, width // scale, height // scale, bands, gdal.GDT_UInt16)
        shift = 0.5 if scale > 1 else 0.0
        ds.SetGeoTransform((500000.0 + shift, scale, 0, 4000000.0 - shift, 0, -scale))
        ds.SetProjection(srs.ExportToWkt())
        ds = None
        paths.append(path)
    return paths


def test_no_room_on_the_disk_is_said_before_starting(tmp_path):
    pan, ms = huge_vrt_pair(tmp_path, 1024, 60_000_000)
    with pytest.raises(PansharpenError, match="of disk while it is written") as error:
        _sharpen(pan, ms, tmp_path / "out.tif", method="brovey", tile=256, overlap=16)
    one_line(error)
    assert listing(tmp_path) == ["ms.vrt", "pan.vrt"]


def test_a_tile_that_cannot_fit_in_memory_is_refused(tmp_path):
    pan, ms = huge_vrt_pair(tmp_path, 64_000, 64_000)
    with pytest.raises(PansharpenError, match="Tiles of 60000 pixels need about .* GB of memory") as error:
        _sharpen(pan, ms, tmp_path / "out.tif", method="brovey", tile=60_000)
    one_line(error)
    assert listing(tmp_path) == ["ms.vrt", "pan.vrt"]


def test_an_output_path_that_is_a_folder_is_one_line(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    (tmp_path / "out.tif").mkdir()
    with pytest.raises(PansharpenError, match="is a folder") as error:
        _sharpen(pan, ms, tmp_path / "out.tif", method="brovey", overwrite=True)
    one_line(error)


def test_a_write_error_is_one_line_and_leaves_nothing(sample_paths, tmp_path):
    """A file-size limit stands in for a full disk: GDAL's writes fail part way."""
    pan, ms = sample_paths

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    done = subprocess.run([PANSHARPEN, "sharpen", pan, ms, str(tmp_path / "out.tif"), "--method", "brovey",
                           "--quiet"], capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert done.returncode == 2, done.stderr
    assert "error: Writing" in done.stderr and "free space" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert listing(tmp_path) == []


def test_score_json_into_a_missing_folder_is_one_line(sample_paths, tmp_path):
    _, ms = sample_paths
    done = subprocess.run([PANSHARPEN, "score", ms, "--reference", ms, "--json", str(tmp_path / "no" / "s.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_json_that_cannot_be_written_is_one_line(tmp_path, capsys):
    from diffusion_pansharpening.engine.cli import _write_json

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(PansharpenError, match="Cannot write the JSON file") as error:
        _write_json(str(blocker / "s.json"), {"a": 1})
    one_line(error)


def test_evaluate_on_a_mat_whose_ms_is_2d_is_one_line(tmp_path, capsys):
    from scipy.io import savemat

    from diffusion_pansharpening.engine.cli import main

    mat = tmp_path / "flat.mat"
    savemat(mat, {"I_PAN": np.ones((64, 64)), "I_MS": np.ones((16, 16))})
    code = main(["evaluate", "--pan", str(mat), "--ms", str(mat), "--methods", "brovey", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "I_MS 3-D" in err and "Traceback" not in err


# ---------------------------------------------------------------- 9. concurrent runs
def test_an_output_that_appears_during_the_run_is_not_replaced(tmp_path):
    out = tmp_path / "out.tif"
    writer = GeoTiffWriter(str(out), width=64, height=64, bands=1, geotransform=(0, 1, 0, 0, 0, -1),
                           crs_wkt="", data_type="UInt16", nodata=None, band_names=["a"])
    writer.write(0, 0, np.full((1, 64, 64), 7.0))
    out.write_bytes(b"the other run's result")  # another run finished first
    with pytest.raises(PansharpenError, match="appeared while this run was writing it") as error:
        writer.commit()
    one_line(error)
    assert out.read_bytes() == b"the other run's result"
    assert listing(tmp_path) == ["out.tif"]


# ---------------------------------------------------------------- 10. messages
def test_a_small_overlap_is_not_called_no_overlap(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    ds = gdal.Open(ms, gdal.GA_Update)
    gt = list(ds.GetGeoTransform())
    gt[0] += 64 - 6  # the MS starts 6 PAN pixels before the PAN's right edge
    ds.SetGeoTransform(gt)
    ds = None
    with pytest.raises(PansharpenError, match="overlap on only 6 x 64 PAN pixels") as error:
        RasterPair(pan, ms)
    assert "do not overlap" not in one_line(error)


def test_swapped_pan_and_ms_are_called_swapped(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    with pytest.raises(PansharpenError, match="look swapped") as error:
        RasterPair(ms, pan)
    one_line(error)


def test_an_overlap_of_99_8_percent_is_not_called_100(tmp_path):
    rng = np.random.default_rng(4)
    pan = write_geotiff(tmp_path / "pan.tif", rng.uniform(100, 900, (1000, 1000)).astype(np.uint16), 1)
    ms = write_geotiff(tmp_path / "ms.tif", rng.uniform(100, 900, (4, 499, 499)).astype(np.uint16), 2)
    info = RasterPair(pan, ms).info()
    assert info.overlap_fraction == pytest.approx(0.998, abs=0.0002)  # 999 x 999 of 1000 x 1000
    text = info.summary() + " ".join(info.warnings)
    assert "99.8%" in text and "100%" not in text


def test_an_all_nodata_input_is_refused(tmp_path):
    pan, ms = tiny_pair(tmp_path, ms_values=np.zeros((4, 16, 16)))
    ds = gdal.Open(ms, gdal.GA_Update)
    for b in range(4):
        ds.GetRasterBand(b + 1).SetNoDataValue(0)
    ds = None
    with pytest.raises(PansharpenError, match="Every pixel of the overlap is nodata") as error:
        _sharpen(pan, ms, tmp_path / "out.tif", method="brovey")
    one_line(error)
    assert listing(tmp_path) == ["ms.tif", "pan.tif"]


def test_a_png_without_georeferencing_is_told_so(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    png = str(tmp_path / "pan.png")
    mem = gdal.GetDriverByName("MEM").Create("", 64, 64, 1, gdal.GDT_Byte)
    gdal.GetDriverByName("PNG").CreateCopy(png, mem)
    with pytest.raises(PansharpenError, match="no georeferencing") as error:
        RasterPair(png, ms)
    one_line(error)


def test_a_weights_folder_is_called_a_folder(tmp_path):
    pan, ms = tiny_pair(tmp_path)
    with pytest.raises(PansharpenError, match="is a folder") as error:
        _sharpen(pan, ms, tmp_path / "out.tif", method="e2e", weights=str(tmp_path))
    assert "does not exist" not in one_line(error)

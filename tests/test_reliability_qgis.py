"""Issue 11 through ``qgis_process.bin`` (the algorithm always passes overwrite): an
output that is an input is refused, an output folder is one message, and a resampled
MS gives no holes. Real QGIS in a subprocess with its own profile."""
from pathlib import Path

import numpy as np
from osgeo import gdal

from test_plugin_processing import qgis_process, qgis_process_env  # noqa: F401 (fixture)
from test_reliability import corner_aligned, tiny_pair


def test_qgis_process_refuses_to_write_over_its_pan(qgis_process_env, tmp_path):  # noqa: F811
    pan, ms = tiny_pair(tmp_path)
    before = Path(pan).read_bytes()
    done = qgis_process(qgis_process_env, "pansharpen", PAN=pan, MS=ms, METHOD="brovey", OUTPUT=pan)
    assert done.returncode == 1
    assert "is the PAN input" in done.stdout + done.stderr
    assert Path(pan).read_bytes() == before


def test_qgis_process_output_folder_and_resampled_ms(qgis_process_env, tmp_path):  # noqa: F811
    rng = np.random.default_rng(1)
    pan, ms = tiny_pair(tmp_path, size=128, ms_values=rng.uniform(0, 40, (4, 32, 32)))
    corner_aligned(ms)
    folder = tmp_path / "folder.tif"
    folder.mkdir()
    done = qgis_process(qgis_process_env, "pansharpen", PAN=pan, MS=ms, METHOD="gsa", OUTPUT=folder)
    assert done.returncode == 1 and "is a folder" in done.stdout + done.stderr
    out = tmp_path / "out.tif"
    done = qgis_process(qgis_process_env, "pansharpen", PAN=pan, MS=ms, METHOD="gsa", OUTPUT=out)
    assert done.returncode == 0, done.stdout + done.stderr
    ds = gdal.Open(str(out))
    assert all(ds.GetRasterBand(b + 1).GetNoDataValue() is None for b in range(ds.RasterCount))
    assert (ds.ReadAsArray() == 0).sum() > 100  # dark valid pixels, not holes


def test_the_dialog_does_not_round_99_8_percent_up_to_100(qgis_app, tmp_path):
    from conftest import write_geotiff
    from diffusion_pansharpening.engine.raster_io import RasterPair
    from diffusion_pansharpening.plugin.ui.controls import pair_html

    rng = np.random.default_rng(4)
    pan = write_geotiff(tmp_path / "pan.tif", rng.uniform(100, 900, (1000, 1000)).astype(np.uint16), 1)
    ms = write_geotiff(tmp_path / "ms.tif", rng.uniform(100, 900, (4, 499, 499)).astype(np.uint16), 2)
    text = pair_html(RasterPair(pan, ms).info())
    assert "Overlap: 99.8% of the PAN" in text and "100%" not in text

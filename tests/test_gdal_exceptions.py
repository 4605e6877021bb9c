"""The engine switches GDAL's exceptions on for its own calls only (engine.gdal_errors):
importing it and sharpening leave ``gdal.GetUseExceptions()`` as the caller had it,
because in QGIS that flag belongs to the whole process.

Each case runs in a fresh interpreter: the flag is process-wide, and other test modules
switch it on at import."""
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

SCRIPT = textwrap.dedent("""
    import sys
    from osgeo import gdal

    wanted = sys.argv[1] == "on"
    gdal.UseExceptions() if wanted else gdal.DontUseExceptions()
    from diffusion_pansharpening.engine import evaluate, pipeline, quicklook, raster_io, scoring  # noqa: F401
    assert bool(gdal.GetUseExceptions()) == wanted, "changed by importing the engine"
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, inspect_pair, sharpen
    pan, ms, out = sys.argv[2:5]
    inspect_pair(pan, ms)
    assert bool(gdal.GetUseExceptions()) == wanted, "changed by inspect_pair"
    sharpen(SharpenRequest(pan, ms, out, method="brovey"))
    assert bool(gdal.GetUseExceptions()) == wanted, "changed by sharpen"
    scoring.score_files(out, pan=pan, ms=ms)
    assert bool(gdal.GetUseExceptions()) == wanted, "changed by score_files"
    try:
        raster_io.open_raster(pan + ".aux.xml", "PAN")  # an XML side-car: not a raster
    except Exception as exc:
        assert type(exc).__name__ == "PansharpenError", exc  # GDAL's error came as an exception
    assert bool(gdal.GetUseExceptions()) == wanted, "changed by a failed open"
    print("ok")
""")


@pytest.mark.parametrize("state", ["on", "off"])
def test_the_engine_leaves_gdal_exceptions_as_the_caller_had_them(state, sample_paths, tmp_path):
    pan, ms = sample_paths
    done = subprocess.run([sys.executable, "-c", SCRIPT, state, pan, ms, str(tmp_path / "out.tif")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_scopes_nest_and_restore():
    from osgeo import gdal

    from diffusion_pansharpening.engine.gdal_errors import gdal_exceptions

    before = gdal.GetUseExceptions()
    try:
        gdal.DontUseExceptions()
        with gdal_exceptions():
            assert gdal.GetUseExceptions()
            with gdal_exceptions():
                with gdal_exceptions(False):
                    assert not gdal.GetUseExceptions()
                assert gdal.GetUseExceptions()
            assert gdal.GetUseExceptions()
        assert not gdal.GetUseExceptions()
        with pytest.raises(RuntimeError), gdal_exceptions():
            gdal.Open("/no/such/raster.tif")
        assert not gdal.GetUseExceptions()
    finally:
        gdal.UseExceptions() if before else gdal.DontUseExceptions()

"""The classical anchor of the deep methods (engine/anchor.py) on real imagery."""
import numpy as np
import pytest
from conftest import read_raster

from diffusion_pansharpening.engine import anchor
from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.evaluate import Pair, load_pair, sharpen_arrays
from diffusion_pansharpening.engine.families import DEFAULT_WEIGHTS_DIR
from diffusion_pansharpening.engine.methods import prepare

E2E = str(DEFAULT_WEIGHTS_DIR / "landsat8-e2e.safetensors")


@pytest.fixture(scope="module")
def landsat(sample_paths):
    return load_pair(*sample_paths)


@pytest.mark.parametrize("sensor", [None, "LANDSAT8"])
@pytest.mark.parametrize("tile", [None, 160])
def test_the_default_output_is_the_network_and_the_classical_method_half_and_half(landsat, tile, sensor):
    """The shipped model's tiles come normalised by the scene's statistics (an offset
    and a span); the anchor undoes the offset for MTF-GLP-HPM, which is not offset-
    equivariant, keeps it at or above half of Brovey's values, projects it onto the MS, so the
    output equals the two outputs made apart over the whole image, mixed and projected,
    away from its borders. In several tiles it does up to MTF-GLP-HPM's tile-local
    statistics (a few pixels at the seams), with the classical half on its own context
    in each tile: on the projection's wider one its statistics change everywhere. The
    classical half is the haze-corrected one where the sensor is known, MTF-GLP-HPM where
    it is not (the bundled sample's files do not name it)."""
    from diffusion_pansharpening.engine import consistency

    assert landsat.sensor is None
    pair = Pair(landsat.pan[:256, :256], landsat.ms[:, :128, :128], 2, landsat.scale, sensor)
    assert anchor.anchor_method(sensor) == ("mtf-glp-hpm-h" if sensor else "mtf-glp-hpm")
    net = sharpen_arrays(pair, "e2e", weights=E2E, device="cpu", half=False, anchor=0.0)
    mixed = sharpen_arrays(pair, "e2e", weights=E2E, device="cpu", half=False, tile=tile)
    classical, bro = sharpen_arrays(pair, anchor.anchor_method(pair.sensor)), sharpen_arrays(pair, "brovey")
    expected = anchor.projected_mix(net, classical, bro, anchor.ANCHOR, pair.ms, 2,
                                    consistency.gains_for(pair.sensor, 4))
    inner = (slice(None), slice(32, -32), slice(32, -32))
    error = np.abs(mixed - expected)[inner]
    if tile is None:  # on the projection's context, the classical half was up to 26 DN off
        assert error.max() < 1e-3 * pair.ms.std()
    else:
        assert np.median(error) < 0.002 * pair.ms.std() and np.percentile(error, 99) < 0.05 * pair.ms.std()
    assert np.abs(mixed - net)[inner].mean() > 0.1 * np.percentile(error, 99)


def test_the_floor_lifts_only_bands_below_half_of_brovey(landsat):
    """``anchor.floored``: a band the network sent to zero comes back to FLOOR x Brovey's
    value (about the data's zero), every other value stays; an MS with values below the
    zero (an offset encoding) leaves the mix as it is."""
    pair = Pair(landsat.pan[:128, :128], landsat.ms[:, :64, :64], 2, landsat.scale, landsat.sensor)
    bro = sharpen_arrays(pair, "brovey")
    mixed = sharpen_arrays(pair, anchor.anchor_method(pair.sensor))
    mixed[1, ::5] = 0  # a zeroed band on every fifth row
    out = anchor.floored(mixed, bro, pair.ms, 0.0)
    low = mixed < anchor.FLOOR * bro
    assert low[1, ::5].all()
    np.testing.assert_allclose(out[low], anchor.FLOOR * bro[low], rtol=1e-6)
    np.testing.assert_array_equal(out[~low], mixed[~low])
    zero = float(pair.ms.max())  # every MS value below it
    np.testing.assert_array_equal(anchor.floored(mixed, bro, pair.ms, zero), mixed)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_an_anchor_outside_zero_to_one_is_refused_in_one_line(bad):
    with pytest.raises(PansharpenError, match="between 0 and 1") as err:
        prepare("e2e", ratio=2, bands=4, sensor="LANDSAT8", weights=E2E, device="cpu", anchor=bad)
    assert "\n" not in str(err.value)


def test_the_default_share_follows_the_classical_half():
    """The share a run takes unless given one: 0.625 with the haze-corrected half (a sensor the engine
    knows, by any of its names), 0.5 with MTF-GLP-HPM (no sensor, or one it does not know)."""
    assert anchor.default_share("WorldView-3") == anchor.default_share("LANDSAT8") == anchor.HAZE_SHARE == 0.625
    assert anchor.default_share(None) == anchor.default_share("MYSAT") == anchor.ANCHOR == 0.5
    assert anchor.anchor_method("MYSAT") == anchor.ANCHOR_FALLBACK


@pytest.mark.parametrize("sensor, given", [(None, None), ("LANDSAT8", None), ("LANDSAT8", 0.25)])
def test_the_check_scores_the_share_the_run_takes(sample_paths, tmp_path, sensor, given):
    """The check scores the deep model at the share the run then takes (--anchor, else
    ``default_share``: 0.5 of MTF-GLP-HPM without a sensor, 0.625 of the haze-corrected half
    with one): its log names that share, its Q2n is the network mixed at it on the check's
    degraded sample, and the checked run equals the unchecked run at the same share."""
    import re

    from diffusion_pansharpening.engine import guard
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen
    from diffusion_pansharpening.engine.raster_io import RasterPair

    share = anchor.default_share(sensor) if given is None else given
    options = dict(method="e2e", weights=E2E, device="cpu", half=False, sensor=sensor, anchor=given)
    checked = sharpen(SharpenRequest(*sample_paths, str(tmp_path / "checked.tif"), **options))
    q2n, logged = re.search(r"e2e: Q2n ([0-9.]+) \(anchor ([0-9.]+)\)", checked.reason).groups()
    assert float(logged) == share
    sample = guard.read_sample(RasterPair(*sample_paths, sensor=sensor))
    scored = guard.score_candidates(sample, {"e2e": E2E}, device="cpu", half=False, anchor=share)["e2e"]["Q2n"]
    assert scored == pytest.approx(float(q2n), abs=6e-4)  # the log rounds to 3 decimals
    unchecked = sharpen(SharpenRequest(*sample_paths, str(tmp_path / "unchecked.tif"), **options, check=False))
    np.testing.assert_array_equal(read_raster(checked.output), read_raster(unchecked.output))


def test_the_engine_runs_the_steps_after_the_network_on_the_writer_thread(landsat):
    """Issue 18: the default deep method is the network, then the consistency projection,
    then the anchor. The streaming engine runs the network on the computing thread and
    the two steps on the writer thread, where they overlap the next tile's network; the
    image is the one the method gives called as a whole, and the one without threads."""
    import threading

    from diffusion_pansharpening.engine.streaming import ArraySource, run_tiled

    method = prepare("e2e", ratio=2, bands=4, sensor="LANDSAT8", weights=E2E, device="cpu", half=False)
    assert method.network is method.method.method  # Anchored(Consistent(model))
    pan, ms = landsat.pan[:160, :160].astype(np.float32), landsat.ms[:, :80, :80].astype(np.float32)
    tile = (pan / landsat.scale, np.repeat(np.repeat(ms, 2, 1), 2, 2) / landsat.scale, ms / landsat.scale)
    np.testing.assert_array_equal(method.post(method.network(*tile), tile), method(*tile))

    threads = []
    post = method.post
    method.post = lambda *args: threads.append(threading.current_thread().name) or post(*args)

    def run(with_threads):
        out = np.zeros((4, 160, 160), np.float32)

        def sink(y0, x0, values, valid):
            out[:, y0:y0 + values.shape[1], x0:x0 + values.shape[2]] = values
        run_tiled(ArraySource(pan, ms, 2, scale=landsat.scale), method, 160, 160, sink, tile=96,
                  overlap=16, threads=with_threads)
        return out

    np.testing.assert_array_equal(run(True), run(False))
    assert any(name.startswith("pansharpen-write") for name in threads)
    assert threading.main_thread().name in threads  # the run without threads


def test_disjoint_tiles_skip_the_blender_with_the_same_image(landsat, monkeypatch):
    """Issue 18: with no overlap every tile is one cell, so the engine hands it to the
    sink without the blending stack, for scene-normalised (deep) tiles as for classical
    ones; the image equals the blender's."""
    from diffusion_pansharpening.engine import tiling
    from diffusion_pansharpening.engine.streaming import ArraySource, run_tiled

    method = prepare("e2e", ratio=2, bands=4, sensor="LANDSAT8", weights=E2E, device="cpu", half=False)
    pan, ms = landsat.pan[:160, :160].astype(np.float32), landsat.ms[:, :80, :80].astype(np.float32)

    def run():
        out = np.zeros((4, 160, 160), np.float32)

        def sink(y0, x0, values, valid):
            out[:, y0:y0 + values.shape[1], x0:x0 + values.shape[2]] = values
        run_tiled(ArraySource(pan, ms, 2, scale=landsat.scale), method, 160, 160, sink, tile=96,
                  overlap=0, threads=False)
        return out

    assert tiling.TileGrid(160, 160, 96, 0).disjoint
    fast = run()
    monkeypatch.setattr(tiling.TileGrid, "disjoint", property(lambda self: False))
    np.testing.assert_array_equal(fast, run())

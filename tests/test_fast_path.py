"""The fast inference path gives what the plain one gives: reader and writer threads,
tiles in batches, the seeded noise drawn once, the torch thread count."""
import threading

import numpy as np
import pytest

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.models import THREADS_ENV, cpu_threads, limit_cpu_threads, load
from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen
from diffusion_pansharpening.engine.streaming import ArraySource, run_tiled

from conftest import ROOT, read_raster

WEIGHTS = ROOT / "resources" / "weights"


def shipped(name):
    path = WEIGHTS / f"landsat8-{name}.safetensors"
    if not path.exists():
        pytest.fail(f"shipped weights {path} are missing (training/recipes/run.py landsat8 makes them)")
    return str(path)


@pytest.mark.parametrize("method", [pytest.param("fose", marks=pytest.mark.slow), "gsa"])  # fose: seconds
def test_threads_give_the_plain_result_bit_for_bit(sample_paths, tmp_path, method):
    pan, ms = sample_paths
    out = {}
    for threads in (False, True):
        target = str(tmp_path / f"{method}-{threads}.tif")
        sharpen(SharpenRequest(pan, ms, target, method=method, device="cpu", tile=256, overlap=16,
                               weights=shipped(method) if method == "fose" else None,
                               threads=threads, float32=True))
        out[threads] = read_raster(target)
    assert out[True].shape[1] > 256 and out[True].shape[2] > 256  # several tiles
    np.testing.assert_array_equal(out[True], out[False])


@pytest.fixture(scope="module")
def tiles(ikonos):
    """Three real 128-pixel Landsat-like tiles (IKONOS imagery, ratio 2 grid), normalised."""
    pan, ms = ikonos
    rng_rows = (0, 200, 400)
    out = []
    for r in rng_rows:
        p = pan[2 * r:2 * r + 128, 2 * r:2 * r + 128] / 2047.0
        m = ms[:, r // 2:r // 2 + 64, r // 2:r // 2 + 64] / 2047.0
        lms = np.repeat(np.repeat(m, 2, 1), 2, 2)
        out.append((p.astype(np.float32), lms.astype(np.float32), m.astype(np.float32)))
    return out


@pytest.mark.parametrize("name", ["fose", "ksdiff", "dm1", "e2e"])
def test_a_batch_gives_each_tile_what_it_gives_alone(tiles, name):
    model = load(shipped(name), device="cpu")
    alone = [model(*t) for t in tiles]
    together = model.run_batch(tiles)
    for a, b in zip(alone, together):
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-5)
    # distinct tiles give distinct outputs: the batch did not repeat one tile
    assert np.abs(together[0] - together[1]).mean() > 1e-3


def test_noise_is_the_seeded_draw_and_is_drawn_once(tiles):
    import torch

    model = load(shipped("fose"), device="cpu")
    first = model(*tiles[0])
    noise = model._noise(tiles[0][1].shape)
    expected = torch.randn((1, *tiles[0][1].shape), generator=torch.Generator().manual_seed(model.seed))
    assert torch.equal(noise, expected)
    assert model._noise(tiles[0][1].shape) is noise  # reused, not drawn again
    np.testing.assert_array_equal(model(*tiles[0]), first)


class Picky:
    """A classical-style method (no torch) on the identity, for the failure paths."""

    halo = 0
    normalisation = "scale"

    def __call__(self, pan, lms, ms):
        return lms


def pipeline_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pansharpen") and t.is_alive()]


def failing_sink(after):
    calls = []

    def sink(y0, x0, values, valid):
        calls.append(threading.current_thread().name)
        if len(calls) > after:
            raise OSError("disk full")
    return sink, calls


@pytest.mark.parametrize("threads", [False, True])
def test_a_failing_write_stops_the_run_with_its_error(ikonos, threads):
    pan, ms = ikonos
    source = ArraySource(pan[:512, :512], ms[:, :128, :128], ratio=4, scale=2047.0)
    sink, calls = failing_sink(after=2)
    with pytest.raises(OSError, match="disk full"):
        run_tiled(source, Picky(), 512, 512, sink, tile=128, overlap=16, threads=threads)
    assert len(calls) == 3  # nothing was written after the failure
    assert not pipeline_threads()


def test_cancel_stops_before_the_next_tile_and_leaves_no_thread(ikonos):
    pan, ms = ikonos
    source = ArraySource(pan[:512, :512], ms[:, :128, :128], ratio=4, scale=2047.0)
    written = []
    progress = []
    from diffusion_pansharpening.engine.errors import Cancelled

    with pytest.raises(Cancelled):
        run_tiled(source, Picky(), 512, 512, lambda *a: written.append(a), tile=128, overlap=16,
                  progress=progress.append, cancelled=lambda: len(progress) >= 3)
    assert len(progress) == 3
    assert not pipeline_threads()


def test_thread_count_follows_the_environment_then_the_cpus(monkeypatch):
    import os

    monkeypatch.setenv(THREADS_ENV, "3")
    assert cpu_threads() == 3
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(PansharpenError, match=THREADS_ENV):
        cpu_threads()
    monkeypatch.delenv(THREADS_ENV)
    assert cpu_threads() == len(os.sched_getaffinity(0))


def test_torch_threads_are_capped_and_a_lower_choice_stays(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(THREADS_ENV, "1")
        limit_cpu_threads()
        assert torch.get_num_threads() == 1
        monkeypatch.delenv(THREADS_ENV)
        limit_cpu_threads()  # 1 is below the CPU count: kept
        assert torch.get_num_threads() == 1
        torch.set_num_threads(4 * cpu_threads())
        limit_cpu_threads()
        assert torch.get_num_threads() == cpu_threads()
    finally:
        torch.set_num_threads(before)


def test_tile_size_is_the_users_else_the_methods_else_the_default():
    from diffusion_pansharpening.engine.methods import prepare
    from diffusion_pansharpening.engine.models import CPU_TILE_INPUT
    from diffusion_pansharpening.engine.models import native_bfloat16
    from diffusion_pansharpening.engine.models.runtime import CHANNELS_LAST_TILE_INPUT, ORT_TILE_INPUT
    from diffusion_pansharpening.engine.streaming import tile_for
    from diffusion_pansharpening.engine.tiling import DEFAULT_TILE

    fose = load(shipped("fose"), device="cpu")
    tile = tile_for(fose)
    # bfloat16 where the CPU has it natively (default layout), else float32 channels-last
    assert fose.channels_last == (not native_bfloat16())
    limit = fose.tile_input_limit
    if fose.backend == "onnxruntime":
        assert limit == ORT_TILE_INPUT
    else:
        assert limit == (CHANNELS_LAST_TILE_INPUT if fose.channels_last else CPU_TILE_INPUT)
    assert tile % 64 == 0 and tile + 2 * fose.halo <= limit < tile + 64 + 2 * fose.halo
    assert tile_for(fose, 300) == 300
    assert tile_for(prepare("gsa", ratio=2, bands=4)) == DEFAULT_TILE


def test_reduced_precision_keeps_the_shipped_models_quality(sample_paths):
    """``half`` (the default) runs the networks in bfloat16 on a CPU that has it natively
    and in float32 elsewhere: the shipped fose scores on the real sample at reduced
    resolution as in float32 (measured on the held-out strips: at most 0.0001 Q2n)."""
    from diffusion_pansharpening.engine import quality
    from diffusion_pansharpening.engine.evaluate import Pair, load_pair, sharpen_arrays
    from diffusion_pansharpening.engine.models import native_bfloat16
    from diffusion_pansharpening.engine.mtf import wald_degrade

    pair = load_pair(*sample_paths)
    pan, ms = pair.pan[:304, :640].astype(np.float64), pair.ms[:, :152, :320].astype(np.float64)
    pan_lr, ms_lr = wald_degrade(pan, ms, 2)
    run = Pair(np.float32(pan_lr), np.float32(ms_lr), 2, 1.0, None)
    fused = {half: sharpen_arrays(run, "fose", weights=shipped("fose"), device="cpu", half=half)
             for half in (False, True)}
    if not native_bfloat16():
        np.testing.assert_array_equal(fused[True], fused[False])
        return
    assert np.abs(fused[True] - fused[False]).max() > 0  # it did run in bfloat16
    full, reduced = (quality.reduced_indices(fused[h], ms, 2) for h in (False, True))
    assert reduced["Q2n"] == pytest.approx(full["Q2n"], abs=5e-4), (full, reduced)
    assert reduced["SAM"] == pytest.approx(full["SAM"], abs=0.01), (full, reduced)
    assert reduced["ERGAS"] == pytest.approx(full["ERGAS"], abs=0.01), (full, reduced)

"""Scene adaptation (engine/adapt.py): real tiny models, the real bundled sample."""
import numpy as np
import pytest
import torch
from safetensors import safe_open

from diffusion_pansharpening.engine import adapt
from diffusion_pansharpening.engine.errors import Cancelled, PansharpenError
from diffusion_pansharpening.engine.raster_io import RasterPair


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(adapt.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "adapted"


def tiny(path, arch="e2e"):
    from diffusion_pansharpening.engine.models import build, build_metadata, save_weights

    torch.manual_seed(0)
    net = build(arch, "tiny", bands=4)
    meta = build_metadata(arch, net.config, sensor="LANDSAT8", bands=["blue", "green", "red", "NIR"],
                          ratio=2, scale=65535, training_data="none (fixed seed)", licence="test")
    meta["normalisation"] = "scene-joint-p1-p99"
    save_weights(str(path), net, meta)
    return str(path)


def tensors(path):
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.mark.parametrize("arch", ["e2e", "fose"])
def test_adaptation_lowers_the_held_out_loss_and_names_scene_and_base(sample_paths, tmp_path, cache, arch):
    base = tiny(tmp_path / f"base-{arch}.safetensors", arch)
    pair = RasterPair(*sample_paths)
    result = adapt.adapt(pair, base, seconds=600, device="cpu", max_steps=30)
    assert result.steps == 30 and result.after < result.before
    assert result.path and result.path.startswith(str(cache))
    _, meta = tensors(result.path)
    assert meta["adapted_from"] == f"base-{arch}.safetensors"
    assert meta["adapted_from_sha256"] == adapt.file_sha256(base)
    assert meta["scene_hash"] == adapt.scene_hash(pair) and meta["architecture"] == arch
    # a rerun on the same scene reuses the file instead of adapting again
    again = adapt.adapt(pair, base, seconds=600, device="cpu", max_steps=30)
    assert again.reused and again.path == result.path and again.steps == 0


def test_adaptation_is_reproducible_with_a_seed(sample_paths, tmp_path, cache):
    base = tiny(tmp_path / "base.safetensors")
    pair = RasterPair(*sample_paths)
    outs = [adapt.adapt(pair, base, seconds=600, device="cpu", max_steps=10, seed=3,
                        out=str(tmp_path / f"a{i}.safetensors")) for i in range(2)]
    (a, _), (b, _) = tensors(outs[0].path), tensors(outs[1].path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    base_tensors, _ = tensors(base)
    assert any(not torch.equal(a[k], base_tensors[k]) for k in a)


def test_cancel_during_adaptation_leaves_nothing(sample_paths, tmp_path, cache):
    base = tiny(tmp_path / "base.safetensors")
    calls = []
    with pytest.raises(Cancelled):
        adapt.adapt(RasterPair(*sample_paths), base, seconds=60, device="cpu",
                    cancelled=lambda: calls.append(1) or len(calls) > 3)
    assert not cache.exists() or not any(cache.iterdir())


def test_the_sharpen_job_adapts_then_reuses(sample_paths, tmp_path, cache):
    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    base = tiny(tmp_path / "base.safetensors")
    logs = []
    first = sharpen(SharpenRequest(*sample_paths, str(tmp_path / "a.tif"), method="e2e", weights=base,
                                   device="cpu", adapt=5, check=False), log=logs.append)
    assert any(m.startswith("Adapted to this scene") for m in logs)
    assert "Adapted to this scene" in first.reason
    logs.clear()
    sharpen(SharpenRequest(*sample_paths, str(tmp_path / "b.tif"), method="e2e", weights=base,
                           device="cpu", adapt=5, check=False), log=logs.append)
    assert any(m.startswith("Reusing the model adapted to this scene") for m in logs) == any(cache.iterdir())


@pytest.mark.parametrize("width, height, refusal", [
    (96, 96, r"too few for the check to measure what adapting gains \(it needs the pixels of a 160 x 160 square\)"),
    (300, 100, r"too few \(it needs 120 a side\)"),
])
def test_a_scene_too_small_to_adapt_on_is_refused_and_the_base_model_runs(sample_paths, tmp_path, cache,
                                                                          width, height, refusal):
    """A clip too small for the check (guard.too_small: under the pixels of a 160-pixel square
    at ratio 2) or a strip whose patches would be under adapt.MIN_PATCH (100 rows: 32-pixel
    patches) is refused in one line that says what to do; the job still sharpens with the
    base model."""
    from osgeo import gdal

    from diffusion_pansharpening.engine.pipeline import SharpenRequest, sharpen

    pan, ms = str(tmp_path / "pan.tif"), str(tmp_path / "ms.tif")
    gdal.Translate(pan, sample_paths[0], srcWin=[0, 0, width, height])
    gdal.Translate(ms, sample_paths[1], srcWin=[0, 0, width // 2, height // 2])
    with pytest.raises(PansharpenError, match=rf"^the scene gives {width} x {height} PAN pixels to adapt on, "
                                              rf"{refusal}: sharpen it without --adapt$"):
        adapt.adapt(RasterPair(pan, ms), tiny(tmp_path / "base.safetensors"), seconds=5, device="cpu")
    logs = []
    result = sharpen(SharpenRequest(pan, ms, str(tmp_path / "out.tif"), method="e2e",
                                    weights=str(tmp_path / "base.safetensors"), device="cpu", adapt=5,
                                    check=False), log=logs.append)
    assert result.method == "e2e" and (tmp_path / "out.tif").exists()
    assert any(m.startswith(f"Not adapted: the scene gives {width} x {height}") for m in logs)
    assert not cache.exists() or not any(cache.iterdir())


def test_the_full_resolution_objective_needs_no_reference_and_scores_consistency(sample_paths):
    """"full" cuts the scene at its own scale (the PAN patch covers ratio x the MS patch,
    no degraded copy), and its loss is zero for an output that the sensor's MTF and
    decimation take back to the MS, positive for one that drifts."""
    from diffusion_pansharpening.engine.consistency import gains_for, project_torch, separable_operators
    from diffusion_pansharpening.engine.guard import read_sample

    sample = read_sample(RasterPair(*sample_paths), adapt.SAMPLE)
    (lms, ms, pan), _ = adapt.scene_patches(sample, "scene", "full")
    wald, _ = adapt.scene_patches(sample, "scene", "wald")  # gt, lms, ms, pan one scale down
    r = sample.ratio
    assert pan.shape[-1] == lms.shape[-1] == r * ms.shape[-1] and len(wald) == 4
    assert wald[0].shape[-1] == wald[2].shape[-1] * r and wald[0].shape[-1] < lms.shape[-1]
    m, u = (torch.from_numpy(o) for o in separable_operators(gains_for(sample.sensor, 4), r, lms.shape[-1]))
    lms, ms, pan = (torch.from_numpy(a[:4]) for a in (lms, ms, pan))
    consistent = project_torch(lms + 0.1 * pan, ms, m, u, iterations=20)
    loss = lambda out: float(adapt._full_loss(out, ms, m))
    assert loss(consistent) < 1e-3 < 0.1 < loss(lms + 0.5)


def test_the_adapted_model_runs_only_when_the_check_scores_it_no_lower(sample_paths, tmp_path):
    """After --adapt the check runs again on the same sample for the adapted model, at the
    same anchor share: the base model runs instead when the adapted one scores a lower
    Q2n; otherwise the adapted one runs. The base model's score is set here to either
    side of any real one."""
    from diffusion_pansharpening.engine import guard, pipeline

    adapted = tiny(tmp_path / "adapted.safetensors")
    sample = guard.read_sample(RasterPair(*sample_paths))
    request = pipeline.SharpenRequest(*sample_paths, str(tmp_path / "out.tif"), method="e2e", device="cpu",
                                      half=False)
    base = str(tmp_path / "base.safetensors")
    for base_q2n, expected in ((1.0, base), (-1.0, adapted)):
        verdict = guard.Verdict("e2e", base, {"e2e": {"Q2n": base_q2n}}, anchor=0.25, sample=sample)
        weights, line = pipeline._check_adapted("e2e", base, adapted, verdict, request, 0.25)
        assert weights == expected
        assert line.endswith("running the base model." if expected == base else f"(base model {base_q2n:.3f}).")

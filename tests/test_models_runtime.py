"""Every inference backend gives the reference image: eager PyTorch float32.

ONNX Runtime (``engine/models/onnx_backend.py``) runs the deep models in float32 on the
CPU when it is installed. Tolerance: 2e-5 absolute on [0, 1]-normalised tiles (measured
differences are 1e-7 on the tiny models and up to 1e-6 on the shipped Landsat-8 ones,
float32 rounding in a different order of the same sums); the engine's own check on the
first tile of a shape allows 1e-3 before it switches a model back to PyTorch.
"""
import numpy as np
import pytest
import torch

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.models import DeepModel, build, load
from diffusion_pansharpening.engine.models import onnx_backend
from diffusion_pansharpening.engine.models.runtime import BACKEND_ENV, resolve_backend

from conftest import ROOT

TOLERANCE = 2e-5


@pytest.fixture
def ort():
    """ONNX Runtime is installed by `make install` (the `onnx` extra): missing is a failure."""
    if not onnx_backend.available():
        pytest.fail("onnxruntime / onnx are not installed: run `make install` (pyproject extra `onnx`)")


def tiny(arch, ratio=4):
    torch.manual_seed(0)
    net = build(arch, "tiny", bands=4)
    with torch.no_grad():  # move off the zero-initialised layers so that every path matters
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net, {"architecture": arch, "ratio": ratio}


def random_tiles(count, size, ratio=4, bands=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((size, size), dtype=np.float32), rng.random((bands, size, size), dtype=np.float32),
             rng.random((bands, size // ratio, size // ratio), dtype=np.float32)) for _ in range(count)]


def test_backend_choice(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert resolve_backend("torch", cpu, None) == "torch"
    assert resolve_backend("onnxruntime", cpu, torch.bfloat16) == "torch"  # ORT only for float32
    assert resolve_backend("onnxruntime", torch.device("cuda"), None) == "torch"
    assert resolve_backend(None, cpu, None) == "torch"  # channels-last PyTorch: faster than ORT here
    expected = "onnxruntime" if onnx_backend.available() else "torch"
    assert resolve_backend("onnxruntime", cpu, None) == expected
    monkeypatch.setenv(BACKEND_ENV, "onnxruntime")
    assert resolve_backend(None, cpu, None) == expected
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert resolve_backend(None, cpu, None) == "torch"
    with pytest.raises(PansharpenError, match="unknown inference backend"):
        resolve_backend("tensorrt", cpu, None)


@pytest.mark.usefixtures("ort")
@pytest.mark.parametrize("arch", ["fose", "e2e", "dm1"])
def test_onnxruntime_gives_the_eager_image_on_tiny_models(arch):
    net, meta = tiny(arch)
    ref = DeepModel(net, arch, meta, "cpu", half=False, backend="torch")
    ort = DeepModel(net, arch, meta, "cpu", half=False, backend="onnxruntime")
    tiles = random_tiles(3, 64) + random_tiles(1, 80, seed=1)
    for tile in tiles:
        np.testing.assert_allclose(ort(*tile), ref(*tile), rtol=0, atol=TOLERANCE)
    # the first 64-pixel tile ran eager, the second exported and checked, the third ran in ORT;
    # the lone 80-pixel tile never paid for an export
    assert ort.backend == "onnxruntime" and ort._ort.exports == 1 and len(ort._ort.sessions) == 1


@pytest.mark.usefixtures("ort")
def test_onnxruntime_gives_the_eager_image_with_a_shipped_model(ikonos):
    """The shipped Landsat-8 fose on real 128-pixel tiles (IKONOS imagery on a ratio-2 grid)."""
    path = ROOT / "resources" / "weights" / "landsat8-fose.safetensors"
    if not path.exists():
        pytest.fail(f"shipped weights {path} are missing")
    pan, ms = ikonos
    tiles = []
    for r in (0, 200, 400):
        m = ms[:, r // 2:r // 2 + 64, r // 2:r // 2 + 64] / 2047.0
        tiles.append(((pan[2 * r:2 * r + 128, 2 * r:2 * r + 128] / 2047.0).astype(np.float32),
                      np.repeat(np.repeat(m, 2, 1), 2, 2).astype(np.float32), m.astype(np.float32)))
    ref = load(str(path), device="cpu", half=False, backend="torch")
    ort = load(str(path), device="cpu", half=False, backend="onnxruntime")
    for tile in tiles:
        np.testing.assert_allclose(ort(*tile), ref(*tile), rtol=0, atol=TOLERANCE)
    assert ort.backend == "onnxruntime" and ort._ort.exports == 1


@pytest.mark.usefixtures("ort")
def test_a_failed_check_falls_back_to_pytorch(monkeypatch, caplog):
    monkeypatch.setattr(onnx_backend, "CHECK_TOLERANCE", -1.0)  # no ORT output can pass
    net, meta = tiny("e2e")
    ref = DeepModel(net, "e2e", meta, "cpu", half=False, backend="torch")
    ort = DeepModel(net, "e2e", meta, "cpu", half=False, backend="onnxruntime")
    for tile in random_tiles(3, 64):
        np.testing.assert_array_equal(ort(*tile), ref(*tile))
    assert ort.backend == "torch" and "ONNX Runtime backend off" in caplog.text


@pytest.mark.parametrize("arch", ["ksdiff", "dm50"])
def test_architectures_onnxruntime_does_not_run_stay_in_pytorch(arch):
    net, meta = tiny(arch)
    model = DeepModel(net, arch, meta, "cpu", half=False, backend="onnxruntime")
    assert model.backend == "torch" and model._ort is None


def test_torch_backend_runs_no_onnx(monkeypatch):
    net, meta = tiny("e2e")
    model = DeepModel(net, "e2e", meta, "cpu", half=False, backend="torch")
    assert model.backend == "torch" and model._ort is None
    model(*random_tiles(1, 64)[0])


@pytest.mark.parametrize("arch", ["fose", "e2e"])
def test_channels_last_gives_the_contiguous_image(arch):
    """Eager float32 on the CPU runs channels-last (the same image as the default layout);
    reduced precision keeps the default layout."""
    def model(half=False):
        net, meta = tiny(arch)  # the same weights every call (seeded)
        return DeepModel(net, arch, meta, "cpu", half=half, backend="torch")

    fast, plain = model(), model()
    plain.channels_last, plain.model = False, plain.model.to(memory_format=torch.contiguous_format)
    convolutions = [p for p in fast.model.parameters() if p.dim() == 4]
    assert fast.channels_last and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)
    assert not any(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                   for p in plain.model.parameters() if p.dim() == 4)
    for tile in random_tiles(2, 64):
        out = fast(*tile)
        assert out.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(out, plain(*tile), rtol=0, atol=1e-5)
    half = model(half=True)
    assert half.channels_last == (half.reduced_precision is None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/gpu_check.sh runs it on a GPU)")
@pytest.mark.parametrize("arch", ["fose", "e2e", "ksdiff"])
def test_cuda_gives_the_cpu_image(arch):
    """CUDA float32 (TF32 convolutions allowed, cuDNN's default) within 2e-3 of the CPU's
    float32, float16 autocast within 2e-2 (on [0, 1] tiles of the tiny models)."""
    net, meta = tiny(arch)
    cpu = DeepModel(net, arch, meta, "cpu", half=False, backend="torch")
    expected = [cpu(*t) for t in random_tiles(2, 64)]
    for half, tol in ((False, 2e-3), (True, 2e-2)):
        cuda = DeepModel(tiny(arch)[0], arch, meta, "cuda", half=half)
        assert cuda.backend == "torch"
        for tile, ref in zip(random_tiles(2, 64), expected):
            np.testing.assert_allclose(cuda(*tile), ref, rtol=0, atol=tol)


def test_tile_follows_the_backend():
    """ONNX Runtime keeps its speed on larger tiles than eager PyTorch (runtime.ORT_TILE_INPUT)."""
    from diffusion_pansharpening.engine.models.runtime import (CHANNELS_LAST_TILE_INPUT, CPU_TILE_INPUT,
                                                               ORT_TILE_INPUT)

    net, meta = tiny("e2e")
    eager = DeepModel(net, "e2e", meta, "cpu", half=False, backend="torch")
    assert eager.tile_input_limit == CHANNELS_LAST_TILE_INPUT and eager.tile_for_halo(76) == 640
    eager.channels_last = False  # bfloat16's layout
    assert eager.tile_input_limit == CPU_TILE_INPUT and eager.tile_for_halo(10) == 512
    if onnx_backend.available():
        ort = DeepModel(net, "e2e", meta, "cpu", half=False, backend="onnxruntime")
        assert ort.tile_input_limit == ORT_TILE_INPUT and ort.tile_for_halo(10) == 1024
        assert ort.tile_for_halo(76) == 896  # fose with the consistency projection's context

"""Weights files (.safetensors only, metadata checked) and the registry / DeepModel."""
import json
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.registry import names as architectures
from diffusion_pansharpening.engine.models import (
    DeepModel, build, build_metadata, count_parameters, describe, load, resolve_device,
    save_weights)
from test_models_fose import perturb

torch.set_num_threads(1)


def metadata(arch, model, bands=4, ratio=4):
    return build_metadata(arch, model.config, sensor="IKONOS", bands=[f"b{i}" for i in range(bands)],
                          ratio=ratio, scale=2047, training_data="test", licence="CC0",
                          quality={"SAM": 1.5})


def numpy_inputs(bands=4, h=36, w=44, ratio=4, seed=0):
    rng = np.random.default_rng(seed)
    ms = rng.random((bands, h // ratio, w // ratio), dtype=np.float32)
    lms = np.repeat(np.repeat(ms, ratio, axis=1), ratio, axis=2)
    pan = lms.mean(0) + 0.05 * rng.random((h, w), dtype=np.float32)
    return pan, lms, ms


@pytest.fixture
def saved(tmp_path):
    """A perturbed tiny model of every architecture saved to disk."""
    def make(arch, **kw):
        torch.manual_seed(0)
        model = build(arch, "tiny", bands=kw.get("bands", 4))
        perturb(model)
        path = tmp_path / f"{arch}.safetensors"
        save_weights(str(path), model, metadata(arch, model, **kw))
        return path, model
    return make


@pytest.mark.parametrize("arch", architectures())
def test_round_trip_gives_identical_outputs(saved, arch):
    path, model = saved(arch)
    loaded = load(str(path), device="cpu")
    assert loaded.architecture == arch
    assert loaded.metadata["bands"] == ["b0", "b1", "b2", "b3"] and loaded.metadata["ratio"] == 4
    assert loaded.metadata["quality"] == {"SAM": 1.5} and loaded.metadata["scale"] == 2047.0
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    original = DeepModel(model, arch, metadata(arch, model), "cpu")
    pan, lms, ms = numpy_inputs(h=32, w=32)
    np.testing.assert_array_equal(loaded(pan, lms, ms), original(pan, lms, ms))


def test_deep_model_on_numpy_returns_float32_bands_by_pixels(saved):
    path, _ = saved("fose")
    model = load(str(path), device="auto")
    assert model.device.type in ("cpu", "cuda")
    pan, lms, ms = numpy_inputs(h=36, w=44)
    out = model(pan.astype(np.float64), lms, ms)
    assert out.shape == (4, 36, 44) and out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, model(pan, lms, ms))  # seeded noise: same tile, same output
    with torch.inference_mode():  # the engine may ask for the halo inside inference mode
        halo = model.halo
    assert 4 <= halo <= 64
    assert all(p.grad is None for p in model.model.parameters())  # the probe leaves no gradients


def test_deep_model_refuses_wrong_band_count_and_bad_shapes(saved):
    path, _ = saved("e2e")
    model = load(str(path), device="cpu")
    pan, lms, ms = numpy_inputs(bands=3, h=32, w=32)
    with pytest.raises(PansharpenError, match="4 bands"):
        model(pan, lms, ms)
    pan, lms, ms = numpy_inputs(h=32, w=32)
    with pytest.raises(PansharpenError, match="PAN grid"):
        model(pan[:, :28], lms, ms)
    with pytest.raises(PansharpenError, match="not the PAN tile"):
        model(pan, lms, ms[:, :7])


def test_loading_refuses_a_pickle_without_unpickling_it(tmp_path):
    path = tmp_path / "evil.safetensors"
    # a pickle that would run code if it were ever unpickled
    path.write_bytes(b"\x80\x04cposix\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    with pytest.raises(PansharpenError, match="pickle"):
        load(str(path), device="cpu")
    assert not (tmp_path / "pwned").exists()
    path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    with pytest.raises(PansharpenError, match="not a .safetensors"):
        load(str(path), device="cpu")


def test_loading_refuses_a_torch_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, str(path))
    with pytest.raises(PansharpenError, match="zip checkpoint"):
        load(str(path), device="cpu")


@pytest.mark.parametrize("content", [b"", b"abc", np.random.default_rng(0).bytes(4096),
                                     struct.pack("<Q", 10) + b"{not json}"])
def test_loading_refuses_random_or_corrupt_bytes(tmp_path, content):
    path = tmp_path / "random.safetensors"
    path.write_bytes(content)
    with pytest.raises(PansharpenError, match="safetensors"):
        load(str(path), device="cpu")


def test_loading_refuses_a_missing_file(tmp_path):
    with pytest.raises(PansharpenError, match="does not exist"):
        load(str(tmp_path / "nope.safetensors"), device="cpu")


def test_loading_refuses_missing_metadata(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(PansharpenError, match=r"lacks the metadata \['architecture'"):
        load(str(path), device="cpu")


def test_loading_refuses_the_wrong_architecture(saved, tmp_path):
    path, model = saved("fose")
    # the file's tensors are Fose's, its metadata claims e2e
    bad = tmp_path / "claims_e2e.safetensors"
    save_weights(str(bad), model, {**metadata("fose", model), "architecture": "e2e"})
    with pytest.raises(PansharpenError, match="does not match architecture 'e2e'.*model does not have"):
        load(str(bad), device="cpu")
    with pytest.raises(PansharpenError, match="holds a 'fose' model, not 'ksdiff'"):
        load(str(path), device="cpu", architecture="ksdiff")
    unknown = tmp_path / "unknown.safetensors"
    save_file({"w": torch.zeros(2)}, str(unknown), metadata={**metadata("fose", model), "architecture": "unet"})
    with pytest.raises(PansharpenError, match="declares architecture 'unet'"):
        load(str(unknown), device="cpu")


def test_loading_refuses_mismatched_shapes(saved, tmp_path):
    _, model = saved("e2e")
    meta = metadata("e2e", model)
    config = json.loads(meta["config"])
    config["e2e_width"] = 6  # the file's tensors are for width 4
    bad = tmp_path / "shapes.safetensors"
    save_weights(str(bad), model, {**meta, "config": json.dumps(config)})
    with pytest.raises(PansharpenError, match=r"11 shape mismatch\(es\) \(blocks.0.conv1.assign.weight: file \(2, 4, 3, 3\) vs model \(2, 6, 3, 3\)"):
        load(str(bad), device="cpu")


def test_loading_refuses_bad_config_json(saved, tmp_path):
    _, model = saved("e2e")
    bad = tmp_path / "config.safetensors"
    save_weights(str(bad), model, {**metadata("e2e", model), "config": "{oops"})
    with pytest.raises(PansharpenError, match="'config' is not valid JSON"):
        load(str(bad), device="cpu")
    save_weights(str(bad), model, {**metadata("e2e", model), "config": json.dumps({"depth": 3})})
    with pytest.raises(PansharpenError, match=r"unknown FoseConfig setting\(s\) \['depth'\]"):
        load(str(bad), device="cpu")


def test_build_and_registry_helpers():
    with pytest.raises(PansharpenError, match="unknown architecture 'unet'"):
        build("unet")
    assert build("fose", {"e2e_blocks": 2}).config.e2e_blocks == 2
    assert build("fose", bands=8).config.bands == 8
    model = build("e2e", "tiny")
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    assert describe(model).splitlines()[-1].split()[-1] == f"{count_parameters(model):,}"


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(PansharpenError, match="no usable CUDA"):
            resolve_device("cuda")
    with pytest.raises(PansharpenError, match="unknown device"):
        resolve_device("gpu")


@pytest.mark.parametrize("arch", architectures())
def test_models_run_under_reduced_precision_autocast(arch):
    """The dtype handling of the CUDA float16 path, exercised with the CPU's bfloat16
    autocast (no GPU here): the output stays float32 and close to the float32 run."""
    from test_models_fose import inputs

    model = build(arch, "tiny").eval()
    perturb(model)
    pan, lms, ms = inputs(n=1, h=32, w=32)
    kw = lambda: {} if arch == "e2e" else {"generator": torch.Generator().manual_seed(0)}
    with torch.inference_mode():
        ref = model(pan, lms, ms, **kw())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(pan, lms, ms, **kw())
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.02


def test_loading_the_shipped_models_stays_off_torch_dynamo():
    """Issue 18: a random draw or arithmetic on the ``meta`` device, where the loader
    builds a skeleton to check a file (``runtime._skeleton``), runs python kernels that
    import ``torch._dynamo``: 1.2-1.9 s of every fose and ksdiff load. Loading every
    shipped model in a fresh interpreter imports none of it."""
    import subprocess
    import sys
    from pathlib import Path

    weights = sorted(str(p) for p in (Path(__file__).parents[1] / "resources" / "weights").glob("*.safetensors"))
    assert len(weights) >= 10
    code = ("import sys; from diffusion_pansharpening.engine.models import load; "
            "[load(p, device='cpu', half=False) for p in sys.argv[1:]]; print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, *weights], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr[-500:]

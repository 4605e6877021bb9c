"""Every stage of both pipelines on the tiny config and real data (WV3 train.mat).

The six stages run once, in order, in a module fixture (about 30 s in all on one
thread); the tests then read what each stage produced.
"""
import copy
import csv
import json

import numpy as np
import pytest
import torch

from conftest import shared_file

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.models import load
from diffusion_pansharpening.training import fose_stages, ksdiff_stages
from diffusion_pansharpening.training.config import load_config, stage_settings
from diffusion_pansharpening.training.datasets import load_training_data
from diffusion_pansharpening.training.run import Run

torch.set_num_threads(1)

PLAN = [("fose", 1), ("fose", 2), ("fose", 3), ("fose", 4), ("ksdiff", 1), ("ksdiff", 2)]
MODULES = {"fose": fose_stages, "ksdiff": ksdiff_stages}


@pytest.fixture(scope="module")
def data():
    return load_training_data([shared_file("wv3_patches/train.mat")], val_fraction=0.2)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-run")
    run = Run(load_config("tiny"), *data, out, progress=False)
    results = {key: MODULES[key[0]].STAGES[key[1]](run) for key in PLAN}
    return out, results


def _first_last(losses, k=5):
    return float(np.mean(losses[:k])), float(np.mean(losses[-k:]))


@pytest.mark.parametrize("key, factor", [
    (("fose", 1), 0.8),     # teacher: diffusion x0 loss
    (("fose", 2), 0.97),    # distillation starts from the teacher: falls less
    (("fose", 3), 0.8),     # E2E
    (("fose", 4), 0.97),    # ensemble starts from the average of dm1 and e2e
    (("ksdiff", 1), 0.8),
    (("ksdiff", 2), 0.8),
])
def test_each_stage_lowers_its_loss(trained, key, factor):
    out, results = trained
    result = results[key]
    assert len(result.losses) == stage_settings(load_config("tiny"), *key).steps
    first, last = _first_last(result.losses)
    assert last < factor * first, (key, first, last)
    # the CSV log holds the same losses
    with open(out / f"{key[0]}-stage{key[1]}" / "log.csv") as f:
        logged = [float(r["loss"]) for r in csv.DictReader(f)]
    np.testing.assert_allclose(logged, result.losses, rtol=1e-6)


@pytest.mark.parametrize("key", PLAN)
def test_each_stage_reports_validation_indices(trained, key):
    out, results = trained
    v = results[key].validation
    assert v["patches"] == 10
    assert 0 < v["SAM"] < 30 and 0 < v["ERGAS"] < 30 and 0 < v["Q2n"] <= 1 and 0 < v["SCC"] <= 1
    saved = json.loads((out / f"{key[0]}-stage{key[1]}" / "validation.json").read_text())
    assert saved["SAM"] == pytest.approx(v["SAM"])


@pytest.mark.parametrize("name, architecture", [
    ("dm50", "dm50"), ("dm1", "dm1"), ("e2e", "e2e"), ("fose", "fose"), ("ksdiff", "ksdiff")])
def test_stage_outputs_load_in_the_engine_with_their_metadata(trained, name, architecture):
    out, _ = trained
    from diffusion_pansharpening.engine.models.weights import read_weights

    load(str(out / f"{name}.safetensors"), device="cpu", architecture=architecture)
    _, meta = read_weights(str(out / f"{name}.safetensors"))  # the file's own strings
    assert meta["sensor"] == "WV3" and int(meta["ratio"]) == 4 and float(meta["scale"]) == 2047
    assert "GPL-3.0" in meta["licence"] and "train.mat" in meta["training_data"]
    assert json.loads(meta["quality"])["SAM"] > 0
    assert len(json.loads(meta["bands"])) == 8


def test_distilled_student_starts_from_the_teacher_and_is_scored_against_it(trained):
    out, results = trained
    refs = results[("fose", 2)].validation["references"]
    assert set(refs) == {"teacher_1step", "teacher_8step"}
    # the student's one step beats the teacher's naive single DDIM step
    assert results[("fose", 2)].validation["ERGAS"] < refs["teacher_1step"]["ERGAS"]
    cache = out / "fose-stage2" / "teacher_cache.safetensors"
    assert cache.exists()


def test_fose_is_better_than_its_parts(trained):
    v = trained[1][("fose", 4)].validation
    for part in ("dm1", "e2e"):
        assert v["ERGAS"] < v["references"][part]["ERGAS"]
        assert v["SAM"] < v["references"][part]["SAM"]


def test_teacher_cache_matches_online_sampling(trained, data):
    """The cached targets are the teacher's DDIM outputs from the stored noise."""
    out, _ = trained
    run = Run(load_config("tiny"), *data, out, progress=False)
    from diffusion_pansharpening.training.run import load_model

    teacher = load_model(run, "dm50", "dm50").eval()
    noise, residual = fose_stages.teacher_cache(run, teacher, steps=8)
    b = data[0].batch(torch.tensor([0, 7]))
    with torch.no_grad():
        direct = teacher.sample_residual(b["pan"], b["lms"], b["ms"], steps=8, noise=noise[[0, 7]])
    torch.testing.assert_close(direct, residual[[0, 7]], rtol=1e-5, atol=1e-6)


def test_a_later_stage_without_its_inputs_says_what_to_run(data, tmp_path):
    run = Run(load_config("tiny"), *data, tmp_path, progress=False)
    with pytest.raises(PansharpenError, match="dm50.safetensors is missing"):
        fose_stages.stage2(run)
    with pytest.raises(PansharpenError, match="ksdiff-stage1.safetensors is missing"):
        ksdiff_stages.stage2(run)


@pytest.mark.parametrize("key", [("fose", 1), ("ksdiff", 2)])
def test_diffusion_stage_resumes_bit_for_bit(trained, data, tmp_path, key):
    """Noise, timesteps and EMA come back exactly after an interruption."""
    out, _ = trained
    config = copy.deepcopy(load_config("tiny"))
    config[key[0]][f"stage{key[1]}"].update(steps=6, checkpoint_every=100)
    stage = MODULES[key[0]].STAGES[key[1]]

    def run_in(folder, **kw):
        folder.mkdir()
        if key == ("ksdiff", 2):  # needs stage 1's output
            (folder / "ksdiff-stage1.safetensors").write_bytes(
                (out / "ksdiff-stage1.safetensors").read_bytes())
        return Run(config, *data, folder, progress=False, **kw)

    name = {"fose": "dm50", "ksdiff": "ksdiff"}[key[0]]
    straight = stage(run_in(tmp_path / "a"))
    first = stage(run_in(tmp_path / "b", stop_after=3))
    assert first.step == 3 and not (tmp_path / "b" / f"{name}.safetensors").exists()
    resumed = stage(Run(config, *data, tmp_path / "b", resume=True, progress=False))
    assert first.losses + resumed.losses == straight.losses
    a = load(str(tmp_path / "a" / f"{name}.safetensors"), device="cpu").model.state_dict()
    b = load(str(tmp_path / "b" / f"{name}.safetensors"), device="cpu").model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k

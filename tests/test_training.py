"""Training infrastructure: datasets, region split, batch plan, the generic loop.

Small real data only (WV3 train.mat patches, a crop of the IKONOS pair); a tiny
real network (Fose's E2E net) stands in for "a stage" where the loop is tested.
"""
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.io import loadmat

from conftest import shared_file

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.training import datasets as ds
from diffusion_pansharpening.training.config import StageConfig, load_config, stage_settings
from diffusion_pansharpening.training.losses import fidelity, spectral_angle
from diffusion_pansharpening.training.trainer import (
    CHECKPOINT, BatchPlan, Dist, Stage, load_checkpoint, train_stage, warmup_cosine)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def wv3():
    return ds.load_training_data([shared_file("wv3_patches/train.mat")], val_fraction=0.2)


# ---------------------------------------------------------------- readers

def _write_pancollection(path: Path, arrays: dict) -> None:
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def test_pancollection_reader_matches_the_same_patches_from_mat(tmp_path):
    mat = loadmat(str(shared_file("wv3_patches/train.mat")))
    arrays = {k: np.moveaxis(mat[k][:6], -1, 1) for k in ("gt", "ms", "lms")}
    arrays["pan"] = mat["pan"][:6, None]  # N x 1 x H x W as in PanCollection
    _write_pancollection(tmp_path / "train_wv3.h5", arrays)

    patches = ds.read_pancollection(tmp_path / "train_wv3.h5")
    assert patches.scale == 2047.0  # values exceed 10 bits
    assert patches.gt.shape == (6, 8, 64, 64) and patches.ms.shape == (6, 8, 16, 16)
    assert patches.pan.shape == (6, 1, 64, 64) and patches.ratio == 4
    # channel-last .mat and channel-first .h5 give the same normalised patches
    ref = ds.read_mat_patches(shared_file("wv3_patches/train.mat"))
    for key in ("gt", "ms", "lms", "pan"):
        np.testing.assert_array_equal(getattr(patches, key).numpy(), getattr(ref, key)[:6].numpy())
    np.testing.assert_allclose(patches.gt[2, 3, 10, 20].item(), mat["gt"][2, 10, 20, 3] / 2047, rtol=1e-6)


def test_pancollection_scale_and_full_resolution_files(tmp_path):
    rng = np.random.default_rng(0)
    gf2 = {"ms": rng.integers(0, 1024, (3, 4, 16, 16)), "lms": rng.integers(0, 1024, (3, 4, 64, 64)),
           "pan": rng.integers(0, 1024, (3, 1, 64, 64))}
    _write_pancollection(tmp_path / "full_gf2.h5", gf2)
    patches = ds.read_pancollection(tmp_path / "full_gf2.h5")
    assert patches.scale == 1023.0 and patches.gt is None  # 10-bit values, no gt
    assert ds.read_pancollection(tmp_path / "full_gf2.h5", sensor="WV3").scale == 2047.0
    np.testing.assert_allclose(patches.pan.numpy(), gf2["pan"] / 1023.0, rtol=1e-6)


def test_wv3_patch_file_is_split_by_index(wv3):
    train, val = wv3
    assert (len(train), len(val)) == (80, 20)
    mat = loadmat(str(shared_file("wv3_patches/train.mat")))
    np.testing.assert_allclose(val.pan[0, 0].numpy(), mat["pan"][80] / 2047, rtol=1e-6)


# ---------------------------------------------------------------- region split

@pytest.fixture(scope="module")
def ikonos_crop():
    scene = ds.read_mat_pair(shared_file("grip/imgIK.mat"))
    scene.ms, scene.pan = scene.ms[:, :128, :160], scene.pan[:512, :640]
    return scene


def _locate(patch: np.ndarray, ms: np.ndarray) -> tuple[int, int]:
    """Where a ground-truth patch lies in the MS image (exact match search)."""
    size = patch.shape[-1]
    for y in range(0, ms.shape[1] - size + 1, 4):  # patches start on multiples of the ratio
        for x in range(0, ms.shape[2] - size + 1, 4):
            if np.array_equal(ms[:, y:y + size, x:x + size], patch):
                return y, x
    raise AssertionError("patch not found in the scene")


def test_region_split_has_no_validation_pixel_in_training(ikonos_crop):
    scene = ikonos_crop
    train, val = ds.region_split(scene, val_fraction=0.3, patch=64, stride=32)
    cut = ds.split_columns(scene.ms.shape[2], 4, 0.3, 64)
    assert cut == 96 and len(train) == 3 * 2 and len(val) == 2
    ms32 = scene.ms.astype(np.float32) / np.float32(scene.scale)
    train_cols = [_locate(p.numpy(), ms32)[1] for p in train.gt]
    val_cols = [_locate(p.numpy(), ms32)[1] for p in val.gt]
    assert max(train_cols) + 64 <= cut <= min(val_cols)  # no patch straddles the cut
    # nothing in a training patch depends on a validation pixel: change the whole
    # validation region of the scene (PAN and MS), the training patches stay identical
    changed = ds.ScenePair(scene.pan.copy(), scene.ms.copy(), 4, scene.scale, scene.sensor, "")
    changed.ms[:, :, cut:] = 2047 - changed.ms[:, :, cut:]
    changed.pan[:, cut * 4:] = 0
    train2, val2 = ds.region_split(changed, val_fraction=0.3, patch=64, stride=32)
    for key in ("gt", "lms", "ms", "pan"):
        assert torch.equal(getattr(train, key), getattr(train2, key)), key
        assert not torch.equal(getattr(val, key), getattr(val2, key)), key


def test_wald_patches_are_consistent_with_the_protocol(ikonos_crop):
    from diffusion_pansharpening.engine.mtf import wald_degrade

    train, _ = ds.region_split(ikonos_crop, val_fraction=0.3)
    pan_lr, ms_lr = wald_degrade(ikonos_crop.pan[:, :384], ikonos_crop.ms[:, :, :96], 4, "IKONOS")
    # patch (0, 1) starts at row 0, column 32 of the reduced grid (MS column 8)
    np.testing.assert_allclose(train.ms[1].numpy() * 2047, ms_lr[:, :16, 8:24], rtol=1e-5)
    np.testing.assert_allclose(train.pan[1, 0].numpy() * 2047, pan_lr[:64, 32:96], rtol=1e-5)
    # the LMS is close to the ground truth on average, not equal (it lacks detail)
    err = (train.lms - train.gt).abs().mean().item()
    assert 0.003 < err < 0.05


# ---------------------------------------------------------------- augmentation, batches

def test_dihedral_group_has_eight_distinct_invertible_elements():
    x = torch.arange(12.0).view(1, 3, 4)
    images = [ds.dihedral(x, k) for k in range(8)]
    assert len({tuple(im.flatten().tolist()) + tuple(im.shape) for im in images}) == 8
    for k in range(8):
        inverse = [j for j in range(8) if torch.equal(ds.dihedral(images[k], j), x)]
        assert len(inverse) == 1


def test_augmented_batch_transforms_every_array_of_a_patch_alike(wv3):
    train, _ = wv3
    b = train.batch(torch.tensor([3, 5]), torch.tensor([1, 6]))
    for key in ("gt", "lms", "ms", "pan"):
        assert torch.equal(b[key][0], ds.dihedral(getattr(train, key)[3], 1))
        assert torch.equal(b[key][1], ds.dihedral(getattr(train, key)[5], 6))
    # the MS patch stays the decimated neighbourhood of the LMS patch after the transform
    lms_block = torch.nn.functional.avg_pool2d(b["lms"], 4)
    assert torch.corrcoef(torch.stack([lms_block.flatten(), b["ms"].flatten()]))[0, 1] > 0.95


def test_two_processes_together_see_exactly_the_single_process_batch(wv3):
    train, _ = wv3
    single = BatchPlan(train, 8, seed=3, dist=Dist(0, 1))
    ranks = [BatchPlan(train, 8, seed=3, dist=Dist(r, 2)) for r in range(2)]
    for step in (0, 9, 10, 23):  # 10 steps per epoch: crosses epochs
        whole = single(step)
        parts = [p(step) for p in ranks]
        merged = torch.empty_like(whole["gt"])
        merged[0::2], merged[1::2] = parts[0]["gt"], parts[1]["gt"]
        assert torch.equal(merged, whole["gt"])
        noise = torch.empty(8, 2, 3)
        noise[0::2], noise[1::2] = parts[0].randn(2, 3), parts[1].randn(2, 3)
        assert torch.equal(noise, whole.randn(2, 3))
    # each epoch visits every patch once
    seen = torch.cat([single(s).index for s in range(10)])
    assert sorted(seen.tolist()) == list(range(80))


def test_spectral_jitter_scales_each_band_about_the_radiometric_zero(wv3):
    """``spectral_jitter``: one gain per patch and band on gt, LMS and MS alike (about the
    patch's radiometric zero), the PAN untouched, the same gains at the same step."""
    train, _ = wv3
    scened = ds.apply_scene_normalisation(train.subset(slice(0, 16)), kind="scene")
    plain = BatchPlan(scened, 8, seed=3, dist=Dist(0, 1))
    jittered = BatchPlan(scened, 8, seed=3, dist=Dist(0, 1), jitter=0.2)
    a, b = plain(5), jittered(5)
    assert torch.equal(a["pan"], b["pan"])
    zero = b["zero"]
    gains = {key: ((b[key] - zero) / (a[key] - zero)).flatten(2).median(dim=2).values for key in ("gt", "lms", "ms")}
    assert torch.allclose(gains["gt"], gains["lms"], atol=1e-4) and torch.allclose(gains["gt"], gains["ms"], atol=1e-4)
    assert gains["gt"].min() >= np.exp(-0.2) - 1e-4 and gains["gt"].max() <= np.exp(0.2) + 1e-4
    assert gains["gt"].std() > 0.03  # they differ between bands and patches
    assert torch.equal(jittered(5)["gt"], b["gt"]) and not torch.equal(jittered(6)["gt"], plain(6)["gt"])


def test_pan_mix_moves_the_pan_toward_a_band_mix_of_the_truth_and_nothing_else(wv3):
    """``pan_mix``: the PAN of a patch becomes partly a random mix of its truth's bands (with
    the PAN's own mean and spread), the multispectral arrays stay as they were."""
    train, _ = wv3
    plain = BatchPlan(train, 8, seed=3, dist=Dist(0, 1))
    mixed = BatchPlan(train, 8, seed=3, dist=Dist(0, 1), pan_mix=0.8)
    a, b = plain(4), mixed(4)
    for key in ("gt", "lms", "ms"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["pan"], b["pan"])
    torch.testing.assert_close(b["pan"].mean((2, 3)), a["pan"].mean((2, 3)), rtol=0, atol=1e-5)

    # each new PAN is exactly an affine mix of the old PAN and the truth's bands
    for old, new, truth in zip(a["pan"], b["pan"], a["gt"]):
        basis = torch.cat([old.flatten(1), truth.flatten(1), torch.ones(1, old.numel())]).T.double()
        fit = torch.linalg.lstsq(basis, new.flatten().double()[:, None]).solution
        assert (basis @ fit).squeeze(1).sub(new.flatten().double()).abs().max() < 1e-4
        assert 0.2 <= fit[0, 0] <= 1.0  # the PAN keeps at least 1 - pan_mix of itself
    assert torch.equal(mixed(4)["pan"], b["pan"])


# ---------------------------------------------------------------- the loop

def test_warmup_cosine_schedule_values():
    f = warmup_cosine(StageConfig(steps=110, warmup=10, min_lr_ratio=0.1))
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down the cosine
    assert f(110) == pytest.approx(0.1)


def _e2e_stage(seed=0, sam_weight=0.0):
    from diffusion_pansharpening.engine.models.fose import E2ENet, FoseConfig

    torch.manual_seed(seed)
    net = E2ENet(FoseConfig.tiny(bands=8))
    loss = lambda b: fidelity(net(b["pan"], b["lms"], b["ms"]), b, sam_weight)
    return Stage("test-e2e", net, loss, predict=lambda b: net(b["pan"], b["lms"], b["ms"]))


TINY = StageConfig(steps=40, batch=8, lr=3e-3, warmup=4, checkpoint_every=1000, val_batch=10)


def test_loop_lowers_the_loss_and_reports_validation(wv3, tmp_path):
    train, val = wv3
    result = train_stage(_e2e_stage(), train, val, TINY, tmp_path, seed=0, progress=False)
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < 0.8 * first
    v = result.validation
    assert set(v) >= {"SAM", "ERGAS", "Q2n", "SCC"} and v["patches"] == 20
    assert 0 < v["SAM"] < 20 and 0 < v["ERGAS"] < 30 and -1 <= v["Q2n"] <= 1
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,grad_norm,seconds" and len(rows) == 41
    assert (tmp_path / "validation.json").exists() and (tmp_path / CHECKPOINT).exists()


def test_resume_continues_bit_for_bit(wv3, tmp_path):
    train, _ = wv3
    cfg = StageConfig(steps=8, batch=8, lr=3e-3, warmup=2, ema=0.9, checkpoint_every=1000)
    straight = _e2e_stage()
    r1 = train_stage(straight, train, None, cfg, tmp_path / "a", progress=False)
    interrupted = _e2e_stage()
    r2 = train_stage(interrupted, train, None, cfg, tmp_path / "b", stop_after=4, progress=False)
    assert r2.step == 4
    resumed = _e2e_stage(seed=1)  # different init: everything must come from the checkpoint
    r3 = train_stage(resumed, train, None, cfg, tmp_path / "b", resume=True, progress=False)
    assert r2.losses + r3.losses == r1.losses
    for (name, a), (_, b) in zip(straight.module.state_dict().items(),
                                 resumed.module.state_dict().items()):
        assert torch.equal(a, b), name  # EMA weights, copied in at the end
    assert len((tmp_path / "b" / "log.csv").read_text().splitlines()) == 9


def test_checkpoint_of_another_stage_is_refused(wv3, tmp_path):
    train, _ = wv3
    cfg = StageConfig(steps=2, batch=8, warmup=1)
    train_stage(_e2e_stage(), train, None, cfg, tmp_path, progress=False)
    other = _e2e_stage()
    other.name = "another"
    import torch.optim as optim
    opt = optim.AdamW(other.module.parameters())
    with pytest.raises(PansharpenError, match="not a checkpoint of stage another"):
        load_checkpoint(tmp_path / CHECKPOINT, other.module, opt,
                        optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
                        torch.amp.GradScaler("cuda", enabled=False), None, "another")
    with pytest.raises(PansharpenError, match="no checkpoint"):
        train_stage(_e2e_stage(), train, None, cfg, tmp_path / "empty", resume=True)


def test_shipped_configs_load():
    for name in ("tiny", "cpu"):
        config = load_config(name)
        for pipeline, stages in (("fose", 4), ("ksdiff", 2)):
            for s in range(1, stages + 1):
                cfg = stage_settings(config, pipeline, s)
                assert cfg.steps > 0 and cfg.batch > 0
    assert stage_settings(load_config("tiny"), "fose", 1).ema > 0  # diffusion model: EMA


def test_geotiff_pair_becomes_ratio_2_wald_patches(tmp_path):
    """Landsat-8: PAN B8 (15 m) and blue/green/red (30 m) stacked with a VRT."""
    from osgeo import gdal

    bands = [str(shared_file(f"landsat8/l8_B{i}.tif")) for i in (2, 3, 4)]
    gdal.BuildVRT(str(tmp_path / "ms.vrt"), bands, separate=True)
    pan_path = shared_file("landsat8/l8_B8.tif")
    scene = ds.read_geotiff_pair(pan_path, tmp_path / "ms.vrt")
    assert scene.ratio == 2 and scene.ms.shape == (3, 603, 627) and scene.pan.shape == (1206, 1254)
    # MS pixel m is the toolbox's PAN block [2m, 2m + 2): its centre is PAN pixel 2m + 1
    direct = gdal.Open(str(pan_path)).ReadAsArray()[:1206]
    np.testing.assert_array_equal(scene.pan, direct)
    train, val = ds.load_training_data([pan_path, tmp_path / "ms.vrt"], crop=192,
                                       val_fraction=0.34, stride=64)
    assert train.ratio == 2 and train.ms.shape[1:] == (3, 32, 32) and train.gt.shape[1:] == (3, 64, 64)
    assert (len(train), len(val)) == (6, 3)  # 192 x 128 and 192 x 64 MS pixels


def test_cli_refuses_impossible_requests(capsys):
    from diffusion_pansharpening.training.cli import main

    assert main(["train", "fose", "--config", "tiny", "--stage", "5"]) == 2
    assert "fose has stages 1 to 4" in capsys.readouterr().err
    assert main(["all", "--config", "tiny", "--stage", "1"]) == 2
    assert "drop --stage" in capsys.readouterr().err
    assert main(["ksdiff", "--config", "nonexistent", "--stage", "1"]) == 2
    assert "config nonexistent not found" in capsys.readouterr().err
    assert main(["ksdiff", "--config", "tiny", "--stage", "1", "--data", "/no/such.h5"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_auto_resume_starts_afresh_without_a_checkpoint_and_continues_with_one(wv3, tmp_path):
    train, _ = wv3
    cfg = StageConfig(steps=4, batch=8, warmup=1, checkpoint_every=1000)
    plain = train_stage(_e2e_stage(), train, None, cfg, tmp_path / "a", progress=False)
    auto = train_stage(_e2e_stage(), train, None, cfg, tmp_path / "b", resume="auto", progress=False)
    assert auto.losses == plain.losses
    again = train_stage(_e2e_stage(), train, None, cfg, tmp_path / "b", resume="auto", progress=False)
    assert again.step == 4 and again.losses == []  # finished: nothing left to train


# ---------------------------------------------------------------- the spectral-angle term

def test_spectral_angles_are_taken_about_the_patch_radiometric_zero(wv3):
    from diffusion_pansharpening.engine.quality import sam

    train, _ = wv3
    scened = ds.apply_scene_normalisation(train.subset(slice(0, 4)), kind="scene")
    zero = scened.zeros()
    # radiometric 0 maps to the zero, so the patches' own SAM index is the loss's angle
    np.testing.assert_allclose(scened.norm.denormalise_ms(zero.numpy()), 0, atol=1e-6)
    b = scened.batch(torch.arange(4))
    loss_deg = float(spectral_angle(b["lms"], b["gt"], b["zero"])) * 180 / np.pi
    index = np.mean([sam(scened.norm.denormalise_ms(l.numpy()), scened.norm.denormalise_ms(g.numpy()))
                     for l, g in zip(b["lms"], b["gt"])])
    assert abs(loss_deg - index) < 0.05 * index
    # about the normalised origin the angles are different ones
    assert abs(float(spectral_angle(b["lms"], b["gt"])) * 180 / np.pi - index) > 0.2 * index
    # a spectrum scaled about the zero keeps its angle; concat keeps each part's zero
    scaled = zero + 1.7 * (b["gt"] - zero)
    assert float(spectral_angle(scaled, b["gt"], b["zero"])) < 2e-3
    both = ds.concat([train.subset(slice(0, 2)), scened])
    assert torch.equal(both.zeros()[:2], torch.zeros(2, train.bands, 1, 1))
    assert torch.equal(both.zeros()[2:], zero)


def test_the_spectral_angle_term_lowers_the_angle_that_training_reaches(wv3, tmp_path):
    train, val = wv3
    angles = {}
    for weight in (0.0, 1.0):
        stage = _e2e_stage(sam_weight=weight)
        train_stage(stage, train, val, TINY, tmp_path / str(weight), seed=0, progress=False)
        b = val.batch(torch.arange(len(val)))
        with torch.no_grad():
            angles[weight] = float(spectral_angle(stage.predict(b), b["gt"]))
    assert angles[1.0] < angles[0.0]

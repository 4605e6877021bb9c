"""Fose's networks: adaptive convolution, teacher, student, E2E, ensemble, Fose."""
import pytest
import torch
import torch.nn.functional as F

from diffusion_pansharpening.engine.models import build, count_parameters
from diffusion_pansharpening.engine.models.blocks import (
    AdaptiveConv2d, AdaptiveResBlock, assignment_logits, pad_to_multiple)
from diffusion_pansharpening.engine.models.fose import (
    E2ENet, EnsembleBlocks, Fose, FoseConfig, OneStepStudent, ResidualDenoiser)

torch.set_num_threads(1)


def inputs(n=2, bands=4, h=32, w=32, ratio=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pan = torch.rand(n, 1, h, w, generator=g)
    ms = torch.rand(n, bands, h // ratio, w // ratio, generator=g)
    lms = F.interpolate(ms, size=(h, w), mode="bilinear", align_corners=False)
    return pan, lms, ms


def perturb(model, scale=0.05, seed=0):
    """Move zero-initialised layers off zero so every parameter takes part in the graph."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def assert_all_grads(model, skip=()):
    bad = []
    for name, p in model.named_parameters():
        if any(name.startswith(s) for s in skip):
            continue
        if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().max() == 0:
            bad.append(name)
    assert not bad, f"parameters without a finite non-zero gradient: {bad}"


# ---------------------------------------------------------------- adaptive conv
def test_adaptive_conv_starts_as_the_plain_conv_with_the_mean_kernel():
    conv = AdaptiveConv2d(3, 5, guide_channels=2, kernels=2)
    x, guide = torch.randn(2, 3, 9, 11), torch.randn(2, 2, 9, 11)
    w = conv.basis.weight.view(2, 5, 3, 3, 3).mean(0)
    b = conv.basis.bias.view(2, 5).mean(0)
    torch.testing.assert_close(conv(x, conv.assign(guide)), F.conv2d(x, w, b, padding=1))


@pytest.mark.parametrize("kernels", [2, 3])
def test_adaptive_conv_applies_the_per_pixel_mixture_of_kernels(kernels):
    """M = 2 takes the sigmoid/lerp form, other M the softmax: both are the mixture."""
    conv = AdaptiveConv2d(2, 3, guide_channels=1, kernels=kernels)
    with torch.no_grad():
        conv.assign.weight.normal_()
    x, guide = torch.randn(1, 2, 6, 7), torch.randn(1, 1, 6, 7)
    a = torch.softmax(conv.assign(guide), dim=1)  # (1, M, H, W)
    w, b = conv.basis.weight.view(kernels, 3, 2, 3, 3), conv.basis.bias.view(kernels, 3)
    expected = sum(a[:, m:m + 1] * F.conv2d(x, w[m], b[m], padding=1) for m in range(kernels))
    torch.testing.assert_close(conv(x, conv.assign(guide)), expected)
    # the kernel depends on the content: another guide gives another output
    assert (conv(x, conv.assign(guide)) - conv(x, conv.assign(-guide))).abs().max() > 1e-4


def test_one_stacked_convolution_gives_every_blocks_own_assignment_logits():
    blocks = [AdaptiveResBlock(4, 3) for _ in range(3)]
    perturb(torch.nn.ModuleList(blocks))
    guide = torch.randn(2, 3, 8, 9)
    stacked = assignment_logits(blocks, guide)
    assert len(stacked) == 3
    for block, (l1, l2) in zip(blocks, stacked):
        torch.testing.assert_close(l1, block.conv1.assign(guide))
        torch.testing.assert_close(l2, block.conv2.assign(guide))


def test_pad_to_multiple_reflects_and_keeps_the_original():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).view(1, 2, 5, 7)
    y, size = pad_to_multiple(x, 4)
    assert y.shape == (1, 2, 8, 8) and size == (5, 7)
    assert torch.equal(y[..., :5, :7], x)
    assert torch.equal(y[..., 5, :7], x[..., 3, :])  # reflection of row 3 about row 4


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("arch", ["fose", "dm1", "dm50", "e2e"])
@pytest.mark.parametrize("size", [(32, 32), (36, 44)])
def test_output_shape_for_any_multiple_of_the_ratio(arch, size):
    model = build(arch, "tiny").eval()
    pan, lms, ms = inputs(h=size[0], w=size[1])
    kwargs = {"steps": 3} if arch == "dm50" else {}
    with torch.no_grad():
        out = model(pan, lms, ms, **kwargs)
    assert out.shape == lms.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["fose", "dm50", "ksdiff"])
def test_default_u_nets_pad_sizes_that_are_not_their_multiple(arch):
    model = build(arch).eval()  # 3-level (fose) / 2-level (ksdiff) U-Nets; 22 x 26 at ratio 2
    pan, lms, ms = inputs(n=1, h=22, w=26, ratio=2)
    kwargs = {"steps": 2} if arch == "dm50" else {}
    with torch.no_grad():
        out = model(pan, lms, ms, **kwargs)
    assert out.shape == (1, 4, 22, 26) and torch.isfinite(out).all()


def test_eight_bands_and_ratio_two():
    model = build("fose", "tiny", bands=8).eval()
    pan, lms, ms = inputs(n=1, bands=8, h=20, w=26, ratio=2)
    with torch.no_grad():
        assert model(pan, lms, ms).shape == (1, 8, 20, 26)


def test_tiny_configs_are_a_few_thousand_parameters():
    for arch in ("fose", "dm1", "dm50", "e2e"):
        assert 500 < count_parameters(build(arch, "tiny")) < 10_000


# ---------------------------------------------------------------- gradients
def test_teacher_training_step_reaches_every_parameter():
    model = ResidualDenoiser(FoseConfig.tiny())
    perturb(model)
    pan, lms, ms = inputs()
    x0 = torch.randn_like(lms)
    t = torch.tensor([10, 900])
    noise = torch.randn_like(lms)
    x_t = model.diffusion.q_sample(x0, t, noise)
    pred, _ = model.denoise(x_t, t, model.condition(pan, lms, ms))
    F.l1_loss(pred, x0).backward()
    assert_all_grads(model)


def test_fose_loss_reaches_every_parameter_of_its_three_parts():
    model = Fose(FoseConfig.tiny())
    perturb(model)
    pan, lms, ms = inputs()
    out = model(pan, lms, ms, generator=torch.Generator().manual_seed(0))
    F.l1_loss(out, lms + 0.01).backward()
    assert_all_grads(model)


def test_freshly_initialised_zero_layers_still_receive_gradients():
    """Stage 4 starts from zero-initialised ensemble output; it must be trainable."""
    model = Fose(FoseConfig.tiny())
    pan, lms, ms = inputs()
    F.l1_loss(model(pan, lms, ms, noise=torch.randn_like(lms)), lms + 0.01).backward()
    g = model.ensemble.out.weight.grad
    assert g is not None and g.abs().max() > 0


# ---------------------------------------------------------------- behaviour
def test_student_from_teacher_equals_the_teachers_one_step_sampling():
    teacher = ResidualDenoiser(FoseConfig.tiny())
    perturb(teacher)
    student = OneStepStudent.from_teacher(teacher)
    pan, lms, ms = inputs()
    noise = torch.randn_like(lms)
    with torch.no_grad():
        torch.testing.assert_close(student(pan, lms, ms, noise=noise),
                                   teacher(pan, lms, ms, steps=1, noise=noise))


def test_teacher_sampling_is_seeded_and_uses_the_steps():
    teacher = ResidualDenoiser(FoseConfig.tiny())
    perturb(teacher)
    pan, lms, ms = inputs(n=1)
    with torch.no_grad():
        run = lambda seed, steps=5: teacher(pan, lms, ms, steps=steps, generator=torch.Generator().manual_seed(seed))
        a, b, c, d = run(0), run(0), run(1), run(0, steps=6)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-6
    assert (a - d).abs().max() > 1e-6


def test_ensemble_starts_as_the_average_of_the_two_predictions():
    cfg = FoseConfig.tiny()
    ens = EnsembleBlocks(cfg)
    pan, lms, _ = inputs()
    r1, r2 = torch.randn_like(lms) * 0.01, torch.randn_like(lms) * 0.01
    f1, f2 = torch.randn(2, cfg.widths[0], 32, 32), torch.randn(2, cfg.e2e_width, 32, 32)
    torch.testing.assert_close(ens(r1, r2, f1, f2, pan, lms), (r1 + r2) / 2)


def test_fose_combines_its_parts():
    model = Fose(FoseConfig.tiny())
    perturb(model)
    pan, lms, ms = inputs()
    noise = torch.randn_like(lms)
    with torch.no_grad():
        r1, f1 = model.student.predict(pan, lms, ms, noise=noise)
        r2, f2 = model.e2e.predict(pan, lms, ms)
        expected = lms + model.ensemble(r1, r2, f1, f2, pan, lms)
        torch.testing.assert_close(model(pan, lms, ms, noise=noise), expected)
        assert torch.equal(model.e2e(pan, lms, ms), lms + r2)


@pytest.mark.parametrize("arch", ["e2e", "dm1", "fose"])
def test_output_is_local_within_the_measured_halo(arch):
    """A crop with halo pixels of context gives the same centre as the whole image
    (the noise of dm1/fose is cropped with the image), so tiling with ``halo`` is exact."""
    from diffusion_pansharpening.engine.models import measure_halo

    model = build(arch, "tiny").eval()
    perturb(model)
    halo = measure_halo(model, 4, 4)
    assert 4 <= halo <= 40
    pan, lms, ms = inputs(n=1, h=128, w=128)
    noise = torch.randn_like(lms)
    o = 4 * ((halo + 3) // 4)  # crop offset: a multiple of the ratio and of the U-Net's 2**levels
    kw = (lambda sl: {}) if arch == "e2e" else (lambda sl: {"noise": noise[sl]})
    whole, inner = (..., slice(None), slice(None)), (..., slice(o, -o), slice(o, -o))
    with torch.no_grad():
        full = model(pan, lms, ms, **kw(whole))
        part = model(pan[inner], lms[inner], ms[..., o // 4:-o // 4, o // 4:-o // 4], **kw(inner))
    torch.testing.assert_close(part[..., o:-o, o:-o], full[..., 2 * o:-2 * o, 2 * o:-2 * o])
    # and the halo is not grossly overestimated: a margin of halo / 2 is not enough
    m = 4 * max(1, (halo // 2) // 4)
    assert m < halo
    assert (part[..., m:-m, m:-m] - full[..., o + m:-(o + m), o + m:-(o + m)]).abs().max() > 1e-6


def test_default_fose_costs_less_than_a_seventh_of_fifty_teacher_steps():
    """The paper's speed claim (>= 7.42x) as a property of the default sizes, counted in
    FLOPs so that it does not depend on the machine's load."""
    from torch.utils.flop_counter import FlopCounterMode

    pan, lms, ms = inputs(n=1, h=64, w=64)

    def flops(fn):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    fose, teacher = build("fose").eval(), build("dm50").eval()
    dm50 = flops(lambda: teacher(pan, lms, ms, steps=50))
    assert dm50 / flops(lambda: fose(pan, lms, ms)) >= 7.42
    assert dm50 / flops(lambda: build("ksdiff").eval()(pan, lms, ms)) >= 7.42

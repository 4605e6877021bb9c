"""KSDiff: Tucker kernel generator, PLFE, latent denoiser, modulated backbone, model."""
import pytest
import torch
import torch.nn.functional as F

from diffusion_pansharpening.engine.models import build, count_parameters
from diffusion_pansharpening.engine.models.ksdiff import (
    PLFE, FusionGate, KernelGenerator, KSDiff, KSDiffConfig, LinearCrossAttention, ModulatedConv2d,
    tucker_product)
from test_models_fose import assert_all_grads, inputs, perturb

torch.set_num_threads(1)


def mode_product(tensor, matrix, mode):
    """Explicit n-mode product T x_n U (Kolda & Bader 2009): contract T's mode n with U's columns."""
    moved = torch.movedim(tensor, mode, 0)  # (r_n, ...)
    out = torch.tensordot(matrix, moved, dims=([1], [0]))  # (I_n, ...)
    return torch.movedim(out, 0, mode)


def explicit_tucker(core, factors):
    w = core
    for mode, u in enumerate(factors):
        w = mode_product(w, u, mode)
    return w


def test_tucker_product_equals_explicit_mode_products():
    g = torch.Generator().manual_seed(0)
    core = torch.randn(2, 4, 4, 2, 2, generator=g, dtype=torch.float64)
    us = [torch.randn(2, n, r, generator=g, dtype=torch.float64) for n, r in ((6, 4), (5, 4), (3, 2), (3, 2))]
    w = tucker_product(core, *us)
    assert w.shape == (2, 6, 5, 3, 3)
    for i in range(2):
        torch.testing.assert_close(w[i], explicit_tucker(core[i], [u[i] for u in us]))
    # one entry by the defining sum, with plain loops
    total = 0.0
    for a in range(4):
        for b in range(4):
            for c in range(2):
                for d in range(2):
                    total += core[1, a, b, c, d] * us[0][1, 5, a] * us[1][1, 2, b] * us[2][1, 0, c] * us[3][1, 2, d]
    torch.testing.assert_close(w[1, 5, 2, 0, 2], total)


def test_generated_kernels_are_the_mode_products_of_core_and_factors():
    cfg = KSDiffConfig.tiny()
    gen = KernelGenerator(cfg, [(6, 5), (8, 8)])
    perturb(gen, scale=0.3)
    gen.double()  # float64 so that the comparison is exact up to round-off
    pan, lms, _ = (t.double() for t in inputs(n=2, h=32, w=32))
    z = torch.randn(2, cfg.latent_grid ** 2, cfg.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        kernels = gen(z, pan, lms)
        cores, factors = gen.cores(z), gen.factors(pan, lms)
    assert [k.shape for k in kernels] == [(2, 6, 5, 3, 3), (2, 8, 8, 3, 3)]
    assert cores.shape == (2, 2, 4, 4, 2, 2)  # default rank (4, 4, 2, 2)
    for layer, kernel in enumerate(kernels):
        for n in range(2):
            explicit = explicit_tucker(cores[n, layer], [factors[m][layer][n] for m in range(4)])
            torch.testing.assert_close(kernel[n], explicit, rtol=1e-10, atol=1e-12)
        # multilinear rank is bounded by the core rank: mode-1 unfolding rank <= 4, mode-3 <= 2
        k8 = kernel[0]
        assert torch.linalg.matrix_rank(k8.reshape(k8.shape[0], -1), rtol=1e-9) <= 4
        assert torch.linalg.matrix_rank(k8.movedim(2, 0).reshape(3, -1), rtol=1e-9) <= 2


def test_linear_cross_attention_is_a_normalised_quadratic_attention():
    attn = LinearCrossAttention(6)
    x, y = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)
    q = torch.softmax(attn.q(x).flatten(2), dim=1)  # (n, d, L)
    k, v = attn.kv(y).flatten(2).chunk(2, dim=1)
    k = torch.softmax(k, dim=2)
    a = q.transpose(1, 2) @ k  # (n, L, L): the implied attention matrix
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 35))  # rows are distributions
    explicit = attn.out((v @ a.transpose(1, 2)).view(2, 6, 5, 7))
    torch.testing.assert_close(attn(x, y), explicit, rtol=1e-5, atol=1e-6)


def test_fusion_gate_formula():
    gate = FusionGate(3)
    x, y, o = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    p = gate.proj(y)
    g = torch.sigmoid(gate.gate(torch.cat([x, p], 1)))
    torch.testing.assert_close(gate(x, y, o), g * x + (1 - g) * p + o)


def test_plfe_tokens_have_a_fixed_size_and_unit_scale():
    plfe = PLFE(1, 4, width=4, levels=3, grid=4, latent_dim=8)
    for h, w in ((32, 32), (36, 44)):
        z = plfe(torch.rand(2, 1, h, w), torch.rand(2, 4, h, w))
        assert z.shape == (2, 16, 8)
        torch.testing.assert_close(z.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)


def test_modulated_conv_is_the_per_sample_conv_with_w0_times_one_plus_w():
    conv = ModulatedConv2d(3, 4, 3, offset=1.0)
    x, kernel = torch.randn(2, 3, 6, 5), torch.randn(2, 4, 3, 3, 3)
    out = conv(x, kernel)
    for n in range(2):
        expected = F.conv2d(x[n:n + 1], conv.weight * (1 + kernel[n]), conv.bias, padding=1)
        torch.testing.assert_close(out[n:n + 1], expected, rtol=1e-5, atol=1e-6)
    literal = ModulatedConv2d(3, 4, 3, offset=0.0)  # the paper's W1 = W0 (.) W
    literal.load_state_dict(conv.state_dict())
    torch.testing.assert_close(literal(x, kernel)[:1], F.conv2d(x[:1], conv.weight * kernel[0], conv.bias, padding=1),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(32, 32), (36, 44)])
def test_ksdiff_shapes_in_both_modes(size):
    model = build("ksdiff", "tiny").eval()
    pan, lms, ms = inputs(h=size[0], w=size[1])
    with torch.no_grad():
        assert model(pan, lms, ms).shape == lms.shape
        assert model(pan, lms, ms, hrms=lms + 0.01).shape == lms.shape


def test_default_config_and_tiny_config_sizes():
    assert count_parameters(build("ksdiff", "tiny")) < 10_000
    model = build("ksdiff")
    assert model.kernel_generator.rank == (4, 4, 2, 2)
    assert model.config.sample_steps == 4
    assert model.plfe2.stem_x.out_channels == model.plfe1.stem_x.out_channels // 2  # half width


def test_stage1_loss_reaches_plfe1_kernel_generator_and_backbone():
    model = KSDiff(KSDiffConfig.tiny())
    perturb(model)
    pan, lms, ms = inputs()
    hrms = lms + 0.02 * torch.randn_like(lms)
    F.l1_loss(model(pan, lms, ms, hrms=hrms), hrms).backward()
    assert_all_grads(model, skip=("plfe2", "denoiser"))
    assert all(p.grad is None for p in model.denoiser.parameters())


def test_stage2_loss_reaches_the_denoiser_and_plfe2():
    model = KSDiff(KSDiffConfig.tiny())
    perturb(model)
    pan, lms, ms = inputs()
    hrms = lms + 0.02 * torch.randn_like(lms)
    with torch.no_grad():
        z0 = model.encode_prior(pan, lms, hrms)
    t = torch.tensor([3, 700])
    z_t = model.diffusion.q_sample(z0, t, torch.randn_like(z0))
    z0_hat = model.denoise(z_t, t, model.condition(pan, lms))
    loss = F.l1_loss(z0_hat, z0) + F.l1_loss(model.reconstruct(pan, lms, z0_hat), hrms)
    loss.backward()
    assert_all_grads(model.denoiser)
    assert_all_grads(model.plfe2)


def test_ksdiff_inference_is_seeded_and_the_prior_matters():
    model = KSDiff(KSDiffConfig.tiny()).eval()
    perturb(model, scale=0.2)
    pan, lms, ms = inputs(n=1)
    with torch.no_grad():
        run = lambda seed: model(pan, lms, ms, generator=torch.Generator().manual_seed(seed))
        a, b, c = run(0), run(0), run(5)
        assert torch.equal(a, b)
        assert (a - c).abs().max() > 1e-6  # another noise -> another prior -> other kernels
        z = torch.randn(model.latent_shape(1))
        assert (model.reconstruct(pan, lms, z) - model.reconstruct(pan, lms, 2 * z)).abs().max() > 1e-6


def test_untrained_generator_leaves_the_base_kernels():
    """Zero-initialised core: W = 0, so W1 = W0 and the output does not depend on z."""
    model = KSDiff(KSDiffConfig.tiny()).eval()
    pan, lms, _ = inputs(n=1)
    with torch.no_grad():
        z1, z2 = torch.randn(model.latent_shape(1)), torch.randn(model.latent_shape(1))
        torch.testing.assert_close(model.reconstruct(pan, lms, z1), model.reconstruct(pan, lms, z2))

"""The shared diffusion parts: cosine schedule, q_sample, DDIM, timestep embedding."""
import math

import pytest
import torch

from diffusion_pansharpening.engine.models.diffusion import (
    CosineDiffusion, cosine_alphas_cumprod, timestep_embedding)
from diffusion_pansharpening.engine.models.samplers import DDIMSampler, ddim_timesteps

torch.set_num_threads(1)


def test_cosine_schedule_endpoints_and_shape():
    ab = cosine_alphas_cumprod(1000)
    assert ab.shape == (1000,) and ab.dtype == torch.float64
    # Nichol & Dhariwal eq. 17 at t = 1: f(1/T) / f(0)
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    assert ab[0].item() == pytest.approx(f(1 / 1000) / f(0), rel=1e-12)
    assert 0.9999 < ab[0].item() < 1
    assert ab[-1].item() < 1e-6  # pure noise at t = T
    assert torch.all(ab[1:] < ab[:-1])  # strictly decreasing
    # the middle of the schedule follows the closed form (no clipping there)
    assert ab[499].item() == pytest.approx(f(500 / 1000) / f(0), rel=1e-9)
    betas = 1 - ab[1:] / ab[:-1]
    assert betas.max().item() <= 0.999 + 1e-12


def test_q_sample_matches_the_closed_form():
    diff = CosineDiffusion()
    x0 = torch.randn(3, 2, 4, 4)
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 500, 999])
    xt = diff.q_sample(x0, t, noise)
    for i, ti in enumerate(t):
        ab = diff.alphas_cumprod[ti].item()
        torch.testing.assert_close(xt[i], math.sqrt(ab) * x0[i] + math.sqrt(1 - ab) * noise[i])


def test_ddim_timesteps():
    assert ddim_timesteps(1) == [999]
    assert ddim_timesteps(2) == [999, 0]
    steps = ddim_timesteps(50)
    assert len(steps) == 50 and steps[0] == 999 and steps[-1] == 0
    assert all(a > b for a, b in zip(steps, steps[1:]))
    assert ddim_timesteps(1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError):
        ddim_timesteps(0)


@pytest.mark.parametrize("steps", [1000, 7])
def test_ddim_with_a_perfect_x0_predictor_returns_x0(steps):
    diff = CosineDiffusion()
    x0 = torch.randn(2, 3, 5, 5)
    out = DDIMSampler(diff).sample(lambda x, t: x0, x0.shape, steps, torch.Generator().manual_seed(3))
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


def _toy_predictor(x, t):
    """A non-trivial x0 predictor that depends on x_t and t."""
    return torch.tanh(x) * (1 + t.float().view(-1, 1, 1, 1) / 1000)


def test_ddim_is_deterministic_for_a_seed():
    diff = CosineDiffusion()
    run = lambda seed: DDIMSampler(diff).sample(_toy_predictor, (2, 3, 8, 8), 10, torch.Generator().manual_seed(seed))
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_ddim_one_step_is_the_prediction_at_T_minus_1():
    diff = CosineDiffusion()
    noise = torch.randn(1, 2, 4, 4)
    out = DDIMSampler(diff).sample(_toy_predictor, noise.shape, 1, noise=noise)
    torch.testing.assert_close(out, _toy_predictor(noise, torch.tensor([999])))


def test_ddim_step_inverts_q_sample_for_the_true_x0_and_eps():
    diff = CosineDiffusion()
    x0, eps = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    x_t = diff.q_sample(x0, torch.tensor([700]), eps)
    x_prev = DDIMSampler(diff).step(x_t, x0, 700, 300)
    torch.testing.assert_close(x_prev, diff.q_sample(x0, torch.tensor([300]), eps))


def test_timestep_embedding():
    emb = timestep_embedding(torch.tensor([0, 10, 999]), 9)
    assert emb.shape == (3, 9)
    # at t = 0: cos terms are 1, sin terms 0, odd padding 0
    torch.testing.assert_close(emb[0, :4], torch.ones(4))
    torch.testing.assert_close(emb[0, 4:], torch.zeros(5))
    assert not torch.allclose(emb[1], emb[2])

"""Shared diffusion parts: the cosine schedule and forward noising (the DDIM sampler is in
:mod:`.samplers`, apart from the denoisers as in diffusers).

Both methods use the same machinery: Fose's teacher diffuses the residual image
HRMS - LMS, KSDiff diffuses a small latent prior z. Everything here is written for
"x0 prediction" (the network returns the clean sample, docs/design.md).

References
- Cosine schedule: Nichol & Dhariwal, "Improved DDPM" (2021), eq. 17:
  alpha_bar(t) = f(t) / f(0), f(t) = cos(((t/T + s) / (1 + s)) * pi/2)^2, s = 0.008,
  beta_t = 1 - alpha_bar(t) / alpha_bar(t-1) clipped to at most 0.999.
- Forward process: q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).
- DDIM (Song et al. 2021, eq. 12) with eta = 0, written with the predicted x0:
  eps_hat = (x_t - sqrt(ab_t) x0_hat) / sqrt(1 - ab_t),
  x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps_hat.
- Sinusoidal timestep embedding: Vaswani et al. (2017) / Ho et al. (2020).

Project choices (the papers are silent):
- DDIM timesteps are ``round(linspace(T-1, 0, steps))``: the first step always starts
  from pure noise at t = T-1 and the last one lands on t = 0, then returns x0_hat
  (ab_prev = 1 after the last step). One step is therefore "x0_hat(x_T, T-1)".
- Randomness only comes from a caller-given ``torch.Generator`` on the CPU; the noise
  is drawn on the CPU and moved to the device, so a seed gives the same noise on CPU
  and CUDA.
- The sampler's arithmetic is float32 even when the network runs under float16
  autocast (the square roots of ab near 0 and 1 are where half precision hurts).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

DEFAULT_TIMESTEPS = 1000
COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal eq. 17
MAX_BETA = 0.999  # their clipping of beta_t, prevents a singularity at t = T


def cosine_alphas_cumprod(timesteps: int = DEFAULT_TIMESTEPS, s: float = COSINE_OFFSET) -> torch.Tensor:
    """alpha_bar_t for t = 1..T (index 0..T-1) of the cosine schedule, float64.

    Built from the clipped betas as in the paper, so alpha_bar is the cumulative
    product of (1 - beta_t) and decreases strictly from ~1 to ~0. Always on the CPU, also
    where a model is built on the ``meta`` device (``runtime._skeleton``, which checks a
    weights file): there the meta kernels took 1.3-1.9 s of every model load (issue 18).
    """
    steps = torch.arange(timesteps + 1, dtype=torch.float64, device="cpu") / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = torch.clamp(1 - f[1:] / f[:-1], max=MAX_BETA)
    return torch.cumprod(1 - betas, dim=0)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (N,) -> (N, dim) float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


def seeded_noise(shape: Sequence[int], generator: Optional[torch.Generator], device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise drawn on the CPU (reproducible across devices)."""
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32).to(device)


class CosineDiffusion:
    """The noise schedule and the forward process q_sample (training); sampling is
    :class:`.samplers.DDIMSampler`'s."""

    def __init__(self, timesteps: int = DEFAULT_TIMESTEPS):
        self.timesteps = timesteps
        self.alphas_cumprod = cosine_alphas_cumprod(timesteps)

    def _ab(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod.to(like.device)[t.to(like.device)].float()
        return ab.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x0) with the given noise (t: (N,) long)."""
        ab = self._ab(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

"""Samplers, apart from the denoisers (as diffusers keeps schedulers apart from models).

A denoiser is a function ``x0_hat = model_fn(x_t, t)`` (x0 prediction, ``t`` a (N,)
long tensor); a sampler turns it and a noise schedule (:class:`.diffusion.CosineDiffusion`)
into a sample. Both methods use the one DDIM sampler: Fose's teacher over the residual
image, KSDiff over its latent prior.

Paper fact: DDIM (Song et al. 2021, eq. 12) with eta = 0, written with the predicted x0:
eps_hat = (x_t - sqrt(ab_t) x0_hat) / sqrt(1 - ab_t), x_prev = sqrt(ab_prev) x0_hat +
sqrt(1 - ab_prev) eps_hat. Project choices: the timesteps and float32 arithmetic of
:mod:`.diffusion`'s module doc.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch

from .diffusion import DEFAULT_TIMESTEPS, CosineDiffusion, seeded_noise

# model_fn(x_t, t) -> x0_hat, where t is a (N,) long tensor of timesteps.
X0Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddim_timesteps(steps: int, timesteps: int = DEFAULT_TIMESTEPS) -> list[int]:
    """Descending timesteps visited by a DDIM sampler with ``steps`` evaluations."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"DDIM steps must be between 1 and {timesteps}, got {steps}")
    grid = torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64).round().long()
    return [int(v) for v in grid]


class DDIMSampler:
    """Deterministic DDIM (eta = 0) over a schedule's alpha_bar."""

    def __init__(self, schedule: CosineDiffusion):
        self.schedule = schedule

    def step(self, x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, t_prev: Optional[int]) -> torch.Tensor:
        """One update from t to t_prev (None = the clean sample)."""
        if t_prev is None:
            return x0_hat
        ab_t = float(self.schedule.alphas_cumprod[t])
        ab_prev = float(self.schedule.alphas_cumprod[t_prev])
        eps_hat = (x_t - math.sqrt(ab_t) * x0_hat) / math.sqrt(1 - ab_t)
        return math.sqrt(ab_prev) * x0_hat + math.sqrt(1 - ab_prev) * eps_hat

    def sample(
        self,
        model_fn: X0Predictor,
        shape: Sequence[int],
        steps: int,
        generator: Optional[torch.Generator] = None,
        device: torch.device | str = "cpu",
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Sample with ``steps`` network evaluations from x_T (``noise``, else seeded noise)."""
        x = noise.float().to(device) if noise is not None else seeded_noise(shape, generator, device)
        schedule = ddim_timesteps(steps, self.schedule.timesteps)
        for i, t in enumerate(schedule):
            t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            x0_hat = model_fn(x, t_batch).float()
            t_prev = schedule[i + 1] if i + 1 < len(schedule) else None
            x = self.step(x, x0_hat, t, t_prev)
        return x

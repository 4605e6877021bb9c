"""Fose (arXiv 2512.17202): one-step diffusion fused with an end-to-end network.

All the pieces of the four training stages live here (docs/design.md, Fose):

- stage 1 trains :class:`ResidualDenoiser` (``dm50``, the teacher): x0-prediction
  denoiser of the residual r = HRMS - LMS, cosine schedule, T = 1000, sampled with
  50 DDIM steps;
- stage 2 trains :class:`OneStepStudent` (``dm1``), initialised from the teacher
  (:meth:`OneStepStudent.from_teacher`), to map (x_T, condition) to the teacher's
  50-step output in one evaluation at the fixed time t = T-1;
- stage 3 trains :class:`E2ENet` (``e2e``), a light residual CNN;
- stage 4 freezes the student and the E2E net and trains :class:`EnsembleBlocks`;
  :class:`Fose` (``fose``) is the inference model: one student step + one E2E pass +
  the ensemble blocks.

Paper facts: residual diffusion with 50 steps, distillation to one step, fusion with an
E2E net through lightweight ensemble blocks, four stages, 7.42x faster than the teacher.
Everything else is a project choice, named where it is made:
- the teacher is a small U-Net (``widths`` per level, ``blocks`` residual blocks per
  level; (6, 12, 24) by default, about 88k parameters: half the channels of round 1's
  (12, 24, 48) cost the student a quarter of the FLOPs and bring fose from 2.5x to 1.7x
  e2e's time, while fose's held-out Q2n moved by at most 0.0009; docs/performance.md,
  "A narrower U-Net") whose blocks are :class:`~.blocks.AdaptiveConv2d` guided by condition
  features of PAN + LMS (+ MS on its own grid, nearest-upsampled), with FiLM time
  conditioning; the condition features and the adaptive convolutions' assignments
  (:class:`Condition`) are computed once per image and reused by all 50 steps (they
  do not depend on x_t);
- the diffusion runs on ``residual_scale * r`` (default 10): residuals of [0, 1]-scaled
  imagery are small (standard deviation 0.032 on the GRIP IKONOS MS and 0.058 on the
  WorldView-2 MS, measured against a 4x average-pool + bicubic degradation), far below
  the unit noise; the scale brings them to a few tenths so that the noise levels of
  the cosine schedule mean what they say;
- the student's noise x_T is drawn from a seeded generator (default seed 0), so Fose's
  output is deterministic; with tiled inference each tile draws its own noise from
  that seed (the student's output depends little on x_T after distillation, and tile
  seams are blended by the engine);
- the ensemble output is r = m * r_dm1 + (1 - m) * r_e2e + d, with a per-pixel,
  per-band mix m = sigmoid(.) and a correction d, predicted from both residuals, both
  nets' last features, PAN and LMS; its last convolution is zero-initialised so stage 4
  starts from the plain average of the two predictions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .blocks import AdaptiveResBlock, Upsample, assignment_logits, conv3x3, crop, pad_to_multiple, upsample_to
from .diffusion import CosineDiffusion, seeded_noise, timestep_embedding
from .samplers import DDIMSampler


@dataclass
class FoseConfig:
    """Sizes of all Fose networks (one config describes fose, dm1, dm50 and e2e)."""

    bands: int = 4
    widths: tuple = (6, 12, 24)  # teacher/student U-Net channels per level (module doc)
    blocks: tuple = (1, 1, 2)  # adaptive residual blocks per level (encoder side)
    time_dim: int = 64
    adaptive_kernels: int = 2  # M basis kernels per adaptive conv
    e2e_width: int = 12
    e2e_blocks: int = 3
    ensemble_width: int = 8
    ensemble_blocks: int = 1
    timesteps: int = 1000
    sample_steps: int = 50  # the teacher's DDIM steps (dm50)
    residual_scale: float = 10.0
    seed: int = 0

    @classmethod
    def tiny(cls, bands: int = 4) -> "FoseConfig":
        """A few thousand parameters, for tests."""
        return cls(bands=bands, widths=(4, 8), blocks=(1, 1), time_dim=8, e2e_width=4,
                   e2e_blocks=1, ensemble_width=4, ensemble_blocks=1, sample_steps=50)


class ConditionEncoder(nn.Module):
    """PAN + LMS (PAN grid) and MS (its own grid) -> guide features at every U-Net level."""

    def __init__(self, bands: int, widths: tuple):
        super().__init__()
        self.full = conv3x3(1 + bands, widths[0])
        self.ms = conv3x3(bands, widths[0])
        self.downs = nn.ModuleList(conv3x3(a, b, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.act = nn.SiLU()
        self.multiple = 2 ** (len(widths) - 1)

    def forward(self, pan: torch.Tensor, lms: torch.Tensor, ms: torch.Tensor) -> list[torch.Tensor]:
        g = self.full(torch.cat([pan, lms], 1)) + upsample_to(self.ms(ms), pan.shape[-2:])
        g, _ = pad_to_multiple(self.act(g), self.multiple)
        guides = [g]
        for down in self.downs:
            guides.append(self.act(down(guides[-1])))
        return guides


@dataclass
class Condition:
    """What the teacher's U-Net takes from PAN, LMS and MS, once per image: the guide
    features of the first level and every block's assignment logits."""

    features: torch.Tensor
    encoder: list  # per level, per block: (conv1, conv2) logits
    decoder: list  # per level: (conv1, conv2) logits


class ResidualDenoiser(nn.Module):
    """``dm50``: the teacher. x0-prediction U-Net over the scaled residual (stage 1)."""

    def __init__(self, config: FoseConfig):
        super().__init__()
        self.config = config
        w, b, bands = config.widths, config.blocks, config.bands
        self.diffusion = CosineDiffusion(config.timesteps)
        self.sampler = DDIMSampler(self.diffusion)
        self.condition_encoder = ConditionEncoder(bands, w)
        self.time_mlp = nn.Sequential(nn.Linear(config.time_dim, config.time_dim), nn.SiLU(),
                                      nn.Linear(config.time_dim, config.time_dim))
        g = config.adaptive_kernels
        self.inp = conv3x3(bands, w[0])
        self.encoder = nn.ModuleList(
            nn.ModuleList(AdaptiveResBlock(w[l], w[l], config.time_dim, g) for _ in range(b[l]))
            for l in range(len(w)))
        self.downs = nn.ModuleList(conv3x3(w[l], w[l + 1], stride=2) for l in range(len(w) - 1))
        self.ups = nn.ModuleList(Upsample(w[l + 1], w[l]) for l in range(len(w) - 1))
        self.decoder = nn.ModuleList(AdaptiveResBlock(w[l], w[l], config.time_dim, g) for l in range(len(w) - 1))
        self.out = conv3x3(w[0], bands)
        self.act = nn.SiLU()

    def condition(self, pan: torch.Tensor, lms: torch.Tensor, ms: torch.Tensor) -> Condition:
        """The condition, computed once per image and reused per step: guide features and
        the logits of all blocks a level's guide steers (one convolution per level)."""
        guides = self.condition_encoder(pan, lms, ms)
        encoder, decoder = [], []
        for level, blocks in enumerate(self.encoder):
            steered = list(blocks) + ([self.decoder[level]] if level < len(self.decoder) else [])
            logits = assignment_logits(steered, guides[level])
            encoder.append(logits[:len(blocks)])
            decoder.extend(logits[len(blocks):])
        return Condition(guides[0], encoder, decoder)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition) -> tuple[torch.Tensor, torch.Tensor]:
        """x0_hat (scaled residual, same size as x_t) and the last features (padded grid)."""
        x, size = pad_to_multiple(x_t, self.condition_encoder.multiple)
        emb = self.time_mlp(timestep_embedding(t, self.config.time_dim).to(x.dtype))
        h = self.inp(x) + cond.features
        skips = []
        for level, blocks in enumerate(self.encoder):
            for block, logits in zip(blocks, cond.encoder[level]):
                h = block(h, logits, emb)
            if level < len(self.downs):
                skips.append(h)
                h = self.downs[level](h)
        for level in reversed(range(len(self.ups))):
            h = self.ups[level](h) + skips[level]
            h = self.decoder[level](h, cond.decoder[level], emb)
        return crop(self.out(self.act(h)), size), crop(h, size)

    def sample_residual(self, pan, lms, ms, *, steps: Optional[int] = None,
                        generator: Optional[torch.Generator] = None,
                        noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The residual r (image units) from ``steps`` DDIM steps (default: sample_steps)."""
        cond = self.condition(pan, lms, ms)
        x0 = self.sampler.sample(lambda x, t: self.denoise(x, t, cond)[0], lms.shape,
                                 steps or self.config.sample_steps, generator, lms.device, noise)
        return x0 / self.config.residual_scale

    def forward(self, pan, lms, ms, *, steps: Optional[int] = None,
                generator: Optional[torch.Generator] = None, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        return lms + self.sample_residual(pan, lms, ms, steps=steps, generator=generator, noise=noise).to(lms.dtype)

    def noise_shape(self, lms_shape: tuple) -> tuple:
        """x_T of one tile: the residual's shape (the engine draws it; registry doc)."""
        return (1, *lms_shape)

    def probe(self, pan, lms, ms) -> torch.Tensor:
        """One network evaluation with zero noise (used to measure the receptive field)."""
        return self.forward(pan, lms, ms, steps=1, noise=torch.zeros_like(lms))


class OneStepStudent(ResidualDenoiser):
    """``dm1``: the teacher's architecture, one evaluation at t = T-1 (stage 2)."""

    @classmethod
    def from_teacher(cls, teacher: ResidualDenoiser) -> "OneStepStudent":
        student = cls(teacher.config)
        student.load_state_dict(teacher.state_dict())
        return student

    def predict(self, pan, lms, ms, *, generator: Optional[torch.Generator] = None,
                noise: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual in image units, last features) from x_T = noise in one step."""
        x_T = noise if noise is not None else seeded_noise(lms.shape, generator, lms.device)
        t = torch.full((lms.shape[0],), self.config.timesteps - 1, dtype=torch.long, device=lms.device)
        x0, feat = self.denoise(x_T.to(lms.dtype), t, self.condition(pan, lms, ms))
        return x0 / self.config.residual_scale, feat

    def forward(self, pan, lms, ms, *, generator: Optional[torch.Generator] = None,
                noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        return lms + self.predict(pan, lms, ms, generator=generator, noise=noise)[0]

    def probe(self, pan, lms, ms) -> torch.Tensor:
        return self.forward(pan, lms, ms, noise=torch.zeros_like(lms))


class E2ENet(nn.Module):
    """``e2e``: light residual CNN with adaptive convolution, trained with L1 (stage 3).

    Project design: a head conv of PAN + LMS (+ MS branch), ``e2e_blocks`` adaptive
    residual blocks at full resolution guided by the head features, an output conv.
    """

    def __init__(self, config: FoseConfig):
        super().__init__()
        self.config = config
        w, bands = config.e2e_width, config.bands
        self.head = conv3x3(1 + bands, w)
        self.ms = conv3x3(bands, w)
        self.blocks = nn.ModuleList(AdaptiveResBlock(w, w, 0, config.adaptive_kernels) for _ in range(config.e2e_blocks))
        self.out = conv3x3(w, bands)
        self.act = nn.SiLU()

    def predict(self, pan, lms, ms) -> tuple[torch.Tensor, torch.Tensor]:
        guide = self.act(self.head(torch.cat([pan, lms], 1)) + upsample_to(self.ms(ms), pan.shape[-2:]))
        h = guide
        for block, logits in zip(self.blocks, assignment_logits(self.blocks, guide)):
            h = block(h, logits)
        return self.out(self.act(h)), h

    def forward(self, pan, lms, ms) -> torch.Tensor:
        return lms + self.predict(pan, lms, ms)[0]

    def probe(self, pan, lms, ms) -> torch.Tensor:
        return self.forward(pan, lms, ms)

    def noise_shape(self, lms_shape: tuple) -> None:
        """Deterministic: no x_T."""
        return None


class EnsembleBlocks(nn.Module):
    """Fuses the dm1 and e2e predictions into the final residual (stage 4; see module doc)."""

    def __init__(self, config: FoseConfig):
        super().__init__()
        self.config = config
        bands, w = config.bands, config.ensemble_width
        c_in = 2 * bands + config.widths[0] + config.e2e_width + 1 + bands
        layers = [conv3x3(c_in, w), nn.SiLU()]
        for _ in range(config.ensemble_blocks):
            layers += [conv3x3(w, w), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.out = conv3x3(w, 2 * bands)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def weights(self, r_dm1, r_e2e, feat_dm1, feat_e2e, pan, lms) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, correction): dm1's share of the mix per pixel and band, and the added residual."""
        s = self.config.residual_scale
        x = torch.cat([s * r_dm1, s * r_e2e, feat_dm1, feat_e2e, pan, lms], 1)
        mix_logit, correction = self.out(self.body(x)).chunk(2, dim=1)
        return torch.sigmoid(mix_logit), correction / s

    def forward(self, r_dm1, r_e2e, feat_dm1, feat_e2e, pan, lms) -> torch.Tensor:
        m, correction = self.weights(r_dm1, r_e2e, feat_dm1, feat_e2e, pan, lms)
        return m * r_dm1 + (1 - m) * r_e2e + correction


class Fose(nn.Module):
    """``fose``: dm1 + e2e + ensemble blocks, one pass each (the inference model)."""

    def __init__(self, config: FoseConfig):
        super().__init__()
        self.config = config
        self.student = OneStepStudent(config)
        self.e2e = E2ENet(config)
        self.ensemble = EnsembleBlocks(config)

    def forward(self, pan, lms, ms, *, generator: Optional[torch.Generator] = None,
                noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        r1, f1 = self.student.predict(pan, lms, ms, generator=generator, noise=noise)
        r2, f2 = self.e2e.predict(pan, lms, ms)
        return lms + self.ensemble(r1, r2, f1, f2, pan, lms)

    def probe(self, pan, lms, ms) -> torch.Tensor:
        return self.forward(pan, lms, ms, noise=torch.zeros_like(lms))

    def noise_shape(self, lms_shape: tuple) -> tuple:
        return self.student.noise_shape(lms_shape)

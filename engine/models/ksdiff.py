"""KSDiff (arXiv 2505.18991): diffusion in kernel space.

Diffusion does not generate pixels: it generates a small latent prior z (N tokens x
C_z) from which a kernel generator makes the convolution kernels of an ordinary
one-pass U-Net, W1 = W0 (.) W (docs/design.md, KSDiff). Inference: PLFE2 -> DDIM on z (a few
steps on a tiny tensor) -> kernel generator -> backbone. Training (``training/``):
stage 1 trains PLFE1 + kernel generator + backbone with L1 on the output
(``KSDiff.forward(..., hrms=gt)``); stage 2 trains :class:`LatentDenoiser` and PLFE2
with L = |z0 - z0_hat|_1 + lambda |HRMS - H2|_1 (pieces: :meth:`KSDiff.encode_prior`,
:meth:`KSDiff.condition`, :meth:`KSDiff.denoise`, :meth:`KSDiff.reconstruct`).

Paper facts: the Tucker kernel generator W = G x1 U1 x2 U2 x3 U3 x4 U4 with the core
from the mean-pooled z through an MLP (rank (4, 4, 2, 2)) and the factors from local
PAN/LRMS features through a shared backbone and one attention head per mode; the PLFE
pyramid with linear-complexity cross-attention and the gate F = G*X + (1-G)*Proj(Y) + O,
G = sigmoid(Conv[X, Proj(Y)]); PLFE1 sees PAN + LRMS + HRMS, PLFE2 (half width) sees
PAN + LRMS; a small denoiser predicting z0; DDIM in a few steps; a U-Net backbone.

Project choices (the paper is silent), each named where it is made:
- "LRMS" enters as the LMS (MS upsampled to the PAN grid) so both PLFE branches live
  on one grid; the X branch is PAN (PLFE2) or PAN + HRMS (PLFE1), the Y branch is LMS.
  ``ms`` is accepted by ``forward`` for a common signature but not used.
- Linear cross-attention is "efficient attention" (Shen et al., WACV 2021): softmax of
  the queries over channels, of the keys over positions, context K V^T of size d x d,
  so the cost is linear in the number of pixels. Queries come from X, keys and values
  from Y. The gate is per channel and per position (a 1x1 convolution), O is the
  attention output; every pyramid level halves the resolution with a stride-2 conv.
- Tokens: each pyramid level's fused features are average-pooled to a fixed
  ``latent_grid`` x ``latent_grid`` grid (N = 16 tokens by default), concatenated over
  levels, projected to C_z and layer-normalised without affine parameters, so z has a
  size independent of the image and unit scale for the diffusion.
- The latent denoiser is an MLP-Mixer (token-mixing and channel-mixing MLPs) over the
  N tokens, with the condition c concatenated to z_t and a FiLM-free additive time
  embedding.
- One kernel per modulated convolution of the backbone (the 3x3 convs of its residual
  blocks). The core MLP outputs all layers' cores at once; its last layer is
  zero-initialised (W = 0 at the start). The factor heads share one key/value
  projection per mode and hold learnable queries, one per row of every layer's factor
  matrix (C_out rows for U1, C_in for U2, k for U3 and U4), attending over the
  backbone's features pooled to ``factor_grid`` x ``factor_grid`` tokens.
- Modulation: W1 = W0 (.) (modulation_offset + W), offset 1 by default, so that an
  untrained generator leaves the base kernel W0 unchanged; offset 0 is the paper's
  literal W1 = W0 (.) W (which starts from zero kernels and trains poorly from scratch).
- Per-sample kernels are applied as one grouped convolution over the batch (batch
  folded into the channels, groups = N).
- Tiled inference: z is formed per tile (PLFE2 and the sampler see the tile), the
  simplest choice; tiles overlap and are blended by the engine. The diffusion noise
  comes from a seeded generator, so a tile's output is deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Upsample, conv3x3, crop, pad_to_multiple
from .diffusion import CosineDiffusion, timestep_embedding
from .samplers import DDIMSampler


@dataclass
class KSDiffConfig:
    bands: int = 4
    plfe_width: int = 16  # PLFE1; PLFE2 has half of it
    plfe_levels: int = 3
    latent_grid: int = 4  # N = latent_grid ** 2 tokens
    latent_dim: int = 32  # C_z
    denoiser_dim: int = 64
    denoiser_blocks: int = 2
    time_dim: int = 32
    timesteps: int = 1000
    sample_steps: int = 4
    core_rank: tuple = (4, 4, 2, 2)
    core_hidden: int = 64
    kernel_size: int = 3
    factor_width: int = 16
    factor_grid: int = 8
    widths: tuple = (16, 32)  # backbone U-Net channels per level
    blocks: tuple = (1, 2)  # residual blocks per level (encoder side)
    modulation_offset: float = 1.0
    seed: int = 0

    @classmethod
    def tiny(cls, bands: int = 4) -> "KSDiffConfig":
        return cls(bands=bands, plfe_width=4, plfe_levels=2, latent_grid=2, latent_dim=4,
                   denoiser_dim=8, denoiser_blocks=1, time_dim=8, core_hidden=8, factor_width=4,
                   factor_grid=2, widths=(4, 8), blocks=(1, 1))


# ----------------------------------------------------------------- PLFE ----------
class LinearCrossAttention(nn.Module):
    """Efficient attention (Shen et al. 2021) from X (queries) to Y (keys, values)."""

    def __init__(self, dim: int):
        super().__init__()
        self.q = nn.Conv2d(dim, dim, 1)
        self.kv = nn.Conv2d(dim, 2 * dim, 1)
        self.out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = torch.softmax(self.q(x).flatten(2), dim=1)  # over channels
        k, v = self.kv(y).flatten(2).chunk(2, dim=1)
        k = torch.softmax(k, dim=2)  # over positions
        context = torch.bmm(k, v.transpose(1, 2))  # (n, c_k, c_v)
        return self.out(torch.bmm(context.transpose(1, 2), q).view(n, c, h, w))


class FusionGate(nn.Module):
    """F = G*X + (1-G)*Proj(Y) + O with G = sigmoid(Conv1x1[X, Proj(Y)])."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 1)
        self.gate = nn.Conv2d(2 * dim, dim, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        p = self.proj(y)
        g = torch.sigmoid(self.gate(torch.cat([x, p], 1)))
        return g * x + (1 - g) * p + o


class PLFE(nn.Module):
    """Pyramid latent fusion encoder: (X image, Y image) -> tokens (N, grid^2, C_z)."""

    def __init__(self, x_channels: int, y_channels: int, width: int, levels: int, grid: int, latent_dim: int):
        super().__init__()
        self.stem_x = conv3x3(x_channels, width)
        self.stem_y = conv3x3(y_channels, width)
        self.attn = nn.ModuleList(LinearCrossAttention(width) for _ in range(levels))
        self.gates = nn.ModuleList(FusionGate(width) for _ in range(levels))
        self.down_x = nn.ModuleList(conv3x3(width, width, stride=2) for _ in range(levels - 1))
        self.down_y = nn.ModuleList(conv3x3(width, width, stride=2) for _ in range(levels - 1))
        self.to_latent = nn.Linear(levels * width, latent_dim)
        self.grid = grid
        self.act = nn.SiLU()

    def forward(self, x_img: torch.Tensor, y_img: torch.Tensor) -> torch.Tensor:
        x, y = self.act(self.stem_x(x_img)), self.act(self.stem_y(y_img))
        pooled = []
        for level, (attn, gate) in enumerate(zip(self.attn, self.gates)):
            fused = gate(x, y, attn(x, y))
            pooled.append(F.adaptive_avg_pool2d(fused, self.grid))
            if level < len(self.down_x):
                x, y = self.act(self.down_x[level](fused)), self.act(self.down_y[level](y))
        tokens = torch.cat(pooled, 1).flatten(2).transpose(1, 2)  # (N, grid^2, levels*width)
        z = self.to_latent(tokens)
        return F.layer_norm(z, z.shape[-1:])


# ------------------------------------------------------- latent denoiser ---------
class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, 2 * tokens), nn.SiLU(), nn.Linear(2 * tokens, tokens))
        self.channel_mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.token_mlp(self.norm1(h).transpose(1, 2)).transpose(1, 2)
        return h + self.channel_mlp(self.norm2(h))


class LatentDenoiser(nn.Module):
    """Predicts z0 from (z_t, t, c); all tensors (N, tokens, C_z)."""

    def __init__(self, config: KSDiffConfig):
        super().__init__()
        tokens, d = config.latent_grid ** 2, config.denoiser_dim
        self.time_dim = config.time_dim
        self.inp = nn.Linear(2 * config.latent_dim, d)
        self.pos = nn.Parameter(torch.zeros(1, tokens, d))
        self.time_mlp = nn.Sequential(nn.Linear(config.time_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.Sequential(*(MixerBlock(tokens, d) for _ in range(config.denoiser_blocks)))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, config.latent_dim))

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.time_dim).to(z_t.dtype))
        h = self.inp(torch.cat([z_t, c], -1)) + self.pos + emb[:, None]
        return self.out(self.blocks(h))


# ------------------------------------------------------- kernel generator --------
def tucker_product(core: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor, u3: torch.Tensor,
                   u4: torch.Tensor) -> torch.Tensor:
    """W = G x1 U1 x2 U2 x3 U3 x4 U4, batched: core (N, r1..r4), U_i (N, n_i, r_i)."""
    return torch.einsum("nabcd,nia,njb,nkc,nld->nijkl", core, u1, u2, u3, u4)


class FactorHead(nn.Module):
    """One attention head for one Tucker mode: learnable row queries attend to features."""

    def __init__(self, rows: list[int], width: int, rank: int):
        super().__init__()
        self.rows = rows
        # on the CPU even where the model is built on the meta device (runtime._skeleton):
        # random draws and arithmetic there run python kernels that import torch._dynamo
        # (1.2-1.3 s of every ksdiff load: issue 18)
        self.queries = nn.Parameter(torch.randn(sum(rows), width, device="cpu") / math.sqrt(width))
        self.kv = nn.Linear(width, 2 * width)
        self.to_rank = nn.Linear(width, rank)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        k, v = self.kv(tokens).chunk(2, dim=-1)  # (N, L, width)
        attn = torch.softmax(self.queries @ k.transpose(1, 2) / math.sqrt(k.shape[-1]), dim=-1)
        return list(self.to_rank(attn @ v).split(self.rows, dim=1))  # per layer (N, rows, rank)


class KernelGenerator(nn.Module):
    """z + local PAN/LMS features -> one Tucker kernel W (N, C_out, C_in, k, k) per layer."""

    def __init__(self, config: KSDiffConfig, layer_shapes: list[tuple[int, int]]):
        super().__init__()
        self.layer_shapes = layer_shapes
        self.rank = tuple(config.core_rank)
        k, fw = config.kernel_size, config.factor_width
        core_size = math.prod(self.rank)
        self.core_mlp = nn.Sequential(nn.Linear(config.latent_dim, config.core_hidden), nn.SiLU(),
                                      nn.Linear(config.core_hidden, len(layer_shapes) * core_size))
        nn.init.zeros_(self.core_mlp[-1].weight)
        nn.init.zeros_(self.core_mlp[-1].bias)
        self.features = nn.Sequential(conv3x3(1 + config.bands, fw, stride=2), nn.SiLU(),
                                      conv3x3(fw, fw, stride=2), nn.SiLU())
        self.pos = nn.Parameter(torch.zeros(1, config.factor_grid ** 2, fw))
        self.factor_grid = config.factor_grid
        modes = [[c_out for c_out, _ in layer_shapes], [c_in for _, c_in in layer_shapes],
                 [k] * len(layer_shapes), [k] * len(layer_shapes)]
        self.heads = nn.ModuleList(FactorHead(rows, fw, r) for rows, r in zip(modes, self.rank))

    def cores(self, z: torch.Tensor) -> torch.Tensor:
        """(N, layers, r1, r2, r3, r4) from the token-mean of z."""
        return self.core_mlp(z.mean(1)).view(z.shape[0], len(self.layer_shapes), *self.rank)

    def factors(self, pan: torch.Tensor, lms: torch.Tensor) -> list[list[torch.Tensor]]:
        """factors[mode][layer] = U (N, n_mode, r_mode)."""
        feat = F.adaptive_avg_pool2d(self.features(torch.cat([pan, lms], 1)), self.factor_grid)
        tokens = feat.flatten(2).transpose(1, 2) + self.pos
        return [head(tokens) for head in self.heads]

    def forward(self, z: torch.Tensor, pan: torch.Tensor, lms: torch.Tensor) -> list[torch.Tensor]:
        cores, factors = self.cores(z), self.factors(pan, lms)
        return [tucker_product(cores[:, i], *(f[i] for f in factors)) for i in range(len(self.layer_shapes))]


# ------------------------------------------------------- backbone ----------------
class ModulatedConv2d(nn.Module):
    """3x3 conv with per-sample kernel W1 = W0 (.) (offset + W), as a grouped conv."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, offset: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.offset = offset

    def forward(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        n, c_in, h, w = x.shape
        weight = self.weight * (self.offset + kernel.to(x.dtype))  # (N, C_out, C_in, k, k)
        y = F.conv2d(x.reshape(1, n * c_in, h, w), weight.reshape(-1, c_in, *weight.shape[-2:]),
                     padding=weight.shape[-1] // 2, groups=n)
        return y.view(n, -1, h, w) + self.bias.to(y.dtype)[:, None, None]


class ModulatedResBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, offset: float):
        super().__init__()
        self.conv1 = ModulatedConv2d(channels, channels, kernel_size, offset)
        self.conv2 = ModulatedConv2d(channels, channels, kernel_size, offset)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, kernels: list[torch.Tensor]) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x), kernels[0])), kernels[1])


class KernelUNet(nn.Module):
    """U-Net-style backbone; the 3x3 convs of its residual blocks take generated kernels."""

    def __init__(self, config: KSDiffConfig):
        super().__init__()
        w, b, k, off = config.widths, config.blocks, config.kernel_size, config.modulation_offset
        self.head = conv3x3(1 + config.bands, w[0])
        self.encoder = nn.ModuleList(nn.ModuleList(ModulatedResBlock(w[l], k, off) for _ in range(b[l]))
                                     for l in range(len(w)))
        self.downs = nn.ModuleList(conv3x3(w[l], w[l + 1], stride=2) for l in range(len(w) - 1))
        self.ups = nn.ModuleList(Upsample(w[l + 1], w[l]) for l in range(len(w) - 1))
        self.decoder = nn.ModuleList(ModulatedResBlock(w[l], k, off) for l in range(len(w) - 1))
        self.out = conv3x3(w[0], config.bands)
        self.act = nn.SiLU()
        self.multiple = 2 ** (len(w) - 1)

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(C_out, C_in) of every modulated conv, in the order ``forward`` consumes kernels."""
        blocks = [blk for level in self.encoder for blk in level] + list(self.decoder[::-1])
        return [tuple(conv.weight.shape[:2]) for blk in blocks for conv in (blk.conv1, blk.conv2)]

    def forward(self, pan: torch.Tensor, lms: torch.Tensor, kernels: list[torch.Tensor]) -> torch.Tensor:
        x, size = pad_to_multiple(torch.cat([pan, lms], 1), self.multiple)
        kernels = iter(kernels)
        h, skips = self.head(x), []
        for level, blocks in enumerate(self.encoder):
            for block in blocks:
                h = block(h, [next(kernels), next(kernels)])
            if level < len(self.downs):
                skips.append(h)
                h = self.downs[level](h)
        for level in reversed(range(len(self.ups))):
            h = self.ups[level](h) + skips[level]
            h = self.decoder[level](h, [next(kernels), next(kernels)])
        return crop(self.out(self.act(h)), size)


# ------------------------------------------------------- the model ---------------
class KSDiff(nn.Module):
    """``ksdiff``: PLFE2 -> latent DDIM -> kernel generator -> kernel-modulated U-Net."""

    def __init__(self, config: KSDiffConfig):
        super().__init__()
        self.config = config
        c = config
        self.diffusion = CosineDiffusion(c.timesteps)
        self.sampler = DDIMSampler(self.diffusion)
        self.plfe1 = PLFE(1 + c.bands, c.bands, c.plfe_width, c.plfe_levels, c.latent_grid, c.latent_dim)
        self.plfe2 = PLFE(1, c.bands, max(1, c.plfe_width // 2), c.plfe_levels, c.latent_grid, c.latent_dim)
        self.denoiser = LatentDenoiser(c)
        self.backbone = KernelUNet(c)
        self.kernel_generator = KernelGenerator(c, self.backbone.layer_shapes())

    def latent_shape(self, batch: int) -> tuple[int, int, int]:
        return (batch, self.config.latent_grid ** 2, self.config.latent_dim)

    def noise_shape(self, lms_shape: tuple) -> tuple:
        """x_T of one tile: the latent prior's, whatever the tile size (registry doc)."""
        return self.latent_shape(1)

    def encode_prior(self, pan, lms, hrms) -> torch.Tensor:
        """PLFE1: the target prior z0 (stage 1; training only, needs the ground truth)."""
        return self.plfe1(torch.cat([pan, hrms], 1), lms)

    def condition(self, pan, lms) -> torch.Tensor:
        """PLFE2: the diffusion condition c."""
        return self.plfe2(pan, lms)

    def denoise(self, z_t, t, c) -> torch.Tensor:
        return self.denoiser(z_t, t, c)

    def sample_prior(self, c: torch.Tensor, *, steps: Optional[int] = None,
                     generator: Optional[torch.Generator] = None, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.sampler.sample(lambda z, t: self.denoise(z, t, c), self.latent_shape(c.shape[0]),
                                   steps or self.config.sample_steps, generator, c.device, noise).to(c.dtype)

    def reconstruct(self, pan, lms, z) -> torch.Tensor:
        """HRMS from a prior z: kernels, then the backbone's residual added to LMS."""
        return lms + self.backbone(pan, lms, self.kernel_generator(z, pan, lms))

    def forward(self, pan, lms, ms, *, hrms: Optional[torch.Tensor] = None, steps: Optional[int] = None,
                generator: Optional[torch.Generator] = None, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """With ``hrms`` (stage 1) the prior comes from PLFE1, otherwise from PLFE2 + DDIM."""
        if hrms is not None:
            z = self.encode_prior(pan, lms, hrms)
        else:
            z = self.sample_prior(self.condition(pan, lms), steps=steps, generator=generator, noise=noise)
        return self.reconstruct(pan, lms, z)

    def probe(self, pan, lms, ms) -> torch.Tensor:
        """The backbone with kernels held fixed: the per-tile-global latent is excluded
        from the receptive field, which is what tiling needs (z is formed per tile)."""
        with torch.no_grad():
            z = torch.zeros(self.latent_shape(pan.shape[0]), device=pan.device)
            kernels = self.kernel_generator(z, pan.detach(), lms.detach())
        return lms + self.backbone(pan, lms, kernels)

"""Building blocks shared by the models: content-adaptive convolution, residual blocks,
padding to a network's multiple.

Content-adaptive convolution (project design, "in the spirit of LAGConv/CANConv",
docs/design.md, Fose). LAGConv (Jin et al., AAAI 2022) re-weights every kernel per pixel from
the local patch; CANConv (Duan et al., CVPR 2024) clusters pixels by content and gives
each cluster its own kernel. Ours is a soft, per-pixel version of the cluster idea that
keeps the cost near that of a plain convolution:

    y(p) = b + sum_m a_m(p) (W_m * x)(p),    a(p) = softmax_m(Conv3x3(guide)(p)),

with M learnable basis kernels W_m (default M = 2) and a per-pixel soft assignment
a(p) computed from a *guide* (features of PAN and LMS, so the kernel adapts to the
image content and not to the noisy diffusion input; the assignments depend on the
guide only, so a model computes them once per image, all layers of one guide in one
convolution: :func:`assignment_logits`). The kernel applied at p is
sum_m a_m(p) W_m: a different kernel for every pixel, a smooth interpolation between
"cluster" kernels. The assignment convolution is zero-initialised (a = 1/M: the layer
starts as the plain convolution with the mean kernel) and the basis kernels are drawn
independently, which breaks the symmetry between them. Cost: one convolution with M *
C_out outputs plus a weighted sum (for M = 2 one ``lerp`` by sigmoid(l_0 - l_1), the
same softmax); an ``unfold``-based per-tap modulation (LAGConv's
form) measured 2-4x slower on the CPU for the same widths, which is why we chose this.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple (returns the original size to crop back).

    Reflection (not zeros) so the network sees image-like content at the border.
    Falls back to replicate padding when the image is smaller than the pad.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1]]


class AdaptiveConv2d(nn.Module):
    """k x k convolution whose kernel is a per-pixel mixture of M basis kernels (module doc)."""

    def __init__(self, c_in: int, c_out: int, guide_channels: int, kernel_size: int = 3, kernels: int = 2):
        super().__init__()
        self.c_out, self.kernels = c_out, kernels
        self.basis = nn.Conv2d(c_in, kernels * c_out, kernel_size, padding=kernel_size // 2)
        self.assign = conv3x3(guide_channels, kernels)
        nn.init.zeros_(self.assign.weight)
        nn.init.zeros_(self.assign.bias)

    def forward(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``logits``: this layer's assignment logits (N, M, H, W), ``self.assign(guide)``
        (or :func:`assignment_logits` for all the layers one guide steers)."""
        n, _, h, w = x.shape
        y = self.basis(x).view(n, self.kernels, self.c_out, h, w)
        if self.kernels == 2:  # a softmax of two logits is the sigmoid of their difference
            a0 = torch.sigmoid(logits[:, :1] - logits[:, 1:]).to(y.dtype)
            return torch.lerp(y[:, 1], y[:, 0], a0)  # one fused pass over the basis outputs
        return (y * torch.softmax(logits, dim=1).unsqueeze(2).to(y.dtype)).sum(1)


def assignment_logits(blocks: Sequence["AdaptiveResBlock"], guide: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(conv1, conv2) assignment logits of every block steered by ``guide``, from one
    convolution with their kernels stacked.

    The logits depend on the guide only, so a model computes them once per image (the
    teacher reuses them over its 50 steps). One stacked convolution instead of a
    2-output one per layer: the separate calls took 14 % of a fose tile on the CPU.
    """
    assigns = [conv.assign for block in blocks for conv in (block.conv1, block.conv2)]
    weight = torch.cat([a.weight for a in assigns])
    bias = torch.cat([a.bias for a in assigns])
    logits = F.conv2d(guide, weight, bias, padding=assigns[0].padding).split(
        [a.out_channels for a in assigns], dim=1)
    return list(zip(logits[0::2], logits[1::2]))


class AdaptiveResBlock(nn.Module):
    """x + conv(act(conv(act(x)))) with adaptive convs and an optional embedding.

    The embedding (diffusion time step) enters as a per-channel scale and shift after
    the first convolution (FiLM, as in the improved-DDPM U-Net); its projection is
    zero-initialised so that the block starts independent of t.
    """

    def __init__(self, channels: int, guide_channels: int, emb_dim: int = 0, kernels: int = 2):
        super().__init__()
        self.conv1 = AdaptiveConv2d(channels, channels, guide_channels, kernels=kernels)
        self.conv2 = AdaptiveConv2d(channels, channels, guide_channels, kernels=kernels)
        self.act = nn.SiLU()
        self.film: Optional[nn.Linear] = nn.Linear(emb_dim, 2 * channels) if emb_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, logits: tuple[torch.Tensor, torch.Tensor],
                emb: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``logits``: the two convolutions' assignment logits (:func:`assignment_logits`)."""
        h = self.conv1(self.act(x), logits[0])
        if self.film is not None and emb is not None:
            scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return x + self.conv2(self.act(h), logits[1])


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv (no checkerboard artefacts, unlike transposed conv)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = conv3x3(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest upsampling of MS-grid features to the PAN grid (any ratio)."""
    return F.interpolate(x, size=size, mode="nearest")

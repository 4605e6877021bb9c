"""Losses to the ground truth that several stages share.

``fidelity`` is the L1 of every stage that compares an image with the ground truth, plus
(``sam_weight`` > 0, an option off in the shipped config) the mean spectral angle between
them: the L1 weighs a pixel by its brightness, the angle weighs every pixel alike, so it
reaches the spectra of dark water and shadow. Measured on left-out scenes it helped where
the training sensors' bands fit and cost Q2n where they do not (docs/sam.md). Angles are
taken about each patch's radiometric zero (``PatchSet.zeros``), as the SAM index takes them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def spectral_angle(pred: torch.Tensor, gt: torch.Tensor, zero: torch.Tensor | None = None,
                   eps: float = 1e-6) -> torch.Tensor:
    """Mean angle (radians) between the spectra of (N, B, H, W) images, about ``zero``
    (N, B, 1, 1); pixels whose reference spectrum is zero do not count."""
    if zero is not None:
        pred, gt = pred - zero, gt - zero
    gt_norm = gt.norm(dim=1)
    valid = gt_norm > eps
    cos = ((pred * gt).sum(1) / (pred.norm(dim=1) * gt_norm).clamp_min(eps)).clamp(-1 + 1e-6, 1 - 1e-6)
    angles = torch.acos(cos)
    return angles[valid].mean() if bool(valid.any()) else angles.sum() * 0


def fidelity(pred: torch.Tensor, batch, sam_weight: float = 0.0) -> torch.Tensor:
    """L1 to ``batch["gt"]`` plus ``sam_weight`` x its mean spectral angle (radians)."""
    loss = F.l1_loss(pred, batch["gt"])
    if sam_weight:
        loss = loss + sam_weight * spectral_angle(pred, batch["gt"], batch.get("zero"))
    return loss

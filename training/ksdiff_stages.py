"""KSDiff's two training stages (docs/design.md, KSDiff), each a small function of a :class:`Run`.

1. ``stage1``: PLFE1 + kernel generator + backbone with L1 between the HRMS made
   with the prior z0 = PLFE1(PAN, LMS, HRMS) and the ground truth. PLFE2 and the
   denoiser do not take part (frozen). Its validation score uses the ground-truth
   prior, an oracle: it bounds what stage 2 can reach.
2. ``stage2``: the denoiser and PLFE2, jointly with the regressor (kernel generator
   and backbone), L = |z0 - z_hat0|_1 + lambda |HRMS - H2|_1 with lambda =
   ``loss_weight`` (1). z0 comes from the frozen stage-1 PLFE1. Project choices, the
   paper being silent: as in DiffIR's second stage, z_hat0 is produced by the very
   sampler used at inference (``sample_steps`` DDIM steps from seeded noise x_T,
   differentiated through every step), so training sees what inference does; PLFE1
   stays frozen so the target prior does not move. EMA weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..engine.models.ksdiff import KSDiff, KSDiffConfig
from .losses import fidelity
from .run import Run, freeze, load_model, save_model, seeded
from .trainer import Stage, StageResult


def ksdiff_config(run: Run) -> KSDiffConfig:
    return run.architecture("ksdiff", KSDiffConfig)


def stage1(run: Run) -> StageResult:
    """Train PLFE1 + kernel generator + backbone; writes ``OUT/ksdiff-stage1.safetensors``."""
    torch.manual_seed(run.seed)
    model = KSDiff(ksdiff_config(run))
    freeze(model.plfe2), freeze(model.denoiser)
    sam_weight = run.settings("ksdiff", 1).sam_weight
    forward = lambda b: model(b["pan"], b["lms"], b["ms"], hrms=b["gt"])
    loss = lambda b: fidelity(forward(b), b, sam_weight)
    result = run.run_stage(Stage("ksdiff-1", model, loss, forward), "ksdiff", 1)
    if result.step >= run.settings("ksdiff", 1).steps:
        save_model(run, "ksdiff-stage1", "ksdiff", model, result.validation)
    return result


def stage2_loss(model: KSDiff, b, steps: int, weight: float, sam_weight: float = 0.0) -> torch.Tensor:
    """|z0 - z_hat0|_1 + weight |HRMS - H2|_1 (module doc, stage 2; with the spectral
    angle of ``training.losses.fidelity``)."""
    with torch.no_grad():
        z0 = model.encode_prior(b["pan"], b["lms"], b["gt"])
    noise = b.randn(*z0.shape[1:])
    z_hat = model.sample_prior(model.condition(b["pan"], b["lms"]), steps=steps, noise=noise)
    h2 = model.reconstruct(b["pan"], b["lms"], z_hat)
    return F.l1_loss(z_hat, z0) + weight * fidelity(h2, b, sam_weight)


def stage2(run: Run) -> StageResult:
    """Train denoiser + PLFE2 (+ regressor); writes ``OUT/ksdiff.safetensors``."""
    cfg = run.settings("ksdiff", 2)
    torch.manual_seed(run.seed)
    model = load_model(run, "ksdiff-stage1", "ksdiff")
    freeze(model.plfe1)
    for part in (model.plfe2, model.denoiser):
        part.requires_grad_(True)
    steps = model.config.sample_steps
    loss = lambda b: stage2_loss(model, b, steps, cfg.loss_weight, cfg.sam_weight)
    predict = lambda b: model(b["pan"], b["lms"], b["ms"], generator=seeded(model.config.seed))
    result = run.run_stage(Stage("ksdiff-2", model, loss, predict), "ksdiff", 2)
    if result.step >= cfg.steps:
        save_model(run, "ksdiff", "ksdiff", model, result.validation)
    return result


STAGES = {1: stage1, 2: stage2}

"""Fose's four training stages (docs/design.md, Fose), each a small function of a :class:`Run`.

1. ``stage1``: the teacher ``dm50``, x0-prediction diffusion loss on the scaled
   residual s * (HRMS - LMS): t uniform in [0, T), x_t = q_sample(r, t, noise),
   loss = mean squared error between the network's x0_hat and r (the "simple" DDPM
   loss written for x0; MSE rather than L1 is the project's choice). EMA weights.
2. ``stage2``: one-step distillation. The student starts as a copy of the teacher;
   from the same x_T and condition its one evaluation at t = T-1 must match the
   teacher's ``sample_steps``-step DDIM output (L1), plus ``loss_weight`` x L1 to the
   ground-truth residual. With ``cache_teacher`` the teacher's outputs are computed
   once for one fixed x_T per training patch and kept in
   ``fose-stage2/teacher_cache.safetensors`` (reused while the teacher file, the patch
   set and the step count are unchanged); augmentation is then off, because a cached
   output belongs to one orientation of its patch (project choice). Without the cache
   every step draws fresh noise and samples the teacher. EMA weights.
3. ``stage3``: the E2E net, L1 between its HRMS and the ground truth.
4. ``stage4``: the ensemble blocks, student and E2E frozen, L1 on the HRMS; the
   student gets fresh noise each step (inference uses the seeded noise).

Validation after stages 2 and 4 also scores the references the claims need (the
teacher with one naive DDIM step and with ``sample_steps``; dm1 and e2e alone), under
``references`` in ``validation.json`` and the weights' quality metadata.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn

from ..engine.models.fose import E2ENet, Fose, FoseConfig, OneStepStudent, ResidualDenoiser
from .losses import fidelity
from .run import Run, freeze, load_model, save_model, seeded
from .trainer import Stage, StageResult, seed_of, validate


def fose_config(run: Run) -> FoseConfig:
    return run.architecture("fose", FoseConfig)


def _finished(run: Run, result: StageResult, n: int) -> bool:
    return result.step >= run.settings("fose", n).steps


def _references(run: Run, result: StageResult, n: int, predictors: dict) -> None:
    """Score reference predictors on the validation set next to the stage's own."""
    if result.validation is None:
        return
    cfg = run.settings("fose", n)
    refs = {name: validate(fn, run.val, cfg.val_batch, run.dist.device, cfg.val_patches)
            for name, fn in predictors.items()}
    result.validation["references"] = refs
    with open(result.out_dir / "validation.json", "w") as f:
        json.dump(result.validation, f, indent=2)


# ---------------------------------------------------------------- stage 1

def teacher_loss(teacher: ResidualDenoiser, b) -> torch.Tensor:
    """x0-prediction loss on the scaled residual (module doc, stage 1)."""
    cfg = teacher.config
    r = (b["gt"] - b["lms"]) * cfg.residual_scale
    t = b.randint(cfg.timesteps)
    x_t = teacher.diffusion.q_sample(r, t, b.randn(*r.shape[1:]))
    x0_hat, _ = teacher.denoise(x_t, t, teacher.condition(b["pan"], b["lms"], b["ms"]))
    return F.mse_loss(x0_hat, r)


def stage1(run: Run) -> StageResult:
    """Train the teacher ``dm50``; writes ``OUT/dm50.safetensors``."""
    cfg, mcfg = run.settings("fose", 1), fose_config(run)
    torch.manual_seed(run.seed)
    teacher = ResidualDenoiser(mcfg)
    predict = lambda b: teacher(b["pan"], b["lms"], b["ms"], steps=cfg.sample_steps,
                                generator=seeded(mcfg.seed))
    stage = Stage("fose-1", teacher, lambda b: teacher_loss(teacher, b), predict)
    result = run.run_stage(stage, "fose", 1)
    if _finished(run, result, 1):
        save_model(run, "dm50", "dm50", teacher, result.validation)
    return result


# ---------------------------------------------------------------- stage 2

CACHE_STREAM = 1_000_003  # key of the cached x_T, apart from the per-step streams


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def teacher_cache(run: Run, teacher: ResidualDenoiser, steps: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_T, teacher residual) per training patch, computed once and kept on disk.

    x_T of patch i comes from a generator keyed by (seed, i), so the cache is the
    same on every process; rank 0 computes and writes it, the others wait and read."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = run.stage_dir("fose", 2) / "teacher_cache.safetensors"
    key = {"teacher_sha256": _digest(run.weights_path("dm50")), "steps": str(steps),
           "patches": str(len(run.train)), "seed": str(run.seed),
           "source": run.train.source}

    def valid() -> bool:
        if not path.exists():
            return False
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() == key

    if run.dist.main and not valid():
        data = run.train
        shape = tuple(data.lms.shape[1:])
        noise = torch.stack([torch.randn(shape, generator=seeded(seed_of(run.seed, CACHE_STREAM, i)))
                             for i in range(len(data))])
        out = torch.empty_like(noise)
        batch = run.settings("fose", 2).val_batch
        with torch.no_grad():
            for i in range(0, len(data), batch):
                idx = torch.arange(i, min(i + batch, len(data)))
                b = {k: v.to(run.dist.device) for k, v in data.batch(idx).items()}
                out[idx] = teacher.sample_residual(b["pan"], b["lms"], b["ms"], steps=steps,
                                                   noise=noise[idx].to(run.dist.device)).cpu()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"noise": noise, "residual": out}, str(path), metadata=key)
    if run.dist.world > 1:
        tdist.barrier()
    cache = load_file(str(path))
    return cache["noise"], cache["residual"]


def stage2(run: Run) -> StageResult:
    """Distil the teacher into the one-step student ``dm1``; writes ``OUT/dm1.safetensors``."""
    cfg, mcfg = run.settings("fose", 2), fose_config(run)
    teacher = freeze(load_model(run, "dm50", "dm50"))
    student = OneStepStudent.from_teacher(teacher)
    cache = teacher_cache(run, teacher, cfg.sample_steps) if cfg.cache_teacher else None

    def loss(b):
        if cache is not None:
            noise = cache[0][b.index].to(b.device)
            target = cache[1][b.index].to(b.device)
        else:
            noise = b.randn(*b["lms"].shape[1:])
            with torch.no_grad():
                target = teacher.sample_residual(b["pan"], b["lms"], b["ms"],
                                                 steps=cfg.sample_steps, noise=noise)
        r, _ = student.predict(b["pan"], b["lms"], b["ms"], noise=noise)
        return (F.l1_loss(r, target)
                + cfg.loss_weight * fidelity(r + b["lms"], b, cfg.sam_weight))

    module = nn.ModuleDict({"student": student, "teacher": teacher})
    predict = lambda b: student(b["pan"], b["lms"], b["ms"], generator=seeded(mcfg.seed))
    stage = Stage("fose-2", module, loss, predict, augment=cache is None)
    result = run.run_stage(stage, "fose", 2)
    if _finished(run, result, 2):
        g = lambda: seeded(mcfg.seed)
        _references(run, result, 2, {
            "teacher_1step": lambda b: teacher(b["pan"], b["lms"], b["ms"], steps=1, generator=g()),
            f"teacher_{cfg.sample_steps}step": lambda b: teacher(
                b["pan"], b["lms"], b["ms"], steps=cfg.sample_steps, generator=g()),
        })
        save_model(run, "dm1", "dm1", student, result.validation)
    return result


# ---------------------------------------------------------------- stage 3

def stage3(run: Run) -> StageResult:
    """Train the E2E net; writes ``OUT/e2e.safetensors``."""
    mcfg = fose_config(run)
    torch.manual_seed(run.seed)
    e2e = E2ENet(mcfg)
    sam_weight = run.settings("fose", 3).sam_weight
    forward = lambda b: e2e(b["pan"], b["lms"], b["ms"])
    loss = lambda b: fidelity(forward(b), b, sam_weight)
    result = run.run_stage(Stage("fose-3", e2e, loss, forward), "fose", 3)
    if _finished(run, result, 3):
        save_model(run, "e2e", "e2e", e2e, result.validation)
    return result


# ---------------------------------------------------------------- stage 4

def stage4(run: Run) -> StageResult:
    """Train the ensemble blocks over frozen dm1 and e2e; writes ``OUT/fose.safetensors``."""
    mcfg = fose_config(run)
    torch.manual_seed(run.seed)
    fose = Fose(mcfg)
    fose.student.load_state_dict(load_model(run, "dm1", "dm1").state_dict())
    fose.e2e.load_state_dict(load_model(run, "e2e", "e2e").state_dict())
    freeze(fose.student), freeze(fose.e2e)

    sam_weight = run.settings("fose", 4).sam_weight

    def loss(b):
        noise = b.randn(*b["lms"].shape[1:])
        return fidelity(fose(b["pan"], b["lms"], b["ms"], noise=noise), b, sam_weight)

    predict = lambda b: fose(b["pan"], b["lms"], b["ms"], generator=seeded(mcfg.seed))
    result = run.run_stage(Stage("fose-4", fose, loss, predict), "fose", 4)
    if _finished(run, result, 4):
        _references(run, result, 4, {
            "dm1": lambda b: fose.student(b["pan"], b["lms"], b["ms"], generator=seeded(mcfg.seed)),
            "e2e": lambda b: fose.e2e(b["pan"], b["lms"], b["ms"]),
        })
        save_model(run, "fose", "fose", fose, result.validation)
    return result


STAGES = {1: stage1, 2: stage2, 3: stage3, 4: stage4}

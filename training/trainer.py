"""The one training loop every stage of both pipelines uses.

A stage hands the loop a :class:`Stage`: one module holding every network the loss
touches (frozen parts have ``requires_grad=False``), a loss on a :class:`Batch`, and a
prediction function for validation. The loop does AdamW with linear warm-up and cosine
decay, optional EMA of the weights, autocast on CUDA (bfloat16 when the GPU supports
it, else float16 with a gradient scaler; off on CPU), gradient-norm clipping,
checkpoints that ``resume`` continues bit-for-bit, a progress line on stderr, a CSV
log, TensorBoard scalars when ``torch.utils.tensorboard`` imports, and validation
indices (SAM, ERGAS, Q2n, SCC from ``engine.quality``) after the stage.

Reproducibility (project choices):
- Every random draw of a step (which patches, which flip/rotation, the loss's noise
  and timesteps) comes from generators keyed by (seed, step, stream), drawn for the
  GLOBAL batch and sliced per process. So a resumed run sees exactly the batches and
  noise of an uninterrupted one, and N processes together see exactly what one
  process sees: no sampler or generator state has to be checkpointed.
- Patch order per epoch is ``torch.utils.data.DistributedSampler`` (shuffled, seeded,
  ``set_epoch``); process ``rank`` takes global positions ``rank, rank + W, ...``.
- Multi-process (``torchrun``): when ``WORLD_SIZE`` > 1 the process group is
  initialised (gloo on CPU, nccl on CUDA) and gradients are averaged with one
  all-reduce after backward: what ``DistributedDataParallel`` computes, done
  explicitly because stage losses call several sub-networks directly, which DDP's
  forward hook would not see. Only rank 0 writes files.
- Checkpoints are ``.safetensors`` (tensors) with JSON metadata (step, optimiser
  groups, scheduler, scaler): like the weights, loading one never unpickles.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn
from torch.utils.data import DistributedSampler

from ..engine.errors import PansharpenError
from .config import StageConfig
from .datasets import PatchSet

CHECKPOINT = "checkpoint.safetensors"
LOG = "log.csv"
CHECKPOINT_FORMAT = "diffusion-pansharpening training checkpoint v1"


# ---------------------------------------------------------------- processes

@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> Dist:
    """Join the ``torchrun`` job if there is one (WORLD_SIZE > 1), else run alone.

    Backend: nccl on CUDA, gloo on CPU. Device: ``device`` if given, else
    ``cuda:LOCAL_RANK`` when CUDA is present, else the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if world > 1:
        return Dist(tdist.get_rank(), tdist.get_world_size(), dev)
    return Dist(0, 1, dev)


def _all_mean(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    if dist.world > 1:
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        t /= dist.world
    return t


def average_gradients(params: list[nn.Parameter], dist: Dist) -> None:
    """Average the gradients over processes with one flat all-reduce."""
    if dist.world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    _all_mean(flat, dist)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


# ---------------------------------------------------------------- batches

def seed_of(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys (NumPy's SeedSequence hashing)."""
    words = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class Batch(dict):
    """This process's share of one step's global batch (``pan``, ``lms``, ``ms``,
    ``gt`` on the device), with generators for the loss's random draws."""

    def __init__(self, tensors: dict, step: int, seed: int, positions: torch.Tensor,
                 global_size: int, device: torch.device, index: torch.Tensor | None = None,
                 ops: torch.Tensor | None = None):
        super().__init__(tensors)
        self.step, self.seed = step, seed
        self.index, self.ops = index, ops  # the patches and their dihedral transforms
        self.positions, self.global_size, self.device = positions, global_size, device

    def _generator(self, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed_of(self.seed, self.step, stream))

    def randn(self, *shape: int, stream: int = 1) -> torch.Tensor:
        """Standard normal noise of ``shape`` per sample, for this process's samples."""
        full = torch.randn((self.global_size, *shape), generator=self._generator(stream))
        return full[self.positions].to(self.device)

    def randint(self, high: int, stream: int = 2) -> torch.Tensor:
        """One integer in [0, high) per sample (e.g. a diffusion timestep)."""
        full = torch.randint(0, high, (self.global_size,), generator=self._generator(stream))
        return full[self.positions].to(self.device)


class BatchPlan:
    """Which patches (and which dihedral transform) each process uses at each step.

    An epoch is ``len(data) // batch`` steps (the remainder of the shuffled order is
    dropped so every step has a full global batch)."""

    def __init__(self, data: PatchSet, batch: int, seed: int, dist: Dist,
                 augment: bool = True, jitter: float = 0.0, pan_mix: float = 0.0):
        if batch % dist.world:
            raise PansharpenError(f"the global batch {batch} must be divisible by the "
                                  f"number of processes {dist.world}")
        if len(data) < batch:
            raise PansharpenError(f"{len(data)} training patches are fewer than one "
                                  f"batch of {batch}; lower the batch or add data")
        self.data, self.batch, self.seed, self.dist = data, batch, seed, dist
        self.augment, self.jitter, self.pan_mix = augment, jitter, pan_mix
        self.local = batch // dist.world
        self.steps_per_epoch = len(data) // batch
        self.positions = torch.arange(dist.rank, batch, dist.world)
        self._epoch, self._order = -1, []

    def _order_of(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            sampler = DistributedSampler(range(len(self.data)), num_replicas=self.dist.world,
                                         rank=self.dist.rank, shuffle=True, seed=self.seed)
            sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, list(sampler)
        return self._order

    def __call__(self, step: int) -> Batch:
        epoch, j = divmod(step, self.steps_per_epoch)
        index = torch.tensor(self._order_of(epoch)[j * self.local:(j + 1) * self.local])
        ops = gains = mixes = None
        if self.augment:
            g = torch.Generator().manual_seed(seed_of(self.seed, step, 0))
            ops = torch.randint(0, 8, (self.batch,), generator=g)[self.positions]
            if self.jitter > 0:
                g = torch.Generator().manual_seed(seed_of(self.seed, step, 1))
                log_gains = (2 * torch.rand(self.batch, self.data.bands, generator=g) - 1) * self.jitter
                gains = log_gains.exp()[self.positions]
            if self.pan_mix > 0 and self.data.gt is not None:
                g = torch.Generator().manual_seed(seed_of(self.seed, step, 2))
                share = torch.rand(self.batch, generator=g) * self.pan_mix
                weights = -torch.log(torch.rand(self.batch, self.data.bands, generator=g))  # Dirichlet(1)
                mixes = (share[self.positions], (weights / weights.sum(1, keepdim=True))[self.positions])
        tensors = {k: v.to(self.dist.device) for k, v in self.data.batch(index, ops, gains, mixes).items()}
        return Batch(tensors, step, self.seed, self.positions, self.batch, self.dist.device,
                     index, ops)


# ---------------------------------------------------------------- optimisation parts

def warmup_cosine(cfg: StageConfig) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over ``warmup`` steps, then a half cosine from 1
    to ``min_lr_ratio`` at ``steps``."""
    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        span = max(1, cfg.steps - cfg.warmup)
        progress = min(1.0, (step - cfg.warmup) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


class EMA:
    """Exponential moving average of the trainable parameters.

    Decay ramps as min(decay, (1 + n) / (10 + n)) over the update count n (project
    choice, common practice) so early averages are not dominated by the random init."""

    def __init__(self, named_params: list[tuple[str, nn.Parameter]], decay: float):
        self.decay = decay
        self.params = dict(named_params)
        self.shadow = {n: p.detach().clone() for n, p in named_params}
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in self.params.items():
            self.shadow[name].mul_(d).add_(p.detach(), alpha=1 - d)
        self.updates += 1

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for name, p in self.params.items():
            p.copy_(self.shadow[name])


def autocast_dtype(cfg: StageConfig, device: torch.device) -> torch.dtype | None:
    """bfloat16 on CUDA when supported, else float16; None (no autocast) on CPU."""
    if not cfg.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ---------------------------------------------------------------- checkpoints

def _json(obj):
    if isinstance(obj, dict):
        return {str(k): _json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.item()
    return obj


def save_checkpoint(path: Path, step: int, module: nn.Module, optimizer, scheduler,
                    scaler, ema: EMA | None, stage: str) -> None:
    """Everything ``resume`` needs, in one safetensors file (atomic rename)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().clone().contiguous()
               for k, v in module.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.clone().contiguous() for k, v in ema.shadow.items()})
    opt = optimizer.state_dict()
    scalars = {}
    for pid, state in opt["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    meta = {
        "format": CHECKPOINT_FORMAT, "stage": stage, "step": str(step),
        "optim_groups": json.dumps(_json(opt["param_groups"])),
        "optim_scalars": json.dumps(_json(scalars)),
        "scheduler": json.dumps(_json(scheduler.state_dict())),
        "scaler": json.dumps(_json(scaler.state_dict())),
        "ema_updates": str(ema.updates if ema is not None else 0),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_checkpoint(path: Path, module: nn.Module, optimizer, scheduler, scaler,
                    ema: EMA | None, stage: str) -> int:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns its step. A
    truncated, foreign or pickled file is one PansharpenError (never unpickled)."""
    from ..engine.models.weights import _check_safetensors_header

    damaged = (f"--resume: the checkpoint {path} is damaged or not one this program wrote ({{}}); "
               "delete it to start the stage afresh, or drop --resume")
    try:
        _check_safetensors_header(str(path))
    except PansharpenError as exc:
        raise PansharpenError(damaged.format(str(exc).split(". ")[0])) from None
    try:
        return _restore_checkpoint(path, module, optimizer, scheduler, scaler, ema, stage)
    except PansharpenError:
        raise
    except (Exception, RecursionError) as exc:  # safetensors, JSON, key and shape errors
        raise PansharpenError(damaged.format(f"{type(exc).__name__}: {' '.join(str(exc).split())[:150]}")) from None


def _restore_checkpoint(path: Path, module: nn.Module, optimizer, scheduler, scaler,
                        ema: EMA | None, stage: str) -> int:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("stage") != stage:
        raise PansharpenError(f"{path} is not a checkpoint of stage {stage} (found "
                              f"{meta.get('stage')!r}); use another --out or drop --resume")
    tensors = load_file(str(path))
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in json.loads(meta["optim_scalars"]).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state,
                               "param_groups": json.loads(meta["optim_groups"])})
    scheduler.load_state_dict(json.loads(meta["scheduler"]))
    scaler_state = json.loads(meta["scaler"])
    if scaler_state:
        scaler.load_state_dict(scaler_state)
    if ema is not None:
        for name in ema.shadow:
            ema.shadow[name].copy_(tensors[f"ema.{name}"])
        ema.updates = int(meta["ema_updates"])
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if states:
            torch.cuda.set_rng_state_all(states)
    return int(meta["step"])


# ---------------------------------------------------------------- reporting

class Progress:
    """One stderr line: stage, bar, step, loss, learning rate, speed, time left."""

    def __init__(self, name: str, total: int, start: int, enabled: bool):
        self.name, self.total, self.start, self.enabled = name, total, start, enabled
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_print = -1.0

    def update(self, step: int, loss: float, lr: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        done = step - self.start
        final = step == self.total
        if not final and now - self.last_print < (0.5 if self.tty else 10.0):
            return
        self.last_print = now
        rate = done / max(now - self.t0, 1e-9)
        left = (self.total - step) / rate if rate > 0 else float("inf")
        filled = int(30 * step / max(1, self.total))
        line = (f"{self.name} [{'#' * filled}{'.' * (30 - filled)}] {step}/{self.total} "
                f"loss {loss:.5f} lr {lr:.2e} {rate:.2f} it/s eta {left:5.0f}s")
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


class CsvLog:
    """``log.csv``: step, loss, lr, grad_norm, seconds. On resume the rows after the
    checkpoint's step (from the interrupted run) are dropped."""

    COLUMNS = ["step", "loss", "lr", "grad_norm", "seconds"]

    def __init__(self, path: Path, start: int, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        rows = []
        if start > 0 and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start]
        self.file = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.file, self.COLUMNS)
        self.writer.writeheader()
        self.writer.writerows(rows)

    def write(self, **row) -> None:
        if self.enabled:
            self.writer.writerow(row)

    def close(self) -> None:
        if self.enabled:
            self.file.close()


def tensorboard_writer(out_dir: Path, enabled: bool):
    """A SummaryWriter, or None when the ``tensorboard`` package is missing (the CSV
    log has the same scalars)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


# ---------------------------------------------------------------- validation

@torch.no_grad()
def validate(predict: Callable[[dict], torch.Tensor], data: PatchSet, batch: int,
             device: torch.device, limit: int = 0) -> dict:
    """Mean SAM, ERGAS, Q2n, SCC over the validation patches (engine.quality).

    Predictions (mapped back first when the patches are scene-normalised) are clipped
    to [0, 1] (the sensor's range; project choice) and de-normalised by the data's scale: the indices work on digital numbers
    (docs/design.md). No border is cut: patches are only 64 pixels wide."""
    from ..engine.quality import reduced_indices

    if data.gt is None:
        raise PansharpenError("validation data have no ground truth (gt)")
    n = len(data) if not limit else min(limit, len(data))
    sums: dict[str, float] = {}
    for i in range(0, n, batch):
        index = torch.arange(i, min(i + batch, n))
        b = {k: v.to(device) for k, v in data.batch(index).items()}
        fused, ref = predict(b).float().cpu().numpy(), b["gt"].cpu().numpy()
        if data.norm is not None:  # scene-normalised patches: back to values / scale
            fused, ref = data.norm.denormalise_ms(fused), data.norm.denormalise_ms(ref)
        fused = np.clip(fused, 0, 1).astype(np.float64) * data.scale
        ref = ref.astype(np.float64) * data.scale
        for f, r in zip(fused, ref):
            for key, value in reduced_indices(f, r, data.ratio, border=0).items():
                sums[key] = sums.get(key, 0.0) + float(value)
    out = {k: v / n for k, v in sums.items()}
    out["patches"] = n
    return out


# ---------------------------------------------------------------- the loop

@dataclass
class Stage:
    """What a stage gives the loop.

    ``module`` holds every network the loss touches (frozen ones with
    ``requires_grad=False``; checkpoints hold all of it); ``loss(batch)`` returns a
    scalar; ``predict(batch)`` returns normalised HRMS for validation (None: no
    validation)."""

    name: str
    module: nn.Module
    loss: Callable[[Batch], torch.Tensor]
    predict: Callable[[dict], torch.Tensor] | None = None
    augment: bool = True


@dataclass
class StageResult:
    step: int  # the step reached
    losses: list[float] = field(default_factory=list)  # this run's losses, per step
    validation: dict | None = None
    tensorboard: bool = False
    out_dir: Path | None = None


def train_stage(stage: Stage, train: PatchSet, val: PatchSet | None, cfg: StageConfig,
                out_dir: str | Path, *, seed: int = 0, resume: bool | str = False,
                stop_after: int | None = None, dist: Dist | None = None,
                progress: bool = True) -> StageResult:
    """Train ``stage.module`` for ``cfg.steps`` steps (or until ``stop_after``, which
    simulates an interruption: a checkpoint is written there). ``resume``: True
    continues from the stage's checkpoint, ``"auto"`` does so only if there is one.

    With EMA (``cfg.ema`` > 0) the EMA weights are copied into the module at the end
    of the stage, before validation: they are the stage's result."""
    dist = dist or Dist()
    out_dir = Path(out_dir)
    if dist.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    module = stage.module.to(dist.device)
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        raise PansharpenError(f"stage {stage.name} has nothing to train")
    params = [p for _, p in named]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas,
                                  weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg))
    amp = autocast_dtype(cfg, dist.device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    ema = EMA(named, cfg.ema) if cfg.ema > 0 else None

    ckpt = out_dir / CHECKPOINT
    start = 0
    if resume == "auto":  # 'train all --resume': stages not begun yet start afresh
        resume = ckpt.exists()
    if resume:
        if not ckpt.exists():
            raise PansharpenError(f"--resume: no checkpoint {ckpt}; run without --resume")
        start = load_checkpoint(ckpt, module, optimizer, scheduler, scaler, ema, stage.name)
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)

    plan = BatchPlan(train, cfg.batch, seed, dist, augment=stage.augment, jitter=cfg.spectral_jitter,
                     pan_mix=cfg.pan_mix)
    log = CsvLog(out_dir / LOG, start, dist.main)
    board = tensorboard_writer(out_dir, dist.main)
    bar = Progress(stage.name, cfg.steps, start, dist.main and progress)
    result = StageResult(step=start, tensorboard=board is not None, out_dir=out_dir)
    t0 = time.monotonic()
    module.train()
    for step in range(start, end):
        batch = plan(step)
        with (torch.autocast(dist.device.type, dtype=amp) if amp is not None
              else contextlib.nullcontext()):
            loss = stage.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        average_gradients(params, dist)
        scaler.unscale_(optimizer)
        if cfg.clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip))
        else:
            grad_norm = float(torch.norm(torch.stack(
                [p.grad.norm() for p in params if p.grad is not None])))
        lr = optimizer.param_groups[0]["lr"]
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update()
        value = float(_all_mean(loss.detach().float().clone(), dist))
        result.losses.append(value)
        result.step = step + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == end:
            log.write(step=step + 1, loss=f"{value:.8g}", lr=f"{lr:.8g}",
                      grad_norm=f"{grad_norm:.6g}", seconds=f"{time.monotonic() - t0:.3f}")
            if board is not None:
                board.add_scalar(f"{stage.name}/loss", value, step + 1)
                board.add_scalar(f"{stage.name}/lr", lr, step + 1)
        bar.update(step + 1, value, lr)
        if dist.main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == end):
            save_checkpoint(ckpt, step + 1, module, optimizer, scheduler, scaler, ema,
                            stage.name)
    log.close()
    if result.step < cfg.steps:  # interrupted on purpose: no final weights yet
        if board is not None:
            board.close()
        return result
    if ema is not None:
        ema.copy_to_model()
    module.eval()
    if val is not None and stage.predict is not None and dist.main:
        result.validation = validate(stage.predict, val, cfg.val_batch, dist.device,
                                     cfg.val_patches)
        with open(out_dir / "validation.json", "w") as f:
            json.dump(result.validation, f, indent=2)
        if board is not None:
            for key, value in result.validation.items():
                board.add_scalar(f"{stage.name}/val_{key}", value, cfg.steps)
    if board is not None:
        board.close()
    return result

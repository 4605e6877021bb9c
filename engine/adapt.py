"""Adapt a deep model to the user's own scene, without ground truth.

Two objectives (``OBJECTIVES``). "wald", target-adaptive fine-tuning (Scarpa, Vitale,
Cozzolino, "Target-adaptive CNN-based pansharpening", IEEE TGRS 2018): the scene's PAN
and MS, degraded once more by Wald's protocol, form training pairs whose reference is
the scene's own MS. "full" (the default), after Z-PNN (Ciotola et al., TGRS 2022):
the network runs on the scene at its own scale and its raw output, blurred by the
sensor's MTF and decimated, must give back the MS (:func:`_full_loss`). Measured on
left-out scenes (docs/adaptation.md): "wald" lowers its held-out loss but costs Q2n at
the scale above (what is learnt one scale down does not carry over); "full" raises
Q2n and lowers ERGAS, since it trains at the scale the network will run at. Z-PNN's
structural term (local correlation with the PAN) was tried beside it and lowered Q2n in
three of four tries (docs/adaptation.md; its code is in commit 258339e), so "full" is
the spectral term alone.

Project choices, named (measured in docs/quality.md and docs/adaptation.md):
- Material: the content-rich sample of ``guard.content_window`` (``SAMPLE`` PAN pixels
  a side at most, fully valid), cut into 64 x 64 patches every 16 pixels (Wald-degraded
  first for "wald"); the right-most fifth of the patch columns is held out to measure
  the gain. A smaller scene takes patches of a third of its shorter side, and one
  whose patches would be under ``MIN_PATCH`` pixels (a side under 120) is refused: on
  the left-out SpaceNet-6 tiles at reduced resolution, 30 s of adaptation lowered Q2n on
  the two under that (96 and 80 PAN pixels a side: fose 0.9486 -> 0.9441, ksdiff 0.9478
  -> 0.9403 on the smaller at 11-bit) and raised it on the 144-pixel one and on the
  124-pixel Landsat-8 strip (docs/adaptation.md). So is a scene too small for the check
  (``guard.too_small``: under the pixels of a 320-pixel square at ratio 4, 160 at ratio 2),
  where ``sharpen --adapt`` could not measure the adapted model against the base one: with
  the engine's floored, multiplicatively projected mix (session 17), 30 s of adaptation on
  SpaceNet-6 tile 1 (148 x 148 PAN pixels) lowered Q2n in three of four runs (fose 11-bit 0.9200 ->
  0.9189) and raised SAM in all four (fose 8-bit 8.80 -> 9.06, past OTB's 9.05).
- What is adapted: every parameter, with Adam at ``LR``; "wald" takes L1 on the
  normalised output AFTER the consistency projection (``consistency.project_torch``,
  its separable form), so the steps go to what the projection cannot fix (the detail);
  "full" takes its loss on the output before it (after it the loss is zero by
  construction); the 8 dihedral flips/rotations, fresh noise each step (the diffusion
  parts learn the noise-to-residual map, not one draw); batch ``BATCH``.
- Budget: steps run until ``seconds`` have passed (validation included). Every
  ``CHECK_EVERY`` steps the held-out L1 is measured and the best weights so far kept
  (early stopping: on a small scene the steps soon overfit its few patches; measured
  on a SpaceNet-6 tile, 340 steps without it lowered Q2n from 0.880 to 0.872); the
  adapted weights are kept only when the held-out L1 fell, otherwise the base model runs.
- The result is an ordinary ``.safetensors`` file whose metadata names the base model
  (file name and SHA-256) and the scene (``scene_hash``: a hash of the inputs' sizes and
  a decimated read of their pixels), so a rerun on the same scene finds it in the cache
  folder (``cache_path``) and a user can pass it with ``--weights`` to the neighbouring
  scenes of the same acquisition.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import registry
from .band_order import model_order
from .errors import Cancelled, PansharpenError

SAMPLE = 1024  # PAN pixels a side of the scene sample adapted on (at most)
PATCH = 64
STRIDE = 16
BATCH = 8
LR = 1e-4
DEFAULT_SECONDS = 120.0
VAL_FRACTION = 0.2
CACHE_ENV = "DIFFUSION_PANSHARPENING_CACHE"
OBJECTIVES = ("wald", "full")
CHECK_EVERY = 25  # steps between held-out checks (early stopping)
MAX_PATCHES = 1024  # about 80 MB of 64 x 64 4-band patches: a 1024-pixel sample at its own scale needs a wider stride
MIN_PATCHES = 8  # training patches (apart from the held-out strip) below which a scene is too small
MIN_PATCH = 40  # PAN pixels a side of the smallest patch (a scene of 120 a side at ratio 2 or 4; module doc)


@dataclass
class Adapted:
    """Where the adapted weights are and what adaptation gained on held-out patches."""

    path: str | None  # None: the base model is better on the held-out patches
    base: str
    steps: int
    seconds: float
    before: float  # held-out L1 (normalised units) of the base model
    after: float
    reused: bool = False

    def summary(self) -> str:
        if self.reused:
            return f"Reusing the model adapted to this scene earlier: {self.path}."
        gain = 100.0 * (self.before - self.after) / self.before if self.before else 0.0
        kept = (f"kept ({self.path})" if self.path else "not kept: the base model runs")
        return (f"Adapted to this scene in {self.seconds:.0f} s ({self.steps} steps): held-out L1 "
                f"{self.before:.4f} -> {self.after:.4f} ({gain:+.1f} %), {kept}.")


def cache_dir() -> Path:
    """Where adapted weights are kept: ``DIFFUSION_PANSHARPENING_CACHE`` or the user's
    cache folder."""
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "diffusion_pansharpening")
    return Path(base) / "adapted"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scene_hash(pair) -> str:
    """A short hash of a ``RasterPair``'s inputs: sizes, window and a decimated read of
    the PAN and every MS band (the same pixels give the same hash wherever the files are)."""
    digest = hashlib.sha256()
    win = pair.window
    digest.update(json.dumps([pair.ratio, pair.bands, win.x0, win.y0, win.width, win.height]).encode())
    band = pair.pan_ds.GetRasterBand(pair.pan_band_index)
    digest.update(band.ReadAsArray(buf_xsize=min(256, band.XSize), buf_ysize=min(256, band.YSize)).tobytes())
    for b in range(pair.bands):
        ms = pair.ms_ds.GetRasterBand(b + 1)
        digest.update(ms.ReadAsArray(buf_xsize=min(128, ms.XSize), buf_ysize=min(128, ms.YSize)).tobytes())
    return digest.hexdigest()[:16]


def cache_path(scene: str, base_sha256: str, base_weights: str) -> Path:
    """The cache file of ``base_weights`` adapted to the scene hashed ``scene``."""
    return cache_dir() / f"{scene}-{base_sha256[:12]}-{Path(base_weights).stem}.safetensors"


def scene_patches(sample, kind: str, objective: str = "wald"):
    """Normalised float32 arrays (N first) of patches of an in-memory sample
    (``evaluate.Pair``) and the column of each patch.

    ``objective`` "wald": (gt, lms, ms, pan) of the sample degraded once more, the
    sample's MS the reference. "full": (lms, ms, pan) of the sample at its own scale,
    no reference (the losses of :func:`_full_loss` need none)."""
    from .mtf import wald_degrade
    from .radiometry import CONSTANT, SceneNormalisation
    from .upsample import upsample

    r = sample.ratio
    if objective == "wald":
        h, w = (n // r * r for n in sample.ms.shape[1:])  # the MS must divide by the ratio once more
        gt = sample.ms[:, :h, :w]
        pan, ms = wald_degrade(sample.pan[:h * r, :w * r], gt, r, sample.sensor)
    elif objective == "full":
        gt, ms = None, sample.ms
        h, w = (n * r for n in ms.shape[1:])
        pan = sample.pan[:h, :w]
    else:
        raise PansharpenError(f"unknown adaptation objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    lms = upsample(ms, r)
    patch = min(PATCH, min(h, w) // 3 // (2 * r) * (2 * r))  # small scenes: smaller patches
    if patch < MIN_PATCH:
        need = 3 * -(-MIN_PATCH // (2 * r)) * 2 * r
        raise PansharpenError(f"the scene gives {w} x {h} PAN pixels to adapt on, too few (it needs "
                              f"{need} a side): sharpen it without --adapt")
    stride = max(r, min(STRIDE, patch // 4) // r * r)
    while ((h - patch) // stride + 1) * ((w - patch) // stride + 1) > MAX_PATCHES:
        stride += r  # a large sample at its own scale: fewer, still evenly spread, patches
    if kind == CONSTANT:
        n_pan = lambda a: a / np.float32(sample.scale)
        n_ms = n_pan
    else:
        norm = SceneNormalisation.from_arrays(pan, ms, kind=kind)
        n_pan, n_ms = norm.normalise_pan, norm.normalise_ms
    q = patch // r
    items, cols = [], []
    for y in range(0, h - patch + 1, stride):
        for x in range(0, w - patch + 1, stride):
            window = (slice(None), slice(y, y + patch), slice(x, x + patch))
            items.append(([] if gt is None else [gt[window]])
                         + [lms[window], ms[:, y // r:y // r + q, x // r:x // r + q], pan[None, y:y + patch, x:x + patch]])
            cols.append(x)
    stacks = [np.stack([it[i] for it in items]).astype(np.float32) for i in range(len(items[0]))]
    return tuple([n_ms(a) for a in stacks[:-1]] + [n_pan(stacks[-1])]), np.asarray(cols)


def _refuse_if_uncheckable(sample) -> None:
    """Refuse a scene too small for the check (``guard.too_small`` on the sample the check
    would read): the adapted model could not be measured against the base one, and on such
    a scene adapting lost (module doc)."""
    from . import guard

    if guard.too_small(tuple(min(n, guard.SAMPLE) for n in sample.pan.shape), sample.ratio):
        side = guard.MIN_REDUCED * sample.ratio
        h, w = sample.pan.shape
        raise PansharpenError(f"the scene gives {w} x {h} PAN pixels to adapt on, too few for the check to "
                              f"measure what adapting gains (it needs the pixels of a {side} x {side} square): "
                              "sharpen it without --adapt")


def split_patches(cols: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) patch indices: held out are those starting in the right-most
    ``VAL_FRACTION`` of the columns, training those ENDING before that strip begins (no
    pixel in both: overlapping patches would make the held-out loss fall with
    overfitting). Too few of either: the scene is too small to adapt on."""
    cut = np.quantile(cols, 1.0 - VAL_FRACTION)
    val_idx, train_idx = np.nonzero(cols >= cut)[0], np.nonzero(cols + patch <= cut)[0]
    if len(train_idx) < MIN_PATCHES or len(val_idx) < 2:
        raise PansharpenError(f"the scene gives {len(train_idx)} training patches, fewer than the "
                              f"{MIN_PATCHES} adaptation needs not to overfit: sharpen it without --adapt")
    return val_idx, train_idx


def adapt(pair, base_weights: str, *, seconds: float = DEFAULT_SECONDS, device: str = "auto",
          seed: int = 0, out: str | None = None, progress: Callable[[float], None] | None = None,
          cancelled: Callable[[], bool] | None = None, reuse: bool = True,
          sample=None, max_steps: int | None = None, consistent: bool = True,
          objective: str = "full", register: bool = False) -> Adapted:
    """Fine-tune ``base_weights`` on the scene of ``pair`` (a ``RasterPair``) for about
    ``seconds``; write the adapted file to ``out`` (default: the cache) when it gains.

    ``sample`` (an ``evaluate.Pair``) replaces the scene sample (benchmarks adapt on a
    reduced-resolution pair they hold in memory); ``max_steps`` stops after that many
    steps (with a seed, the same steps give the same weights); ``consistent``: the loss
    is taken after the consistency projection, as the engine will run the model;
    ``objective``: "wald" (pairs one scale down, the MS the reference) or "full" (the
    scene at its own scale, no reference: :func:`_full_loss`); ``register``: the sample's
    PAN is moved onto its MS first, as the engine then runs the model (``registration``)."""
    import torch

    from .families import read_metadata
    from .models import load, save_weights

    if seconds <= 0:
        raise PansharpenError(f"the adaptation budget must be a positive number of seconds, got {seconds}")
    scene = scene_hash(pair) if pair is not None else "in-memory sample"
    base_sha256 = file_sha256(base_weights)
    target = Path(out) if out else (cache_path(scene, base_sha256, base_weights) if pair is not None else None)
    if reuse and target is not None and target.exists() and out is None:
        return Adapted(str(target), base_weights, 0, 0.0, 0.0, 0.0, reused=True)
    start = time.perf_counter()
    if sample is None:
        from .guard import read_sample

        sample = read_sample(pair, SAMPLE)
    if register:
        from .registration import align

        sample, _ = align(sample)
    _refuse_if_uncheckable(sample)
    deep = load(base_weights, device=device, half=False)
    if deep.architecture not in registry.adaptable():
        raise PansharpenError(f"a {deep.architecture} model cannot be adapted (its 50-step sampling is "
                              f"too slow to train through): adapt one of {', '.join(registry.adaptable())}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    from .consistency import gains_for, separable_operators

    gains = gains_for(sample.sensor, deep.bands)
    order = model_order(pair.band_names, deep.metadata.get("bands")) if pair is not None else None
    if order:  # the bands as the network takes them (band_order)
        sample, gains = replace(sample, ms=sample.ms[list(order)]), gains[list(order)]
    arrays, cols = scene_patches(sample, deep.normalisation, objective)
    ops = separable_operators(gains, sample.ratio, arrays[0].shape[-1])
    ops = tuple(torch.from_numpy(o).to(deep.device) for o in ops)
    projection = ops if consistent and objective == "wald" else None
    val_idx, train_idx = split_patches(cols, arrays[0].shape[-1])
    dev = deep.device
    tensors = [torch.from_numpy(a).to(dev) for a in arrays]
    net = deep.model

    def loss_on(index, gen, train: bool):
        *gt, lms, ms, pan = (t[torch.as_tensor(index, device=dev)] for t in tensors)
        out = _run(net, deep, lms, ms, pan, gen, train, projection)
        loss = (out - gt[0]).abs().mean() if gt else _full_loss(out, ms, ops[0])
        return loss if train else float(loss)

    def val_loss() -> float:  # the same noise every time: comparable values
        net.eval()
        with torch.no_grad():
            value = loss_on(val_idx, torch.Generator().manual_seed(seed + 1), train=False)
        net.train()
        return value

    before = val_loss()
    best, best_state = before, None
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    steps = 0
    budget_end = start + seconds
    net.train()
    while time.perf_counter() < budget_end - 0.1 * seconds and steps != max_steps:  # time to validate, save
        if cancelled is not None and cancelled():
            raise Cancelled("Adaptation cancelled; nothing was written.")
        pick = train_idx[torch.randint(len(train_idx), (min(BATCH, len(train_idx)),), generator=gen).numpy()]
        loss = loss_on(pick, gen, train=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        steps += 1
        if steps % CHECK_EVERY == 0 or steps == max_steps:  # early stopping on the held-out patches
            value = val_loss()
            if value < best:
                best, best_state = value, {k: v.detach().clone() for k, v in net.state_dict().items()}
        if progress is not None:
            progress(min(1.0, (time.perf_counter() - start) / seconds))
    value = val_loss()
    if value < best:
        best, best_state = value, None
    elif best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    after = best
    path = None
    if after < before and target is not None:
        meta = read_metadata(base_weights)
        meta.update({"adapted_from": Path(base_weights).name, "adapted_from_sha256": base_sha256,
                     "scene_hash": scene,
                     "adaptation": json.dumps({"seconds": round(time.perf_counter() - start, 1), "steps": steps,
                                               "objective": objective,
                                               "heldout_loss_before": before, "heldout_loss_after": after})})
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            save_weights(str(scratch), net, meta)
            os.replace(scratch, target)
        finally:
            if scratch.exists():
                scratch.unlink()
        path = str(target)
    if progress is not None:
        progress(1.0)
    return Adapted(path, base_weights, steps, time.perf_counter() - start, before, after)


def _run(net, deep, lms, ms, pan, gen, train: bool, projection=None):
    """The network's output on a batch of patches, after the consistency projection
    when ``projection`` (its separable operators) is given, as the engine runs it;
    dihedral-augmented when training (the output turned back first)."""
    import torch

    from .consistency import project_torch

    k = int(torch.randint(8, (1,), generator=gen)) if train else 0
    kwargs = {}
    if deep.architecture != "e2e":
        shape = net.latent_shape(len(lms)) if deep.architecture == "ksdiff" else tuple(lms.shape)
        kwargs["noise"] = torch.randn(shape, generator=gen).to(lms.device)
    raw = _undihedral(net(_dihedral(pan, k), _dihedral(lms, k), _dihedral(ms, k), **kwargs), k)
    return raw if projection is None else project_torch(raw, ms, *projection)


def _full_loss(raw, ms, m):
    """The loss of objective "full", without reference, at the scene's own scale: L1
    between the MS and the network's raw output blurred by the sensor MTF and decimated
    (``m``: the per-band operator of ``consistency.separable_operators``), Z-PNN's
    spectral loss (Ciotola et al., TGRS 2022). Taken before the consistency
    projection, which would make it zero."""
    return (m @ raw @ m.transpose(-1, -2) - ms).abs().mean()


def _dihedral(x, k: int):
    import torch

    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def _undihedral(x, k: int):
    import torch

    x = torch.flip(x, dims=(-1,)) if k >= 4 else x
    return torch.rot90(x, -(k % 4), dims=(-2, -1))

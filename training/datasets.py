"""Training data: PanCollection HDF5, ready-made patch files, and real PAN/MS pairs.

Every source ends as a :class:`PatchSet`: normalised float32 arrays ``gt``, ``lms``
(B, 64, 64), ``ms`` (B, 16, 16) and ``pan`` (1, 64, 64) per patch (ratio 4), plus the
scale that normalised them. Real pairs are turned into patches by Wald's protocol
(docs/design.md, "Training data"): the MS is the ground truth; PAN and MS are degraded by
the ratio with the sensor's MTF (``engine.mtf.wald_degrade``) and the degraded MS is
upsampled with ``engine.upsample.upsample`` into the LMS.

Region split (project choice): the right-most strip of MS columns
(``val_fraction`` of the width, rounded to a multiple of the ratio) is validation, the
rest is training. The scene is cut into the two regions BEFORE degradation, and each
region is degraded on its own (replicate borders), so not even the MTF filter's
support carries a validation pixel into a training patch, and no patch straddles the
cut. Patch files without geography (HDF5, WV3 ``train.mat``) are split by patch index:
the last ``val_fraction`` of the patches are validation (PanCollection ships separate
validation files; pass one as ``validation`` to use it instead).

Normalisation: by default every array is divided by the constant scale (sensor, NBITS
or data type). With ``normalisation="scene"`` (config ``[data] normalisation``) the
patches are mapped by the scene's own statistics (one offset and span for all bands and
the PAN; "scene-band": per band, the earlier choice), as the engine does for models
trained so (``engine.radiometry``): the statistics come from the degraded
inputs of each region (PAN_lr and MS_lr, i.e. what inference would see) and apply to
inputs and ground truth alike; ``PatchSet.norm`` keeps them for validation. Patch
files without a scene take the statistics of all their degraded patches together.

Augmentation: the eight elements of the dihedral group (flips and 90-degree
rotations), applied identically to all four arrays of a patch, chosen per sample by the
trainer's step-keyed generator (see ``trainer.BatchPlan``) so runs are reproducible; and,
where a stage asks for them (``spectral_jitter``, ``pan_mix``; docs/design.md), random
per-band gains and a PAN partly replaced by a random band mix of the truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..engine import sensors
from ..engine.errors import PansharpenError


@dataclass
class PatchSet:
    """Normalised patches (float32 torch tensors, N first) and how they were made."""

    gt: torch.Tensor | None  # (N, B, H, W); None for full-resolution files
    lms: torch.Tensor  # (N, B, H, W)
    ms: torch.Tensor  # (N, B, h, w)
    pan: torch.Tensor  # (N, 1, H, W)
    scale: float
    ratio: int
    sensor: str | None = None
    source: str = ""
    norm: object | None = None  # engine.radiometry.SceneNormalisation of values / scale
    zero: torch.Tensor | None = None  # (N, B, 1, 1) where radiometric 0 lies; None: at 0

    def __len__(self) -> int:
        return int(self.pan.shape[0])

    @property
    def bands(self) -> int:
        return int(self.ms.shape[1])

    def subset(self, index: Sequence[int] | slice) -> "PatchSet":
        pick = (lambda a: None if a is None else a[index])
        return PatchSet(pick(self.gt), pick(self.lms), pick(self.ms), pick(self.pan),
                        self.scale, self.ratio, self.sensor, self.source, self.norm, pick(self.zero))

    def zeros(self) -> torch.Tensor:
        """(N, B, 1, 1): each patch's normalised value of radiometric zero, the origin of
        its spectral angles (a scene normalisation shifts it away from 0)."""
        if self.zero is not None:
            return self.zero
        return torch.zeros(len(self), self.bands, 1, 1)

    def batch(self, index: torch.Tensor, ops: torch.Tensor | None = None,
              gains: torch.Tensor | None = None, mixes: tuple | None = None) -> dict:
        """Stack the patches ``index``; ``ops`` (same length, 0..7) picks the dihedral
        transform of each one (None: no augmentation); ``gains`` (same length, one per
        band) scale each patch's multispectral arrays about its radiometric zero: the
        same ground under another sensor's band calibration, the PAN unchanged;
        ``mixes`` (shares (N,), band weights (N, B)) replace that share of each PAN by
        that mix of its truth's bands, at the PAN's own mean and spread: a PAN of another
        spectral response over the same ground."""
        out = {}
        zero = self.zeros()[index] if gains is not None else None
        for name in ("gt", "lms", "ms", "pan"):
            array = getattr(self, name)
            if array is None:
                continue
            items = array[index]
            if ops is not None:
                items = torch.stack([dihedral(x, int(k)) for x, k in zip(items, ops)])
            if gains is not None and name != "pan":
                items = zero + gains[:, :, None, None] * (items - zero)
            out[name] = items
        if mixes is not None:
            share, weights = mixes[0][:, None, None, None], mixes[1][:, :, None, None]
            pan, synthetic = out["pan"], (weights * out["gt"]).sum(1, keepdim=True)
            mean, spread = pan.mean((2, 3), keepdim=True), pan.std((2, 3), keepdim=True)
            synthetic = (synthetic - synthetic.mean((2, 3), keepdim=True)) / synthetic.std((2, 3), keepdim=True).clamp_min(1e-6)
            out["pan"] = (1 - share) * pan + share * (mean + spread * synthetic)
        if self.zero is not None:
            out["zero"] = self.zero[index]
        return out


def dihedral(x: torch.Tensor, op: int) -> torch.Tensor:
    """Element ``op`` (0..7) of the dihedral group on the last two axes:
    ``op % 4`` quarter turns, then a horizontal flip when ``op >= 4``."""
    x = torch.rot90(x, op % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if op >= 4 else x


# ---------------------------------------------------------------- patch files

def _from_arrays(arrays: dict, scale: float, sensor, source: str) -> PatchSet:
    """N x C x H x W DN arrays (pan may be N x H x W) -> normalised PatchSet."""
    for key in ("ms", "lms", "pan"):
        if key not in arrays:
            raise PansharpenError(f"{source} has no '{key}' array; a PanCollection-style "
                                  "file needs ms, lms, pan (and gt for reduced resolution)")
    pan = np.asarray(arrays["pan"], dtype=np.float32)
    if pan.ndim == 3:
        pan = pan[:, None]
    tensors = {k: torch.from_numpy(np.asarray(arrays[k], dtype=np.float32) / scale)
               for k in ("ms", "lms")}
    gt = arrays.get("gt")
    ratio = pan.shape[-1] // tensors["ms"].shape[-1]
    if ratio < 1 or pan.shape[-1] != ratio * tensors["ms"].shape[-1]:
        raise PansharpenError(f"{source}: PAN patches {pan.shape[-2:]} are not an integer "
                              f"multiple of the MS patches {tuple(tensors['ms'].shape[-2:])}")
    return PatchSet(
        gt=None if gt is None else torch.from_numpy(np.asarray(gt, np.float32) / scale),
        lms=tensors["lms"], ms=tensors["ms"], pan=torch.from_numpy(pan / scale),
        scale=float(scale), ratio=int(ratio), sensor=sensor, source=source)


def read_pancollection(path: str | Path, scale: float | None = None,
                       sensor: str | None = None) -> PatchSet:
    """A PanCollection HDF5 file (keys gt, ms, lms, pan; N x C x H x W; DN values).

    The scale is not stored in the files: it is 2047 (WV3, WV2, QB) or 1023 (GF2).
    Without ``scale`` or ``sensor``, 1023 is taken when the largest value fits in 10
    bits, else 2047 (project heuristic, named here)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        arrays = {k: f[k][()] for k in ("gt", "ms", "lms", "pan") if k in f}
    if scale is None:
        known = sensors.lookup(sensor)  # docs/design.md, "Common conventions"
        scale = known.scale if known else None
    if scale is None:
        peak = max(float(np.max(a)) for a in arrays.values())
        scale = 1023.0 if peak <= 1023 else 2047.0
    return _from_arrays(arrays, scale, sensor, str(path))


def read_mat_patches(path: str | Path, scale: float = 2047.0,
                     sensor: str | None = "WV3") -> PatchSet:
    """A MATLAB file of ready patches, channel-last (N x H x W x C; pan N x H x W),
    like the WV3 ``train.mat`` of ../shared/data."""
    from scipy.io import loadmat

    mat = loadmat(str(path))
    arrays = {}
    for key in ("gt", "ms", "lms", "pan"):
        if key in mat:
            a = np.asarray(mat[key])
            arrays[key] = a if key == "pan" and a.ndim == 3 else np.moveaxis(a, -1, 1)
    return _from_arrays(arrays, scale, sensor, str(path))


def rewald_patches(patches: PatchSet) -> PatchSet:
    """Ready patches degraded again from their ground truth by the engine's own Wald
    protocol (engine.mtf: sensor MTF, decimation at phase ratio // 2; LMS by
    engine.upsample), keeping the provider's PAN.

    Why: the WorldView-3 patches' MS is decimated about half a PAN pixel off that phase
    (it matches the ground truth's MTF-blurred copy at offset 1.5 where the engine's
    protocol uses 2), so a network trained on them next to our own Wald pairs learns two
    different PAN-MS registrations, and scores on them measure the provider's phase."""
    from ..engine.mtf import degrade_to_ms_scale, sensor_gains
    from ..engine.upsample import upsample

    if patches.gt is None:
        raise PansharpenError(f"{patches.source} has no ground truth to degrade again")
    gains, _ = sensor_gains(patches.sensor, patches.bands)
    gt = patches.gt.numpy().astype(np.float64)
    ms = np.stack([degrade_to_ms_scale(g, gains, patches.ratio) for g in gt])
    lms = np.stack([upsample(m, patches.ratio) for m in ms])
    f = lambda a: torch.from_numpy(a.astype(np.float32))
    return PatchSet(patches.gt, f(lms), f(ms), patches.pan, patches.scale, patches.ratio,
                    patches.sensor, f"{patches.source} (MS degraded again from gt)", patches.norm,
                    patches.zero)


# ---------------------------------------------------------------- real pairs

@dataclass
class ScenePair:
    """A co-registered real pair in DN: PAN (H, W), MS (B, H/ratio, W/ratio)."""

    pan: np.ndarray
    ms: np.ndarray
    ratio: int
    scale: float
    sensor: str | None
    source: str


def read_mat_pair(path: str | Path) -> ScenePair:
    """A GRIP-style ``.mat`` pair: I_PAN (H x W), I_MS (h x w x B), ratio, L (bits), sensor
    (read by the engine's ``pairs.read_mat_pair``, as evaluation reads it)."""
    from ..engine.pairs import read_mat_pair as read_pair

    mat = read_pair(path, np.float64)
    return ScenePair(mat.pan, mat.ms, mat.ratio, mat.scale, mat.sensor, str(path))


def read_geotiff_pair(pan_path: str | Path, ms_path: str | Path,
                      sensor: str | None = None) -> ScenePair:
    """A PAN and an MS raster (anything GDAL opens; several single-band MS files can
    be stacked first with ``gdalbuildvrt -separate``), read through the engine's
    :class:`~..engine.raster_io.RasterPair`: the overlap on the PAN grid, the MS on the
    aligned grid (warped there when its CRS or grid differ), scale from the sensor,
    NBITS or the data type.

    Training needs the MS nested in the PAN: MS pixel m covering PAN pixels
    [r m, r m + r). The pair is cropped to the whole MS pixels inside the overlap
    (dropping the partial first MS row/column when the grids are out of phase);
    a scene with nodata inside that crop is refused (crop it to valid data first)."""
    from ..engine.pairs import read_whole_ms
    from ..engine.raster_io import RasterPair

    pair = RasterPair(str(pan_path), str(ms_path), sensor=sensor)
    r = pair.ratio
    _, pan, pan_ok, ms, ms_ok = read_whole_ms(pair)
    if not (pan_ok.all() and ms_ok.all()):
        raise PansharpenError(f"{pan_path} / {ms_path} have nodata inside their overlap; "
                              "crop the pair to valid pixels before training")
    return ScenePair(pan.astype(np.float64), ms.astype(np.float64), r, pair.scale,
                     pair.sensor, f"{pan_path}+{ms_path}")


def split_columns(ms_width: int, ratio: int, val_fraction: float, patch: int = 64) -> int:
    """The first MS column of the validation strip.

    The strip is ``val_fraction`` of the width, at least one patch wide, and a
    multiple of ratio^2 (its MS width must survive one more decimation by the ratio);
    the training part keeps at least one patch width too."""
    unit = ratio * ratio
    least = -(-patch // unit) * unit
    val = max(int(round(ms_width * val_fraction / unit)) * unit, least)
    if ms_width - val < least:
        raise PansharpenError(f"an MS image {ms_width} pixels wide cannot hold a training "
                              f"and a validation strip of {patch} pixels each")
    return ms_width - val


def wald_patches(scene: ScenePair, patch: int = 64, stride: int = 32,
                 region: tuple[int, int] | None = None, normalisation: str = "scale") -> PatchSet:
    """Wald-protocol patches of one column region [c0, c1) of the MS grid.

    The MS crop is the ground truth; its PAN crop and itself are degraded by the ratio
    (engine.mtf.wald_degrade) and the degraded MS is upsampled into the LMS
    (engine.upsample.upsample). Patches are ``patch`` x ``patch`` on the ground-truth
    grid at positions that are multiples of the ratio (so each has an exact MS patch of
    patch/ratio), every ``stride`` pixels, inside the region only. ``normalisation``:
    "scale" (constant), "scene" or "scene-band" (module doc)."""
    from ..engine.mtf import wald_degrade
    from ..engine.upsample import upsample

    r = scene.ratio
    c0, c1 = region if region is not None else (0, scene.ms.shape[2])
    ms = scene.ms[:, :, c0:c1]
    pan = scene.pan[:, c0 * r:c1 * r]
    rows = ms.shape[1] - ms.shape[1] % (r * r)  # degradable height
    ms, pan = ms[:, :rows], pan[:rows * r]
    if min(ms.shape[1:]) < patch:
        raise PansharpenError(
            f"region of {ms.shape[1:]} MS pixels is smaller than one {patch}x{patch} "
            "patch; use a larger scene or a smaller validation fraction")
    pan_lr, ms_lr = wald_degrade(pan, ms, r, sensor=scene.sensor)
    lms = upsample(ms_lr, r)
    stride = max(r, stride - stride % r)
    ys = range(0, ms.shape[1] - patch + 1, stride)
    xs = range(0, ms.shape[2] - patch + 1, stride)
    q = patch // r
    gt_p, lms_p, ms_p, pan_p = [], [], [], []
    for y in ys:
        for x in xs:
            gt_p.append(ms[:, y:y + patch, x:x + patch])
            lms_p.append(lms[:, y:y + patch, x:x + patch])
            pan_p.append(pan_lr[None, y:y + patch, x:x + patch])
            ms_p.append(ms_lr[:, y // r:y // r + q, x // r:x // r + q])
    f = lambda items: torch.from_numpy(np.stack(items).astype(np.float32) / scene.scale)
    out = PatchSet(f(gt_p), f(lms_p), f(ms_p), f(pan_p), scene.scale, r, scene.sensor,
                   f"{scene.source} MS columns [{c0}, {c1})")
    if _check_normalisation(normalisation) != "scale":
        from ..engine.radiometry import SceneNormalisation

        norm = SceneNormalisation.from_arrays(pan_lr / scene.scale, ms_lr / scene.scale, kind=normalisation)
        out = apply_scene_normalisation(out, norm)
    return out


def _check_normalisation(name: str) -> str:
    from ..engine.radiometry import KINDS as NORMALISATIONS

    if name not in NORMALISATIONS:
        raise PansharpenError(f"[data] normalisation {name!r} is unknown; use one of "
                              f"{', '.join(NORMALISATIONS)}")
    return name


def apply_scene_normalisation(patches: PatchSet, norm=None, kind: str = "scene") -> PatchSet:
    """Map constant-scaled patches by scene statistics (``norm``, else those of ``kind``
    over all the patches' degraded inputs together); the result keeps ``norm`` for
    validation."""
    from ..engine.radiometry import SceneNormalisation

    if norm is None:
        pan = patches.pan.numpy()[:, 0]  # (N, H, W): the statistics see N stacked images
        ms = np.moveaxis(patches.ms.numpy(), 1, 0).reshape(patches.bands, len(patches), -1)
        norm = SceneNormalisation.from_arrays(pan.reshape(len(patches), -1), ms, kind=kind)
    ms_map = lambda t: None if t is None else torch.from_numpy(norm.normalise_ms(t.numpy()))
    zero = ms_map(torch.zeros(patches.bands, 1, 1)).expand(len(patches), -1, -1, -1).contiguous()
    return PatchSet(ms_map(patches.gt), ms_map(patches.lms), ms_map(patches.ms),
                    torch.from_numpy(norm.normalise_pan(patches.pan.numpy())),
                    patches.scale, patches.ratio, patches.sensor, patches.source, norm, zero)


def concat(sets: Sequence[PatchSet]) -> PatchSet:
    """Several training sets as one (same ratio and bands). ``norm`` is dropped: each
    part was already normalised by its own statistics; validation uses its own set."""
    first = sets[0]
    for other in sets[1:]:
        if (other.ratio, other.bands) != (first.ratio, first.bands):
            raise PansharpenError(f"cannot train on {first.source} and {other.source} together: "
                                  f"ratio/bands {first.ratio}/{first.bands} vs {other.ratio}/{other.bands}")
    cat = lambda name: (None if any(getattr(p, name) is None for p in sets)
                        else torch.cat([getattr(p, name) for p in sets]))
    return PatchSet(cat("gt"), cat("lms"), cat("ms"), cat("pan"), first.scale, first.ratio,
                    first.sensor, " + ".join(p.source for p in sets),
                    zero=torch.cat([p.zeros() for p in sets]))


def region_split(scene: ScenePair, val_fraction: float = 0.2, patch: int = 64,
                 stride: int = 32, normalisation: str = "scale") -> tuple[PatchSet, PatchSet]:
    """(training, validation) patches; validation is the right-most column strip, cut
    before degradation, with non-overlapping patches (stride = patch)."""
    cut = split_columns(scene.ms.shape[2], scene.ratio, val_fraction, patch)
    train = wald_patches(scene, patch, stride, (0, cut), normalisation)
    val = wald_patches(scene, patch, patch, (cut, scene.ms.shape[2]), normalisation)
    return train, val


def index_split(patches: PatchSet, val_fraction: float) -> tuple[PatchSet, PatchSet]:
    """(training, validation) for patch files: the last ``val_fraction`` are validation."""
    n = len(patches)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1)
    return patches.subset(slice(0, n - n_val)), patches.subset(slice(n - n_val, n))


def load_training_data(paths: Sequence[str | Path], *, val_fraction: float = 0.2,
                       patch: int = 64, stride: int = 32, crop: int | None = None,
                       validation: str | Path | None = None, sensor: str | None = None,
                       normalisation: str = "scale") -> tuple[PatchSet, PatchSet]:
    """(training, validation) from what the user names.

    ``paths``: one ``.h5``/``.hdf5`` (PanCollection), one ``.mat`` (ready patches or a
    GRIP pair), or two GeoTIFFs (PAN then MS). ``crop`` keeps the top-left
    crop x crop MS pixels of a pair (for quick runs and tests). ``normalisation``:
    "scale" (constant, the default), "scene" or "scene-band" (module doc)."""
    _check_normalisation(normalisation)
    paths = [Path(p) for p in paths]
    scene_norm = (lambda pair: tuple(apply_scene_normalisation(p, kind=normalisation) for p in pair)) \
        if normalisation != "scale" else (lambda pair: pair)
    for p in paths:
        if not p.exists():
            raise PansharpenError(f"training data {p} does not exist; pass --data with "
                                  "a PanCollection .h5, a .mat or a PAN and an MS GeoTIFF")
    if len(paths) == 2:
        scene = read_geotiff_pair(paths[0], paths[1], sensor)
    elif len(paths) == 1 and paths[0].suffix.lower() in (".h5", ".hdf5"):
        train = read_pancollection(paths[0], sensor=sensor)
        if validation is not None:
            return scene_norm((train, read_pancollection(validation, scale=train.scale,
                                                         sensor=sensor)))
        return scene_norm(index_split(train, val_fraction))
    elif len(paths) == 1 and paths[0].suffix.lower() == ".mat":
        from scipy.io import whosmat

        names = {name for name, _, _ in whosmat(str(paths[0]))}
        if {"ms", "lms", "pan"} <= names:
            return scene_norm(index_split(read_mat_patches(paths[0], sensor=sensor or "WV3"),
                                          val_fraction))
        scene = read_mat_pair(paths[0])
    else:
        raise PansharpenError(f"cannot read training data from {[str(p) for p in paths]}: "
                              "give one .h5/.mat file or two GeoTIFFs (PAN, MS)")
    if crop:
        r = scene.ratio
        scene.ms = scene.ms[:, :crop, :crop]
        scene.pan = scene.pan[:crop * r, :crop * r]
    return region_split(scene, val_fraction, patch, stride, normalisation)

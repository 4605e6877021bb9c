"""The deep runtime: device, precision, threads, halo and noise per tile, and reading a
weights file into a :class:`DeepModel` (per-tile inference: normalised float32 numpy
in, (B, H, W) float32 numpy out).

Project choices:
- ``halo`` (PAN pixels of context a tile needs) is measured, not derived by hand: the
  gradient of the centre output pixel of one network evaluation with respect to PAN,
  LMS and MS on a random probe shows the receptive field, and its radius is the halo.
  For ``dm50`` this is the radius of one denoiser evaluation (50 chained evaluations
  widen the theoretical dependence, but their weak far tail is left to the engine's
  blended overlaps); for ``ksdiff`` it is the backbone's radius with the kernels held
  fixed, since z and the factor features are formed per tile.
- Reduced precision (``half=True``, the default): the networks run under float16
  autocast on CUDA and bfloat16 autocast on a CPU that computes bfloat16 natively
  (AVX512-BF16 or AMX; elsewhere float32). On the 2-core EPYC a fose tile runs about 2x
  faster in bfloat16, and the held-out quality of every shipped fose, ksdiff and e2e
  moves by at most 0.0001 Q2n and 0.002 in SAM and ERGAS (docs/profile-fose.md).
  ``half=False`` keeps float32 everywhere. The DDIM arithmetic stays float32 (see
  :mod:`.diffusion`) and the output is returned float32.
- Backend (:func:`resolve_backend`): in float32 on the CPU the networks run in ONNX
  Runtime where it is installed (:mod:`.onnx_backend`: 2x faster per fose tile, the same
  image to 1e-6, checked on the first tile of each shape), with larger tiles
  (``ORT_TILE_INPUT``); eager PyTorch everywhere else and as the reference.
- Every tile starts from the same noise x_T, drawn from a ``torch.Generator`` seeded
  with the config's ``seed`` (default 0) once per tile shape, so a tile always gives
  the same output, alone or in a batch.
"""
from __future__ import annotations

import functools
import json
import math
import os
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from ..errors import PansharpenError
from ..registry import get as architecture_of
from .diffusion import seeded_noise
from .factory import build, config_class
from .weights import (MAX_PARAMETERS, check_tensors, load_state, parse_json_field, read_header, read_weights,
                      validate_config, validate_metadata)

NOISE_CACHE = 4  # tile shapes whose noise is kept (interior tiles share one shape)
CPU_TILE_INPUT = 544  # PAN pixels a side of a tile with its halo, on the CPU (preferred_tile)
CHANNELS_LAST_TILE_INPUT = 800  # the same in channels-last float32 (tile_input_limit)
ORT_TILE_INPUT = 1056  # the same with the ONNX Runtime backend (no cache cliff up to 1048; tile_input_limit)
THREADS_ENV = "DIFFUSION_PANSHARPENING_THREADS"
BACKEND_ENV = "DIFFUSION_PANSHARPENING_BACKEND"
BACKENDS = ("auto", "torch", "onnxruntime")
# Architectures ONNX Runtime runs. Not dm50: its 50 unrolled DDIM steps make a graph that
# takes minutes to export and optimise. Not ksdiff: its adaptive average pooling does not
# export at engine tile sizes ("output size that are not factor of input size"), and the
# tracer cannot free its sizes; both stay in PyTorch.
ORT_ARCHITECTURES = ("fose", "dm1", "e2e")


def cpu_threads() -> int:
    """Torch threads for CPU inference: ``DIFFUSION_PANSHARPENING_THREADS`` when set, else
    the CPUs this process may run on (a container's or ``taskset``'s limit, which torch's
    own default, the machine's core count, ignores)."""
    value = os.environ.get(THREADS_ENV, "")
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise PansharpenError(f"{THREADS_ENV}={value!r} is not a whole number of threads") from None
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def limit_cpu_threads() -> None:
    """Torch's thread count: ``cpu_threads()`` when the variable asks for it or torch
    would run more threads than there are CPUs to run them (oversubscription costs
    more than it gives); a lower count a caller chose stays."""
    threads = cpu_threads()
    if os.environ.get(THREADS_ENV) or torch.get_num_threads() > threads:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def native_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX; Linux's flags)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """Reduced precision the networks run in by default: float16 on CUDA, bfloat16 on a
    CPU that has it natively, none elsewhere."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and native_bfloat16():
        return torch.bfloat16
    return None


def precision_name(device: Union[str, torch.device], half: bool = True) -> str:
    """The precision deep models run in on ``device`` ("float16", "bfloat16" or "float32")."""
    dtype = autocast_dtype(resolve_device(device) if isinstance(device, str) else device) if half else None
    return str(dtype or torch.float32).replace("torch.", "")


def resolve_backend(backend: Optional[str], device: torch.device, reduced_precision: Optional[torch.dtype]) -> str:
    """The inference backend, "torch" or "onnxruntime" (:mod:`.onnx_backend`).

    ``backend`` (else ``DIFFUSION_PANSHARPENING_BACKEND``, else "auto"): "auto" and "torch"
    are eager PyTorch, the reference (channels-last in float32 on the CPU: ``DeepModel``);
    "onnxruntime" takes ONNX Runtime for float32 on the CPU where it is installed and
    falls back to PyTorch elsewhere (CUDA; bfloat16 autocast, which ORT's CPU provider
    does not run faster). "auto" took ONNX Runtime until channels-last PyTorch beat it on
    a quiet machine, whole process, at every size measured (2048, 4096, 8000 pixels a
    side: fose 18.3 against 21.4 s, 63.4 against 72.4 s, 230 against 243 s; e2e 8.0
    against 9.5 s, 26.0 against 33.9 s; docs/performance.md, "Deep methods on a quiet
    machine").
    """
    name = (backend or os.environ.get(BACKEND_ENV, "") or "auto").lower()
    if name not in BACKENDS:
        raise PansharpenError(f"unknown inference backend {name!r}; use {', '.join(BACKENDS)}")
    if name != "onnxruntime" or device.type != "cpu" or reduced_precision is not None:
        return "torch"
    from . import onnx_backend

    return "onnxruntime" if onnx_backend.available() else "torch"


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; an explicit "cuda" without CUDA is an error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise PansharpenError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PansharpenError(f"device {device!r} was requested but this PyTorch has no usable CUDA "
                              "(no GPU, driver, or a CPU-only build); use --device cpu or auto")
    if dev.type not in ("cpu", "cuda"):
        raise PansharpenError(f"device {device!r} is not supported; use auto, cpu or cuda[:N]")
    return dev


def measure_halo(model: nn.Module, bands: int, ratio: int, start: int = 64, limit: int = 1024) -> int:
    """Receptive-field radius (PAN pixels, rounded up) of ``model.probe`` (see module doc)."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(1234)
    size = start
    was_training = model.training
    model.eval()
    try:
        while True:
            size = int(math.ceil(size / (32 * ratio))) * 32 * ratio
            radius = _probe_radius(model, bands, ratio, size, gen, device)
            if radius < size // 2 - 2 * ratio or size >= limit:
                return int(radius)
            size *= 2
    finally:
        model.train(was_training)


def _probe_radius(model, bands, ratio, size, gen, device) -> int:
    c = size // 2
    # gradients are needed even when the caller is inside torch.inference_mode / no_grad
    with torch.inference_mode(False), torch.enable_grad():
        pan = torch.rand(1, 1, size, size, generator=gen).to(device).requires_grad_()
        lms = torch.rand(1, bands, size, size, generator=gen).to(device).requires_grad_()
        ms = torch.rand(1, bands, size // ratio, size // ratio, generator=gen).to(device).requires_grad_()
        model.probe(pan, lms, ms)[0, :, c, c].sum().backward()
    model.zero_grad(set_to_none=True)
    radius = 0
    for grad, step in ((pan.grad, 1), (lms.grad, 1), (ms.grad, ratio)):
        if grad is None:
            continue
        rows, cols = torch.nonzero(grad.abs().sum((0, 1)) > 0, as_tuple=True)
        if len(rows):
            # an MS pixel i covers PAN pixels i*r .. i*r + r - 1
            far = torch.cat([(rows * step - c).abs(), (rows * step + step - 1 - c).abs(),
                             (cols * step - c).abs(), (cols * step + step - 1 - c).abs()])
            radius = max(radius, int(far.max()))
    return radius


def parse_metadata(metadata: dict) -> dict:
    """File metadata (all strings) -> Python values: JSON fields decoded, ratio int, scale float."""
    out = dict(metadata)
    for key in ("config", "bands", "quality"):
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError as exc:
                raise PansharpenError(f"weights metadata {key!r} is not valid JSON ({exc})") from exc
    if "ratio" in out:
        out["ratio"] = int(out["ratio"])
    if "scale" in out:
        out["scale"] = float(out["scale"])
    return out


class DeepModel:
    """Per-tile inference: normalised numpy PAN (H, W), LMS (B, H, W), MS (B, h, w) -> (B, H, W).

    ``metadata`` holds the file's metadata decoded (``bands`` a list, ``config`` and
    ``quality`` dicts, ``ratio`` int, ``scale`` float).
    """

    def __init__(self, model: nn.Module, architecture: str, metadata: dict, device: Union[str, torch.device] = "auto",
                 half: bool = True, backend: Optional[str] = None):
        architecture_of(architecture)  # a registered name, or a clear error
        self.architecture = architecture
        self.metadata = parse_metadata(metadata)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.reduced_precision = autocast_dtype(self.device) if half else None
        self.model = model.to(self.device).eval()
        self.bands = model.config.bands
        self.seed = int(getattr(model.config, "seed", 0))
        self.ratio = int(self.metadata.get("ratio", 4))
        self._halo: Optional[int] = None
        self._noise_cache: dict[tuple, torch.Tensor] = {}
        if self.device.type == "cpu":
            limit_cpu_threads()
        self.backend = resolve_backend(backend, self.device, self.reduced_precision)
        if architecture not in ORT_ARCHITECTURES:
            self.backend = "torch"
        self._ort = None
        if self.backend == "onnxruntime":
            from .onnx_backend import OrtRunner

            self._ort = OrtRunner(self.model, torch.get_num_threads(), NOISE_CACHE)
        self.channels_last = self.device.type == "cpu" and self.reduced_precision is None
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @property
    def normalisation(self) -> str:
        """How the engine normalises this model's tiles: "scene", "scene-band" or "scale"
        (``radiometry``)."""
        from ..radiometry import kind_of

        return kind_of(self.metadata.get("normalisation"))

    @property
    def halo(self) -> int:
        """PAN pixels of context a tile needs; measured on first use (a fraction of a second)."""
        if self._halo is None:
            self._halo = measure_halo(self.model, self.bands, self.ratio)
        return self._halo

    @property
    def preferred_tile(self) -> int:
        """Tile size (PAN pixels) when the user gives none. On the CPU the largest multiple
        of 64 whose input, tile + 2 x halo, stays within ``CPU_TILE_INPUT`` pixels: above
        that the 24-channel full-resolution activations outgrow a 32 MiB L3 cache and
        the time per pixel jumps (measured on the 2-core EPYC: a 536-pixel input runs at
        0.39 input MP/s, 600 at 0.29, 856 at 0.19, in float32; in bfloat16 the net rate is
        flat from tile 448 to 640, so the rule holds for both; docs/profile-fose.md); on
        CUDA 1024."""
        return self.tile_for_halo(self.halo)

    def tile_for_halo(self, halo: int) -> int:
        """``preferred_tile``'s rule for a tile that needs ``halo`` PAN pixels of context
        (more than the network's own when a projection follows it)."""
        from ..tiling import DEFAULT_TILE

        if self.device.type == "cuda":
            return DEFAULT_TILE
        return max(256, (self.tile_input_limit - 2 * halo) // 64 * 64)

    @property
    def tile_input_limit(self) -> int:
        """Largest tile side with its halo (PAN pixels) ``preferred_tile`` takes on the CPU:
        ``CPU_TILE_INPUT`` for PyTorch in bfloat16, ``CHANNELS_LAST_TILE_INPUT`` for its
        channels-last float32 (whole process on a 4096 x 4096 Landsat-8 scene, quiet
        machine: fose 62.5 s at tile 384, 49.7 s at 640, 60.0 s at 896; e2e 30.7 s at 384,
        24.8 s at 640, 23.3 s at 768: the limit gives both 640), ``ORT_TILE_INPUT`` for ONNX
        Runtime, which keeps its net output rate up to a 1048-pixel input, where a tile
        throws away far less of its work as halo (docs/performance.md, "Deep methods in
        float32"). Fose draws its noise per tile, so another tile size gives
        another (equally good) image; with the tile-local anchor and projection e2e's too:
        384 -> 640 moved the Landsat-8 crop's Q2n by +0.0012, SAM and ERGAS by +0.004
        (``benchmarks/float32_layout_quality.py``)."""
        if self.backend == "onnxruntime":
            return ORT_TILE_INPUT
        return CHANNELS_LAST_TILE_INPUT if self.channels_last else CPU_TILE_INPUT

    @property
    def batch_size(self) -> int:
        """Tiles per forward pass: 1 on the CPU (a batch of four 600-pixel tiles measured
        1.9x slower per tile on the 2-core CPU: the activations leave the cache), 4 on CUDA."""
        return 4 if self.device.type == "cuda" else 1

    def __call__(self, pan: np.ndarray, lms: np.ndarray, ms: np.ndarray) -> np.ndarray:
        return self.run_batch([(pan, lms, ms)])[0]

    def run_batch(self, tiles: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Several tiles of one shape in one forward pass; each gives what ``__call__`` gives."""
        for tile in tiles:
            self._check_shapes(*tile)
        stack = lambda i: np.stack([tile[i] for tile in tiles]).astype(np.float32, copy=False)
        pan, lms, ms = stack(0)[:, None], stack(1), stack(2)
        noise = self._noise(lms.shape[1:])
        if noise is not None:
            noise = noise.expand(len(tiles), *noise.shape[1:])
        eager = lambda: self._run_torch(pan, lms, ms, noise)
        out = None
        if self._ort is not None and self._ort.enabled:
            inputs = [pan, lms, ms] + ([noise.cpu().numpy()] if noise is not None else [])
            out = self._ort.run(inputs, eager)
            if not self._ort.enabled:
                self.backend = "torch"
        return list(eager() if out is None else out)

    def _run_torch(self, pan: np.ndarray, lms: np.ndarray, ms: np.ndarray,
                   noise: Optional[torch.Tensor]) -> np.ndarray:
        """Eager PyTorch on stacked (N, 1, H, W), (N, B, H, W), (N, B, h, w) float32 tiles.

        In float32 on the CPU the model and its inputs are channels-last (NHWC): oneDNN
        then needs no layout reorders around each convolution (docs/performance.md, "Deep
        methods on a quiet machine": e2e 1.8-2.0x, fose 1.1-1.4x per tile; the same image
        to 1e-6)."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        pan_t, lms_t, ms_t = (torch.from_numpy(a).to(self.device).contiguous(memory_format=layout)
                              for a in (pan, lms, ms))
        kwargs = {} if noise is None else {"noise": noise}
        with torch.inference_mode(), self.autocast():
            out = self.model(pan_t, lms_t, ms_t, **kwargs)
        return np.ascontiguousarray(out.float().cpu().numpy())

    def autocast(self) -> torch.autocast:
        """The autocast context the networks run in (disabled in float32)."""
        dtype = self.reduced_precision
        return torch.autocast(self.device.type, dtype or torch.float32, enabled=dtype is not None)

    def _noise(self, lms_shape: tuple) -> Optional[torch.Tensor]:
        """x_T of one tile (the network's ``noise_shape``; None for a deterministic one):
        drawn once per tile shape from the seed, then reused (every tile used to draw the
        very same numbers from a freshly seeded generator)."""
        shape = self.model.noise_shape(lms_shape)
        if shape is None:
            return None
        if shape not in self._noise_cache:
            if len(self._noise_cache) >= NOISE_CACHE:
                self._noise_cache.pop(next(iter(self._noise_cache)))
            self._noise_cache[shape] = seeded_noise(shape, torch.Generator().manual_seed(self.seed), self.device)
        return self._noise_cache[shape]

    def _check_shapes(self, pan: np.ndarray, lms: np.ndarray, ms: np.ndarray) -> None:
        if pan.ndim != 2 or lms.ndim != 3 or ms.ndim != 3:
            raise PansharpenError(f"{self.architecture}: expected PAN (H, W), LMS (B, H, W), MS (B, h, w); "
                                  f"got {pan.shape}, {lms.shape}, {ms.shape}")
        if lms.shape[1:] != pan.shape:
            raise PansharpenError(f"{self.architecture}: LMS {lms.shape[1:]} is not on the PAN grid {pan.shape}")
        if lms.shape[0] != self.bands or ms.shape[0] != self.bands:
            raise PansharpenError(f"{self.architecture} weights are for {self.bands} bands, the image has "
                                  f"{ms.shape[0]}; use weights trained for this sensor's band count")
        if pan.shape[0] % self.ratio or pan.shape[1] % self.ratio:
            raise PansharpenError(f"{self.architecture}: tile {pan.shape} is not a multiple of the ratio {self.ratio}")
        if tuple(d * self.ratio for d in ms.shape[1:]) != pan.shape:
            raise PansharpenError(f"{self.architecture}: MS tile {ms.shape[1:]} times the ratio {self.ratio} "
                                  f"is not the PAN tile {pan.shape}")


def load(path: str, device: str = "auto", architecture: Optional[str] = None, half: bool = True,
         backend: Optional[str] = None) -> DeepModel:
    """Read a ``.safetensors`` weights file into a ready :class:`DeepModel`.

    ``architecture``, when given, must match the file's (e.g. ``--method e2e`` with a
    Fose file is refused rather than silently running another model).
    """
    dev = resolve_device(device)
    shapes, metadata = read_header(path)
    arch = metadata["architecture"]
    if architecture is not None and architecture != arch:
        raise PansharpenError(f"weights file {path} holds a {arch!r} model, not {architecture!r}; "
                              f"use --method {arch} or weights made for {architecture}")
    config = validate_config(config_class(arch), parse_json_field(metadata, "config", path), path)
    skeleton = _skeleton(arch, config, path)
    validate_metadata(metadata, skeleton.config.bands, path)
    check_tensors({k: v.shape for k, v in skeleton.state_dict().items()}, shapes, arch, path)
    tensors, metadata = read_weights(path)
    model = build(arch, config)
    load_state(model, tensors, arch, path)
    return DeepModel(model, arch, metadata, dev, half, backend)


def _skeleton(arch: str, config: dict, path: str) -> nn.Module:
    """The model a (validated) config describes, built on the ``meta`` device: shapes
    without memory, so a file is checked before anything is allocated for it."""
    try:
        with torch.device("meta"):
            skeleton = build(arch, config)
    except PansharpenError:
        raise
    except Exception as exc:  # e.g. lists of different lengths the network cannot use
        raise PansharpenError(f"weights file {path}: its {arch} config does not describe a model that "
                              f"can be built ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                              "use a file written by `pansharpen train`") from None
    size = sum(v.numel() for v in skeleton.state_dict().values())
    if size > MAX_PARAMETERS:
        raise PansharpenError(f"weights file {path}: its config asks for {size:,} parameters, more than the "
                              f"{MAX_PARAMETERS:,} the engine accepts; use a smaller model")
    return skeleton

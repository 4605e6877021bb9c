"""The deep models: networks (:mod:`.fose`, :mod:`.ksdiff`), their sampler
(:mod:`.samplers`), weights files (:mod:`.weights`), building from the registry
(:mod:`.factory`, names in ``engine/registry.py``) and the per-tile runtime
(:mod:`.runtime`: device, precision, threads, halo, :class:`DeepModel`, ``load``).

Architectures: ``fose`` (dm1 + e2e + ensemble), ``dm1`` (one-step student), ``dm50``
(the 50-step teacher), ``e2e`` (the end-to-end CNN), all in :mod:`.fose`; ``ksdiff``
in :mod:`.ksdiff`.
"""
from .config import config_from_dict, config_to_dict
from .factory import build, config_class, count_parameters, describe
from .fose import FoseConfig
from .ksdiff import KSDiffConfig
from .runtime import (CPU_TILE_INPUT, NOISE_CACHE, THREADS_ENV, DeepModel, autocast_dtype, cpu_threads,
                      limit_cpu_threads, load, measure_halo, native_bfloat16, parse_metadata, precision_name,
                      resolve_device)
from .weights import build_metadata, save_weights

__all__ = ["DeepModel", "build", "load", "resolve_device", "count_parameters", "describe", "measure_halo",
           "config_class", "precision_name", "save_weights", "build_metadata", "FoseConfig", "KSDiffConfig",
           "autocast_dtype", "cpu_threads", "limit_cpu_threads", "native_bfloat16", "parse_metadata",
           "config_from_dict", "config_to_dict", "CPU_TILE_INPUT", "NOISE_CACHE", "THREADS_ENV"]

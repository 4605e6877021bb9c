"""The machine and software a benchmark ran on, for the report's first section."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def describe() -> dict:
    """CPU model, cores, memory, torch threads and CUDA, and the peers' versions."""
    info = {
        "cpu": cpu_model(),
        "flags": simd_flags(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average": os.getloadavg()[0],
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    info.update(_torch())
    info["gdal"] = _gdal_version()
    otb = _first_line(["otbcli_BundleToPerfectSensor", "-version"])  # "... application, version 8.1.1"
    info["otb"] = otb.rsplit(" ", 1)[-1] if otb else None
    info["qgis"] = _qgis_version()
    return info


SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16")  # what the kernels differ by


def cpu_flags() -> list[str]:
    """The CPU's flags (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        line = next((l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")), "")
    except OSError:
        return []
    return line.split(":", 1)[-1].split()


def simd_flags() -> list[str]:
    """The CPU's flags among ``SIMD_FLAGS``."""
    have = set(cpu_flags())
    return [flag for flag in SIMD_FLAGS if flag in have]


def summary(info: dict) -> str:
    """One line naming a machine: CPU, cores, SIMD flags and the deep models' CPU precision."""
    return (f"{info['cpu']}, {info['cores']} cores, flags {' '.join(info.get('flags') or ['unknown'])}, "
            f"deep models in {info.get('cpu_precision', 'float32')} on the CPU")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def _torch() -> dict:
    try:
        import torch
    except ImportError:
        return {"torch": None, "torch_threads": None, "cuda": False, "gpu": None}
    from diffusion_pansharpening.engine.models import precision_name

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cuda": cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None, "cpu_precision": precision_name("cpu")}


def _gdal_version() -> str:
    from osgeo import gdal

    return gdal.__version__


def _qgis_version() -> str | None:
    try:
        from qgis.core import Qgis

        return Qgis.QGIS_VERSION
    except ImportError:
        return None


def _first_line(args: list[str]) -> str | None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None

"""The machine and software a benchmark ran on, for the report's first section."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def describe() -> dict:
    """CPU model, cores, memory, torch threads and CUDA, and the peers' versions."""
    info = {
        "cpu": _cpu_model(),
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


def _cpu_model() -> str:
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

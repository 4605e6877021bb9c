"""Installing PyTorch for the deep methods into a folder the plugin owns.

QGIS's Python is often a system Python that refuses ``pip install`` (Debian 12:
"externally-managed-environment") or one without write access. ``pip install
--target`` into ``<QGIS profile>/diffusion_pansharpening/python`` works everywhere;
that folder goes on ``sys.path`` when the plugin loads. The pinned torch is the CPU
build, or the CUDA build when an NVIDIA GPU answers ``nvidia-smi``.

pip runs in a ``QProcess`` (QGIS stays responsive; Cancel kills it). It installs into
a fresh staging folder that replaces the packages only when pip succeeded, so a
cancelled or failed install leaves nothing half-installed behind.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from typing import Optional, Sequence

from qgis.PyQt.QtCore import QObject, QProcess, pyqtSignal

from .i18n import tr

TORCH = "torch==2.13.0"
SAFETENSORS = "safetensors==0.7.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def packages_dir() -> str:
    """``<QGIS profile>/diffusion_pansharpening/python``: the plugin's own packages."""
    from qgis.core import QgsApplication

    return os.path.join(QgsApplication.qgisSettingsDirPath(), "diffusion_pansharpening", "python")


def activate(folder: Optional[str] = None) -> bool:
    """Put the plugin's package folder on ``sys.path`` (after QGIS's own paths, so it
    never shadows them); True when it exists."""
    folder = folder or packages_dir()
    if not os.path.isdir(folder):
        return False
    if folder not in sys.path:
        sys.path.append(folder)
    importlib.invalidate_caches()
    return True


def has_nvidia_gpu() -> bool:
    """True when ``nvidia-smi`` runs and lists a GPU."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "GPU" in done.stdout


def python_executable() -> Optional[str]:
    """A Python interpreter of QGIS's own version (inside QGIS ``sys.executable`` is
    QGIS itself), or None."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if os.path.basename(sys.executable).lower().startswith("python"):
        return sys.executable
    candidates = [os.path.join(sys.exec_prefix, "python3.exe"), os.path.join(sys.exec_prefix, "python.exe"),
                  os.path.join(sys.exec_prefix, "bin", f"python{version}"),
                  os.path.join(sys.exec_prefix, "bin", "python3"),
                  shutil.which(f"python{version}"), shutil.which("python3")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def torch_install(gpu: Optional[bool] = None) -> tuple:
    """(requirements, pip options, what): the pinned torch and safetensors, CPU build
    unless an NVIDIA GPU is found."""
    gpu = has_nvidia_gpu() if gpu is None else gpu
    if gpu:
        return [TORCH, SAFETENSORS], [], tr("PyTorch with CUDA (about 2.5 GB to download)")
    return [TORCH, SAFETENSORS], ["--extra-index-url", CPU_INDEX], tr("PyTorch for the CPU (about 200 MB to download)")


class PipInstall(QObject):
    """One ``pip install --target`` run; emits ``line`` for pip's output and exactly one
    ``finished(ok, message)``."""

    line = pyqtSignal(str)
    finished = pyqtSignal(bool, str)

    def __init__(self, requirements: Sequence[str], options: Sequence[str] = (),
                 target: Optional[str] = None, python: Optional[str] = None, parent=None):
        super().__init__(parent)
        self.requirements, self.options = list(requirements), list(options)
        self.target = target or packages_dir()
        self.staging = self.target + ".installing"
        self.python = python or python_executable()
        self.process = None
        self.done = False
        self._cancelled = False
        self._tail = []

    def start(self) -> None:
        if self.python is None:
            self._finish(False, tr("No Python interpreter of QGIS's version was found to run pip."))
            return
        shutil.rmtree(self.staging, ignore_errors=True)
        os.makedirs(os.path.dirname(self.staging), exist_ok=True)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self.process.start(self.python, ["-m", "pip", "install", "--target", self.staging, "--no-input",
                                         "--disable-pip-version-check", "--progress-bar", "off",
                                         *self.options, *self.requirements])

    def cancel(self) -> None:
        if self.process is not None and not self.done:
            self._cancelled = True
            self.process.kill()

    def _read(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._tail = (self._tail + [line.strip()])[-5:]
                self.line.emit(line.strip())

    def _on_error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self._finish(False, tr("pip could not start with {python}.").format(python=self.python))

    def _on_finished(self, code, status) -> None:
        if self._cancelled:
            self._finish(False, tr("Cancelled: nothing was installed."))
        elif status != QProcess.NormalExit or code != 0:
            self._finish(False, tr("pip failed: {reason}").format(
                reason=self._tail[-1] if self._tail else tr("exit code {code}").format(code=code)))
        else:
            try:
                self._publish()
            except OSError as error:
                self._finish(False, tr("Could not move the packages into {folder}: {error}").format(
                    folder=self.target, error=error))
                return
            activate(self.target)
            self._finish(True, tr("Installed {what} into {folder}.").format(
                what=", ".join(self.requirements), folder=self.target))

    def _publish(self) -> None:
        """Move what pip installed in the staging folder into the package folder."""
        os.makedirs(self.target, exist_ok=True)
        for name in os.listdir(self.staging):
            destination = os.path.join(self.target, name)
            if os.path.isdir(destination) and not os.path.islink(destination):
                shutil.rmtree(destination)
            elif os.path.lexists(destination):
                os.remove(destination)
            os.replace(os.path.join(self.staging, name), destination)

    def _finish(self, ok: bool, message: str) -> None:
        if self.done:
            return
        self.done = True
        shutil.rmtree(self.staging, ignore_errors=True)
        self.finished.emit(ok, message)

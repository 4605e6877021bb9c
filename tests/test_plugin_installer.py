"""The PyTorch installer (issue 14, defect 5), for real: pip installs a small wheel made
here through the very code path the "Install PyTorch" button runs (``PipInstall``,
``--target`` a folder of the plugin's own, then on ``sys.path``), offline."""
from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import QCoreApplication

NAME = "dp_tiny_probe"


def make_wheel(folder: Path, version: str = "1.0") -> Path:
    """A pure-Python wheel of one module, ``dp_tiny_probe``, with a valid RECORD."""
    dist = f"{NAME}-{version}.dist-info"
    files = {
        f"{NAME}/__init__.py": f"VALUE = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    path = folder / f"{NAME}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


from test_plugin_gui import wait_for  # noqa: E402  (spins the event loop until .done)


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    make_wheel(folder)
    return folder


def offline_install(version, wheels, target, results, lines=None):
    """A started ``PipInstall`` of the probe wheel from ``wheels`` only (no index)."""
    from diffusion_pansharpening.plugin.core.installer import PipInstall

    installer = PipInstall([f"{NAME}=={version}"], ["--no-index", "--find-links", str(wheels)], str(target))
    installer.finished.connect(lambda ok, message: results.append((ok, message)))
    if lines is not None:
        installer.line.connect(lines.append)
    installer.start()
    return installer


@pytest.fixture
def clean_import():
    yield
    sys.modules.pop(NAME, None)
    sys.path[:] = [p for p in sys.path if "plugin_packages" not in p]


def test_pip_installs_into_the_plugins_folder_which_then_imports(qgis_app, wheels, tmp_path, clean_import):
    target = tmp_path / "plugin_packages"
    results, lines = [], []
    wait_for(offline_install("1.0", wheels, target, results, lines))
    assert results == [(True, f"Installed {NAME}==1.0 into {target}.")]
    assert any("Successfully installed" in line for line in lines), lines
    assert (target / NAME / "__init__.py").is_file()
    assert not Path(str(target) + ".installing").exists()  # the staging folder is gone
    assert str(target) in sys.path
    import dp_tiny_probe  # noqa: F401 (importable in this very session, no restart)

    assert dp_tiny_probe.VALUE == "1.0"


def test_a_failed_install_says_why_and_leaves_nothing(qgis_app, wheels, tmp_path, clean_import):
    target = tmp_path / "plugin_packages"
    results = []
    wait_for(offline_install("9.9", wheels, target, results))
    assert len(results) == 1 and not results[0][0]
    assert results[0][1].startswith("pip failed: ") and "9.9" in results[0][1]
    assert not target.exists() and not Path(str(target) + ".installing").exists()


def test_cancel_kills_pip_and_installs_nothing(qgis_app, wheels, tmp_path, clean_import):
    target = tmp_path / "plugin_packages"
    results = []
    installer = offline_install("1.0", wheels, target, results)
    installer.cancel()
    wait_for(installer)
    assert results == [(False, "Cancelled: nothing was installed.")]
    assert not (target / NAME).exists() and not Path(str(target) + ".installing").exists()


def test_the_torch_request_is_pinned_and_cpu_only_without_an_nvidia_gpu():
    from diffusion_pansharpening.plugin.core.installer import CPU_INDEX, torch_install

    requirements, options, what = torch_install(gpu=False)
    assert requirements == ["torch==2.13.0", "safetensors==0.7.0"]
    assert options == ["--extra-index-url", CPU_INDEX] and "CPU" in what
    requirements, options, what = torch_install(gpu=True)
    assert options == [] and "CUDA" in what


def test_the_dialog_installs_in_the_background_with_busy_progress_cancel_and_a_clear_result(
        qgis_iface, qgis_processing, qgis_new_project, wheels, tmp_path, clean_import):
    """The dialog's install path (the button's, with this small package instead of torch)."""
    from qgis.core import Qgis

    from diffusion_pansharpening import classFactory

    plugin = classFactory(qgis_iface)
    plugin.initGui()
    try:
        controls = plugin.show_dialog().controls
        target = tmp_path / "plugin_packages"
        installer = controls.install_packages([f"{NAME}==1.0"], ["--no-index", "--find-links", str(wheels)],
                                              str(target))
        assert controls.progress.maximum() == 0  # busy while pip runs
        assert controls.cancel_button.isEnabled() and not controls.run_button.isEnabled()
        assert controls.install_packages(["another"]) is None  # one at a time
        wait_for(installer)
        QCoreApplication.processEvents()
        assert controls.installer is None and controls.progress.maximum() == 100
        assert not controls.cancel_button.isEnabled()
        assert controls.install_status.text() == f"Installed {NAME}==1.0 into {target}."
        assert any(f"Installed {NAME}==1.0" in m for m in qgis_iface.messageBar().get_messages(Qgis.Success))
        assert (target / NAME / "__init__.py").is_file()
    finally:
        plugin.unload()

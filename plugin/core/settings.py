"""The few choices the plugin remembers between sessions (QgsSettings)."""
from qgis.core import QgsSettings

from ...engine import sensors
from ...engine.tiling import DEFAULT_OVERLAP  # noqa: F401 (the plugin's default too)

AUTO_TILE = 0  # tile size 0: the engine chooses for the method and device

PREFIX = "diffusion_pansharpening/"
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_ADAPT_SECONDS = 120  # the dialog's budget for adapting a deep model to the scene
# the SENSOR values the engine knows (engine/sensors.py: MTF gains and radiometric
# scale), with the names an analyst reads; "" lets the engine read the raster's metadata
SENSORS = (("", "From the raster's metadata"),) + tuple((s.name, s.title) for s in sensors.SENSORS)


def _settings() -> QgsSettings:
    return QgsSettings()


def device() -> str:
    """The last device the user chose; ``auto`` until then."""
    value = str(_settings().value(PREFIX + "device", "auto"))
    return value if value in DEVICES else "auto"


def set_device(value: str) -> None:
    if value not in DEVICES:
        raise ValueError(f"unknown device {value!r}")
    _settings().setValue(PREFIX + "device", value)


def tile_size() -> int:
    """The last tile size (PAN pixels a side; ``AUTO_TILE``: the engine's choice)."""
    return int(_settings().value(PREFIX + "tile_size", AUTO_TILE, type=int))


def set_tile_size(value: int) -> None:
    _settings().setValue(PREFIX + "tile_size", int(value))


def output_folder() -> str:
    """The folder of the last output file; empty until the user picked one."""
    return str(_settings().value(PREFIX + "output_folder", ""))


def set_output_folder(path: str) -> None:
    _settings().setValue(PREFIX + "output_folder", str(path))


def adapt() -> bool:
    """Whether the last run adapted the deep model to the scene; off until then."""
    return bool(_settings().value(PREFIX + "adapt", False, type=bool))


def set_adapt(value: bool) -> None:
    _settings().setValue(PREFIX + "adapt", bool(value))


def adapt_seconds() -> int:
    """The last adaptation budget in seconds (``DEFAULT_ADAPT_SECONDS`` until then)."""
    return int(_settings().value(PREFIX + "adapt_seconds", DEFAULT_ADAPT_SECONDS, type=int))


def set_adapt_seconds(value: int) -> None:
    _settings().setValue(PREFIX + "adapt_seconds", int(value))

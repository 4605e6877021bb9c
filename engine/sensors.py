"""Every sensor the project knows, defined once, with the one name normaliser.

Why one module: scales, MTF gains, band names, true-colour bands, aliases and the
families' sensor lists used to live in six tables with two normalisers that
disagreed ("QuickBird2" was QuickBird for the reader, unknown for the MTF), and a
sensor a family named (Pleiades) was in none of them, so it was never detected.
Everything that needs a fact about a sensor now reads it here: ``raster_io``
(detection, data scale), ``mtf`` (gains), ``training`` (scales, band names),
``quicklook`` and the plugin (true colour, sensor lists).

Numbers (source: Vivone et al.'s Pansharpening Toolbox, ``genMTF.m`` / ``MTF_PAN.m``,
for the gains; docs/design.md "Common conventions" for the scales) are those the
engine always used, so its outputs are unchanged. Pure Python: the plugin, the
command line and the training code import it without numpy or GDAL.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MS_GNYQ",
    "DEFAULT_PAN_GNYQ",
    "WORLDVIEW_4_BANDS",
    "Sensor",
    "SENSORS",
    "key",
    "lookup",
    "canonical",
    "from_metadata",
    "default_rgb",
    "names",
]

#: Toolbox defaults for a sensor without published gains (and for no sensor).
DEFAULT_MS_GNYQ = 0.3
DEFAULT_PAN_GNYQ = 0.15

#: blue, green, red and NIR1 of the 8-band WorldView layout (0-based): the bands of a
#: 4-band WorldView-2/3 product (project choice: such a product gets those gains).
WORLDVIEW_4_BANDS = (1, 2, 4, 6)

_BGRN = ("blue", "green", "red", "NIR")
_WV8 = ("coastal", "blue", "green", "yellow", "red", "red edge", "NIR1", "NIR2")


@dataclass(frozen=True)
class Sensor:
    """One sensor: what the engine needs to read, filter and show its products."""

    name: str  # canonical short name: PairInfo.sensor, families, weights metadata
    title: str  # what an analyst reads
    aliases: tuple[str, ...]  # other spellings: metadata ids (WV02, PHR 1A), long names
    bits: int | None  # significant bits of its DN products; None: NBITS or data type decide
    band_names: tuple[str, ...]  # MS bands in the product's order (roles: blue, NIR, ...)
    ms_gnyq: tuple[float, ...] | None  # MS MTF gain at Nyquist per band; None: toolbox default
    pan_gnyq: float = DEFAULT_PAN_GNYQ  # PAN MTF gain at Nyquist
    family: str | None = None  # engine/families.py family that lists it
    subsets: tuple[tuple[int, ...], ...] = ()  # other band sets its products come with
    file_tokens: tuple[str, ...] = ()  # product-name words that identify it (IMG_PHR1A_...)
    band_ids: tuple[str, ...] = ()  # the product's own band labels (Landsat files ..._B2.TIF)
    pan_blind: tuple[str, ...] = ()  # MS bands (by name) outside the PAN's spectral range

    @property
    def bands(self) -> int:
        return len(self.band_names)

    @property
    def scale(self) -> float | None:
        """Digital-number scale of its products (2^bits - 1), or None."""
        return float(2 ** self.bits - 1) if self.bits else None

    def layout(self, nbands: int) -> tuple[int, ...] | None:
        """0-based indices into ``band_names`` of an ``nbands`` product, or None."""
        if nbands == self.bands:
            return tuple(range(self.bands))
        return next((s for s in self.subsets if len(s) == nbands), None)

    def band_names_for(self, nbands: int) -> tuple[str, ...] | None:
        index = self.layout(nbands)
        return None if index is None else tuple(self.band_names[i] for i in index)

    def blind_bands(self, nbands: int) -> tuple[int, ...]:
        """0-based indices of an ``nbands`` product's bands the PAN does not see."""
        names = self.band_names_for(nbands) or ()
        return tuple(i for i, name in enumerate(names) if name in self.pan_blind)

    def rgb(self, nbands: int | None = None) -> tuple[int, int, int] | None:
        """1-based (red, green, blue) band numbers of an ``nbands`` product, or None."""
        names = self.band_names_for(self.bands if nbands is None else nbands)
        if names is None or not all(c in names for c in ("red", "green", "blue")):
            return None
        return tuple(names.index(c) + 1 for c in ("red", "green", "blue"))  # type: ignore[return-value]


_QB_GAINS = (0.34, 0.32, 0.30, 0.22)
_OLI_B2_B5 = ("B2", "B3", "B4", "B5")
_GEOEYE1_GAINS = (0.23, 0.23, 0.23, 0.23)

SENSORS: tuple[Sensor, ...] = (
    Sensor("WV2", "WorldView-2", ("WorldView-2", "WV02"), 11, _WV8,
           (0.35,) * 7 + (0.27,), 0.11, "wv8", (WORLDVIEW_4_BANDS,)),
    Sensor("WV3", "WorldView-3", ("WorldView-3", "WV03"), 11, _WV8,
           (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14, "wv8",
           (WORLDVIEW_4_BANDS,)),
    # the toolbox groups WorldView-4 with GeoEye-1; no family lists it
    Sensor("WV4", "WorldView-4", ("WorldView-4", "WV04"), 11, _BGRN, _GEOEYE1_GAINS, 0.16),
    Sensor("QB", "QuickBird", ("QuickBird", "QuickBird-2", "QB02"), 11, _BGRN,
           _QB_GAINS, 0.15, "vhr4"),
    Sensor("IKONOS", "IKONOS", ("IKONOS-2", "IK01"), 11, _BGRN,
           (0.26, 0.28, 0.29, 0.28), 0.17, "vhr4"),
    Sensor("GE1", "GeoEye-1", ("GeoEye-1", "GE01"), 11, _BGRN, _GEOEYE1_GAINS, 0.16, "vhr4"),
    # GaoFen-2: no published gains in the toolbox; common practice uses the default
    Sensor("GF2", "GaoFen-2", ("GaoFen-2",), 10, _BGRN, None, DEFAULT_PAN_GNYQ, "vhr4"),
    # Pleiades 1A/1B (Airbus DIMAP: MISSION "PHR", MISSION_INDEX "1A"/"1B"; files
    # IMG_PHR1A_...): 12-bit DN products. No published MTF gains in the toolbox (and
    # none we could cite): the toolbox default 0.3 per MS band, 0.15 PAN.
    Sensor("PLEIADES", "Pleiades 1A/1B", ("PHR", "PHR1A", "PHR1B", "Pleiades-1A", "Pleiades-1B"),
           12, _BGRN, None, DEFAULT_PAN_GNYQ, "vhr4", file_tokens=("PHR1A", "PHR1B")),
    # Landsat 8/9 OLI: the engine's MS is B2-B5 (engine.batch); scale from NBITS or type.
    # Its PAN (B8, 503-676 nm) ends well short of the NIR band (B5, 851-879 nm).
    Sensor("LANDSAT8", "Landsat 8 OLI", ("LANDSAT_8",), None, _BGRN, None, DEFAULT_PAN_GNYQ,
           "landsat8", band_ids=_OLI_B2_B5, pan_blind=("NIR",)),
    Sensor("LANDSAT9", "Landsat 9 OLI-2", ("LANDSAT_9",), None, _BGRN, None, DEFAULT_PAN_GNYQ,
           "landsat8", band_ids=_OLI_B2_B5, pan_blind=("NIR",)),
)


def key(name: str) -> str:
    """The lookup key: upper case, accents and every separator dropped.

    'WorldView-2', 'wv_2', 'Pléiades', 'PHR 1A' -> 'WORLDVIEW2', 'WV2', 'PLEIADES', 'PHR1A'.
    """
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Z0-9]", "", plain.upper())


def _index() -> dict[str, Sensor]:
    index: dict[str, Sensor] = {}
    for sensor in SENSORS:
        for spelling in (sensor.name, sensor.title, *sensor.aliases):
            k = key(spelling)
            if index.setdefault(k, sensor) is not sensor:
                raise ValueError(f"sensor spelling {spelling!r} names both {index[k].name} and {sensor.name}")
    return index


_BY_KEY = _index()
_TOKEN = re.compile(r"[A-Z0-9]+")


def lookup(name: str | None) -> Sensor | None:
    """The sensor a name means (any alias, case, separators), or None."""
    return _BY_KEY.get(key(name)) if name else None


def canonical(name: str | None) -> str | None:
    """Canonical short name ("WV2", "PLEIADES"); an unknown name comes back upper case
    without spaces (the user's own label, still reported), None stays None."""
    if not name or not name.strip():
        return None
    sensor = lookup(name)
    return sensor.name if sensor else name.strip().upper().replace(" ", "")


def from_metadata(items, file_name: str = "") -> Sensor | None:
    """The first known sensor among metadata values, else in a product file name.

    ``items`` are values in the order they are trusted (raster_io reads them from
    GDAL); a file name counts only through a sensor's ``file_tokens``, words of the
    name (IMG_PHR1A_MS_001.TIF), never loose substrings.
    """
    for value in items:
        sensor = lookup(value.strip().strip('"')) if value else None
        if sensor is not None:
            return sensor
    words = set(_TOKEN.findall(file_name.upper()))
    return next((s for s in SENSORS if words.intersection(s.file_tokens)), None)


def default_rgb(nbands: int) -> tuple[int, int, int] | None:
    """1-based (red, green, blue) of an ``nbands`` image of unknown sensor: the layout
    every known sensor with that band count shares (4: B, G, R, NIR -> 3, 2, 1;
    8: WorldView -> 5, 3, 2), or None when they disagree or none has that count."""
    found = {s.rgb(nbands) for s in SENSORS if s.layout(nbands) is not None}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def names() -> str:
    """The canonical names, for help texts: 'WV2, WV3, ..., LANDSAT9'."""
    return ", ".join(s.name for s in SENSORS)

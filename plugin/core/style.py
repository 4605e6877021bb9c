"""How a sharpened raster is shown: true colour with a 2-98 % cumulative cut."""
from __future__ import annotations

import re
from typing import Optional, Sequence, Tuple

from qgis.core import (
    QgsContrastEnhancement,
    QgsProcessingLayerPostProcessorInterface,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRectangle,
    QgsSingleBandGrayRenderer,
)

from ...engine import sensors

# QGIS's own default for "cumulative count cut"; wide enough to drop clouds and
# shadows, narrow enough to keep the scene's colours.
CUT_LOWER = 0.02
CUT_UPPER = 0.98


def _plain(name: str) -> str:
    """'Band 04: Red' -> 'red' (QGIS's display names carry a band-number prefix)."""
    name = re.sub(r"^band\s*\d+\s*:?\s*", "", name.strip().lower())
    return name.strip()


def _find(names: Sequence[str], colour: str) -> Optional[int]:
    for index, name in enumerate(names, start=1):
        words = re.split(r"[^a-z0-9]+", _plain(name))
        if colour in words and "edge" not in words and "coastal" not in words:
            return index
    return None


def true_colour_bands(names: Sequence[str]) -> Optional[Tuple[int, int, int]]:
    """1-based (red, green, blue) band numbers, or None when there are fewer than 3.

    Band names win when they say red, green and blue. Otherwise the layout the known
    sensors with that band count share (engine/sensors.py: 4 bands are blue, green,
    red, NIR; 8 are WorldView's coastal, blue, green, yellow, red, ...); any other
    count >= 3 is assumed in wavelength order, starting with blue, green, red.
    """
    count = len(names)
    if count < 3:
        return None
    found = tuple(_find(names, colour) for colour in ("red", "green", "blue"))
    if all(found):
        return found  # type: ignore[return-value]
    return sensors.default_rgb(count) or (3, 2, 1)


def band_names(layer: QgsRasterLayer) -> list:
    provider = layer.dataProvider()
    return [provider.displayBandName(band) for band in range(1, layer.bandCount() + 1)]


def names_or(layer: QgsRasterLayer, fallback: Optional[Sequence[str]]) -> list:
    """The layer's band names, or ``fallback`` (the MS's) when its bands have no
    description and the counts agree."""
    names = band_names(layer)
    undescribed = all(re.fullmatch(r"Band \d+", name) for name in names)
    if undescribed and fallback and len(fallback) == len(names):
        return list(fallback)
    return names


def _stretch(layer: QgsRasterLayer, band: int) -> QgsContrastEnhancement:
    provider = layer.dataProvider()
    low, high = provider.cumulativeCut(band, CUT_LOWER, CUT_UPPER, QgsRectangle(),
                                       int(QgsRasterLayer.SAMPLE_SIZE))
    enhancement = QgsContrastEnhancement(provider.dataType(band))
    enhancement.setContrastEnhancementAlgorithm(
        QgsContrastEnhancement.StretchToMinimumMaximum, True)
    enhancement.setMinimumValue(low)
    enhancement.setMaximumValue(high)
    return enhancement


def _min_max_origin() -> QgsRasterMinMaxOrigin:
    """Record the 2-98 % cut in the renderer, so the layer properties show it."""
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.CumulativeCut)
    origin.setExtent(QgsRasterMinMaxOrigin.WholeRaster)
    origin.setCumulativeCutLower(CUT_LOWER)
    origin.setCumulativeCutUpper(CUT_UPPER)
    return origin


def apply_true_colour(layer: QgsRasterLayer, names: Optional[Sequence[str]] = None) -> None:
    """Render ``layer`` in true colour (grey for fewer than 3 bands), 2-98 % stretch.

    ``names`` overrides the layer's own band names (a sharpened raster whose bands
    carry no description can borrow the MS layer's names).
    """
    provider = layer.dataProvider()
    rgb = true_colour_bands(list(names) if names else band_names(layer))
    if rgb is None:
        renderer = QgsSingleBandGrayRenderer(provider, 1)
        renderer.setContrastEnhancement(_stretch(layer, 1))
    else:
        red, green, blue = rgb
        renderer = QgsMultiBandColorRenderer(provider, red, green, blue)
        renderer.setRedContrastEnhancement(_stretch(layer, red))
        renderer.setGreenContrastEnhancement(_stretch(layer, green))
        renderer.setBlueContrastEnhancement(_stretch(layer, blue))
    renderer.setMinMaxOrigin(_min_max_origin())
    layer.setRenderer(renderer)
    layer.triggerRepaint()


class TrueColourPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a Processing result when the toolbox loads it (the GUI's own runs style
    their layer directly). QGIS keeps only a pointer: ``create`` holds the instance."""

    instance = None

    def __init__(self, fallback_names=None):
        super().__init__()
        self.fallback_names = list(fallback_names or [])

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS's name)
        if isinstance(layer, QgsRasterLayer):
            apply_true_colour(layer, names_or(layer, self.fallback_names))

    @staticmethod
    def create(fallback_names=None) -> "TrueColourPostProcessor":
        TrueColourPostProcessor.instance = TrueColourPostProcessor(fallback_names)
        return TrueColourPostProcessor.instance

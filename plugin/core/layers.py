"""Which project layers are PAN and MS, and where their pixels live on disk."""
from __future__ import annotations

import math
import os
import re
from typing import Iterable, Optional, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsMapLayer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from .i18n import tr


def is_file_raster(layer: Optional[QgsMapLayer]) -> bool:
    """True for a valid raster read by GDAL: the only kind the engine can open."""
    return (
        isinstance(layer, QgsRasterLayer)
        and layer.isValid()
        and layer.providerType() == "gdal"
    )


def gdal_source(layer: QgsRasterLayer) -> str:
    """The GDAL dataset name behind ``layer`` (a path or any GDAL connection string).

    Raises ``ValueError`` with a user-facing message for layers GDAL cannot reopen
    (WMS, XYZ tiles, PostGIS rasters, in-memory results of other plugins).
    """
    if not is_file_raster(layer):
        raise ValueError(
            tr(
                "Layer '{name}' is not a raster file that GDAL can read "
                "(provider '{provider}'). Save it as a GeoTIFF first "
                "(right click > Export > Save As...)."
            ).format(name=layer.name() if layer else "?", provider=layer.providerType() if layer else "?")
        )
    return layer.source()


def extent_in(layer: QgsRasterLayer, crs: QgsCoordinateReferenceSystem,
              project: Optional[QgsProject] = None) -> Optional[QgsRectangle]:
    """``layer``'s extent expressed in ``crs``; None when it cannot be transformed."""
    if not crs.isValid() or layer.crs() == crs:
        return QgsRectangle(layer.extent())
    project = project or QgsProject.instance()
    try:
        transform = QgsCoordinateTransform(layer.crs(), crs, project.transformContext())
        return transform.transformBoundingBox(layer.extent())
    except QgsCsException:
        return None


def ground_pixel_size(layer: QgsRasterLayer, crs: QgsCoordinateReferenceSystem,
                      project: Optional[QgsProject] = None) -> float:
    """Mean pixel side of ``layer`` in the units of ``crs``.

    Layers in different CRSs are compared in one common CRS (the project's), so a
    15 m PAN in UTM and a 30 m MS in a geographic CRS still rank correctly. Returns
    ``inf`` when the extent cannot be transformed.
    """
    extent = extent_in(layer, crs, project)
    pixels = layer.width() * layer.height()
    if extent is None or extent.isEmpty() or pixels == 0:
        return math.inf
    return math.sqrt(extent.width() * extent.height() / pixels)


def guess_pan_ms(layers: Iterable[QgsMapLayer], project: Optional[QgsProject] = None
                 ) -> Tuple[Optional[QgsRasterLayer], Optional[QgsRasterLayer]]:
    """The likely PAN and MS among ``layers``.

    PAN: the single-band raster with the finest pixel. MS: among multi-band rasters
    with a coarser pixel that overlap the PAN, the one with the finest pixel (the
    closest to the PAN's resolution, so a 2x Landsat pair wins over a 10x one).
    Ties keep the project's order. Either may be None.
    """
    project = project or QgsProject.instance()
    rasters = [layer for layer in layers if is_file_raster(layer)]
    if not rasters:
        return None, None
    common = project.crs() if project.crs().isValid() else rasters[0].crs()
    size = {layer.id(): ground_pixel_size(layer, common, project) for layer in rasters}

    singles = [layer for layer in rasters if layer.bandCount() == 1]
    pan = min(singles, key=lambda layer: size[layer.id()], default=None)

    multis = [layer for layer in rasters if layer.bandCount() >= 2]
    if pan is not None:
        pan_extent = extent_in(pan, common, project)
        multis = [
            layer for layer in multis
            if size[layer.id()] > size[pan.id()]
            and pan_extent is not None
            and (extent_in(layer, common, project) or QgsRectangle()).intersects(pan_extent)
        ]
    ms = min(multis, key=lambda layer: size[layer.id()], default=None)
    return pan, ms


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def layers_using(path: str, project: Optional[QgsProject] = None) -> list:
    """The project's layers that read the file ``path`` (a GDAL source may carry
    ``|layername=`` and similar suffixes after the file name)."""
    project = project or QgsProject.instance()
    if not path:
        return []
    return [layer for layer in project.mapLayers().values()
            if layer.source() and _same_file(layer.source().split("|")[0], path)]


def free_output_path(folder: str, stem: str, project: Optional[QgsProject] = None) -> str:
    """``folder/stem.tif``, or ``stem_2.tif``, ``stem_3.tif``...: the first name that is
    neither a file nor the source of a loaded layer."""
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("_") or "pansharpened"
    for number in range(1, 10000):
        name = f"{stem}.tif" if number == 1 else f"{stem}_{number}.tif"
        path = os.path.join(folder, name)
        if not os.path.exists(path) and not layers_using(path, project):
            return path
    raise ValueError(tr("No free file name for {stem} in {folder}.").format(stem=stem, folder=folder))

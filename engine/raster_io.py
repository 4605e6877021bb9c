"""Opening a PAN/MS pair with GDAL: checks, the common grid, windowed reads.

The engine works on the PAN grid over the overlap of the two rasters. The MS is read
on an *aligned MS grid*: pixel size ``ratio`` PAN pixels, MS pixel ``m`` centred on PAN
pixel ``ratio * m + ratio / 2 + shift``. That is the phase of the pansharpening
toolbox (interp23tap, Wald decimation at offset ratio/2) and of Landsat's native
grids (PAN pixel 2i+1 centred on MS pixel i), so those inputs are read as they are.
An MS with another phase (corner-aligned VHR products, say), another pixel size or
another CRS is read through a GDAL warped VRT onto that grid (cubic), and the pair
reports that it did so.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal, osr

from .arrays import mirror_pad, percent, read_decimated, valid_mask  # noqa: F401 (re-exported for old imports)
from .errors import PansharpenError
from .gdal_errors import gdal_exceptions
from . import sensors

ACCEPTED_RATIOS = (2, 3, 4)
# (domain, key) of metadata items that name the sensor, most trusted first
METADATA_KEYS = (("IMD", "IMAGE_1.SATID"), ("IMAGERY", "SATELLITEID"), ("", "SATELLITEID"),
                 ("", "SENSOR"), ("", "SPACECRAFT_ID"), ("", "TIFFTAG_IMAGEDESCRIPTION"))
RATIO_TOLERANCE = 0.02  # relative: pixel sizes from metadata are rarely exact
FILL_FRACTION = 0.01  # of an MS without nodata, 0 in every band and touching its edges: fill (``edge_fill``)
FILL_READ = 512  # pixels a side of the decimated read that looks for it
PHASE_TOLERANCE = 0.01  # PAN pixels
READABLE_TYPES = {
    gdal.GDT_Byte: 255.0,
    gdal.GDT_UInt16: 65535.0,
    gdal.GDT_Int16: 32767.0,
    gdal.GDT_Float32: 1.0,
}
# Sensor names, scales and aliases: engine/sensors.py. The old name stays for callers.
normalise_sensor = sensors.canonical


@dataclass(frozen=True)
class Window:
    """A pixel window: columns [x0, x0 + width), rows [y0, y0 + height)."""

    x0: int
    y0: int
    width: int
    height: int


@dataclass
class PairInfo:
    """What the engine found out about a PAN/MS pair, before reading any pixel."""

    ratio: int
    bands: int
    band_names: list[str]
    width: int  # output grid (PAN pixels over the overlap)
    height: int
    crs: str
    same_crs: bool
    overlap_fraction: float  # of the PAN's area
    scale: float
    sensor: str | None
    data_type: str
    nodata: float | None
    resampled: bool
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"Ratio {self.ratio}, {self.bands} bands ({', '.join(self.band_names)}), "
            f"output {self.width} x {self.height} pixels in {self.crs}.",
            f"Overlap: {percent(self.overlap_fraction)} of the PAN; data {self.data_type}, "
            f"scale {self.scale:g}" + (f", sensor {self.sensor}" if self.sensor else "") + ".",
        ]
        lines += [f"Note: {w}" for w in self.warnings]
        return "\n".join(lines)


@gdal_exceptions()
def open_raster(path: str, role: str) -> gdal.Dataset:
    """Open any GDAL source, with errors that say which input is wrong."""
    if not path:
        raise PansharpenError(f"No {role} raster given: choose a {role} file or layer.")
    looks_local = "://" not in path and not path.startswith(("/vsi", "<")) and ":" not in path[2:]
    if looks_local and not os.path.exists(path):
        raise PansharpenError(f"The {role} file {path} does not exist: check the path.")
    try:
        ds = gdal.Open(path)
    except RuntimeError as exc:
        raise PansharpenError(
            f"The {role} file {path} is not a raster GDAL can read ({exc}). "
            "Choose a GeoTIFF or another raster format."
        ) from None
    if ds is None or ds.RasterCount == 0:
        raise PansharpenError(f"The {role} file {path} holds no raster bands: choose a raster.")
    return ds


def _crs(ds: gdal.Dataset, role: str) -> osr.SpatialReference:
    wkt = ds.GetProjection()
    if not wkt and ds.GetGeoTransform(can_return_null=True) is None:
        raise PansharpenError(
            f"The {role} raster has no georeferencing (no geotransform and no coordinate reference "
            "system): georeference it first (QGIS's Georeferencer, or gdal_translate -a_ullr and -a_srs)."
        )
    if not wkt:
        raise PansharpenError(
            f"The {role} raster has no coordinate reference system: assign one "
            "(for example with gdal_edit.py -a_srs or QGIS's Assign Projection)."
        )
    srs = osr.SpatialReference(wkt=wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _north_up(ds: gdal.Dataset, role: str) -> tuple[float, ...]:
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise PansharpenError(
            f"The {role} raster has no georeferencing (no geotransform): georeference it first."
        )
    if gt[2] != 0 or gt[4] != 0:
        raise PansharpenError(
            f"The {role} raster is rotated: warp it to a north-up grid first (gdalwarp)."
        )
    if not all(math.isfinite(v) for v in gt) or gt[1] == 0 or gt[5] == 0:
        raise PansharpenError(
            f"The {role} raster's geotransform {tuple(gt)} has no usable pixel size: fix its georeferencing."
        )
    return gt


def _scale_of(ds: gdal.Dataset, sensor: str | None) -> float:
    """Normalisation scale: sensor constant, else NBITS, else the data type's range."""
    band = ds.GetRasterBand(1)
    known = sensors.lookup(sensor)
    if known is not None and known.scale is not None:
        return known.scale
    nbits = band.GetMetadataItem("NBITS", "IMAGE_STRUCTURE")
    if nbits:
        return float(2 ** int(nbits) - 1)
    return READABLE_TYPES[band.DataType]


def _sensor_of(ds: gdal.Dataset) -> str | None:
    """The sensor name where GDAL exposes one, else where the product's file name says it.

    Read in this order: DigitalGlobe IMD (SATID), GDAL's metadata readers (IMAGERY
    SATELLITEID: "WV02", "PHR 1A", ...), the DIMAP driver (MISSION + MISSION_INDEX:
    "PHR" "1A"), Landsat MTL and free tags; then words of the file names (IMG_PHR1A_...).
    """
    items = [ds.GetMetadataItem(key, domain) for domain, key in METADATA_KEYS]
    mission = ds.GetMetadataItem("MISSION")
    if mission:
        items.insert(3, mission + (ds.GetMetadataItem("MISSION_INDEX") or ""))
    files = " ".join(os.path.basename(f) for f in (ds.GetFileList() or [ds.GetDescription()]))
    found = sensors.from_metadata(items, files)
    return found.name if found else None


def _check_type(ds: gdal.Dataset, role: str) -> None:
    dtype = ds.GetRasterBand(1).DataType
    if dtype not in READABLE_TYPES:
        raise PansharpenError(
            f"The {role} raster is {gdal.GetDataTypeName(dtype)}; the engine reads Byte, "
            "UInt16, Int16 and Float32: convert it (gdal_translate -ot UInt16 or Float32)."
        )


def data_bands(ds: gdal.Dataset) -> int:
    """The bands of ``ds`` that hold data: all but a last band that is an alpha mask (an
    RGBA export, ``gdalwarp -dstalpha``): read as alpha by GDAL AND holding two values at
    most, 0 and one other. A 4-band Byte GeoTIFF written as RGB has its NIR band read as
    alpha; its values say it is data."""
    count = ds.RasterCount
    last = ds.GetRasterBand(count)
    if count == 1 or last.GetColorInterpretation() != gdal.GCI_AlphaBand:
        return count
    values = np.unique(read_decimated(last, FILL_READ))
    return count - int(len(values) == 1 or (len(values) == 2 and values[0] == 0))


def mask_band(ds: gdal.Dataset, index: int, bands: int) -> gdal.Band | None:
    """The validity mask (0: nodata) of band ``index`` of ``ds``, whose ``bands`` first
    bands hold data (``data_bands``): the alpha band after them, else a mask GDAL keeps
    beside the bands (internal or .msk); None where nodata is a value or every pixel is valid."""
    if bands < ds.RasterCount:
        return ds.GetRasterBand(ds.RasterCount)
    band = ds.GetRasterBand(index)
    flags = band.GetMaskFlags()
    return band.GetMaskBand() if flags & gdal.GMF_PER_DATASET and not flags & gdal.GMF_ALPHA else None


def edge_fill(ds: gdal.Dataset, bands: int) -> float:
    """The fraction of ``ds`` (a decimated read) that is 0 in all of its first ``bands``
    bands, in regions that touch its edges: the fill around a scene's footprint that a
    product without a nodata value still has. The scenes of our benchmark, 8-bit products
    included, have none (0 %); a dark pixel of a stretched product is 0 in one band, not
    in all of them."""
    from scipy import ndimage

    zero = True
    for b in range(bands):
        zero = zero & (read_decimated(ds.GetRasterBand(b + 1), FILL_READ) == 0)
        if not zero.any():
            return 0.0
    labels, _ = ndimage.label(zero)
    edges = np.setdiff1d(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]), [0])
    return float(np.isin(labels, edges).mean())


class RasterPair:
    """An opened PAN/MS pair on a common grid, read window by window.

    ``window`` is the output grid (PAN pixels over the overlap). Reads take windows in
    output-grid coordinates and return mirrored padding where a window leaves the
    data, so tiles near the borders see plausible context.
    """

    @gdal_exceptions()
    def __init__(self, pan_path: str, ms_path: str, pan_band: int | None = None,
                 sensor: str | None = None):
        self.pan_ds = open_raster(pan_path, "PAN")
        self.ms_src = open_raster(ms_path, "MS")
        self._bands = data_bands(self.ms_src)
        self._pan_bands = data_bands(self.pan_ds)
        if pan_band is None and self._pan_bands > 1 and self.bands == 1:
            raise PansharpenError(
                f"The PAN and MS look swapped: the PAN file has {self._pan_bands} bands and the "
                "MS file one. Give the one-band panchromatic file as PAN and the multispectral file as MS."
            )
        self.pan_band_index = self._choose_pan_band(pan_band)
        _check_type(self.pan_ds, "PAN")
        _check_type(self.ms_src, "MS")
        pan_srs, ms_srs = _crs(self.pan_ds, "PAN"), _crs(self.ms_src, "MS")
        self.pan_gt = _north_up(self.pan_ds, "PAN")
        ms_gt = _north_up(self.ms_src, "MS")
        self.same_crs = bool(pan_srs.IsSame(ms_srs))
        self.pan_srs = pan_srs
        self.warnings: list[str] = []
        if not self.same_crs:
            self.warnings.append(
                f"MS CRS ({_crs_name(ms_srs)}) differs from PAN CRS ({_crs_name(pan_srs)}): "
                "the MS is reprojected onto the PAN CRS through a warped VRT."
            )
        ms_bounds = _bounds_in(self.ms_src, ms_gt, ms_srs, pan_srs)
        self.ratio = self._ratio(ms_bounds)
        self.window = self._overlap(ms_bounds)
        self.fill = self._edge_fill()
        self.ms_ds, self.shift = self._aligned_ms(ms_gt, ms_bounds)
        self.sensor = normalise_sensor(sensor) or _sensor_of(self.ms_src) or _sensor_of(self.pan_ds)
        self.scale = _scale_of(self.ms_src, self.sensor)
        self.pan_scale = _scale_of(self.pan_ds, self.sensor)
        self.pan_nodata = self.pan_ds.GetRasterBand(self.pan_band_index).GetNoDataValue()
        self.pan_mask = mask_band(self.pan_ds, self.pan_band_index, self._pan_bands)
        self.ms_nodata = [self.ms_ds.GetRasterBand(b + 1).GetNoDataValue()
                          for b in range(self.bands)]
        # an MS with an alpha band (a warped one: what it covers) marks validity there,
        # not with a value data can take; else GDAL may hold a mask beside the bands
        self.ms_alpha = self.bands + 1 if self.ms_ds.RasterCount > self.bands else None
        self.ms_mask = mask_band(self.ms_ds, 1, self.bands)

    # -- checks -------------------------------------------------------------------
    def _choose_pan_band(self, pan_band: int | None) -> int:
        count = self._pan_bands
        if pan_band is None:
            if count > 1:
                raise PansharpenError(
                    f"The PAN raster has {count} bands: choose which one is the panchromatic "
                    "band (PAN band, 1-based)."
                )
            return 1
        if not 1 <= pan_band <= count:
            raise PansharpenError(
                f"PAN band {pan_band} does not exist: the PAN raster has {count} band(s)."
            )
        return pan_band

    def _ratio(self, ms_bounds) -> int:
        pan_px = (abs(self.pan_gt[1]) + abs(self.pan_gt[5])) / 2
        minx, miny, maxx, maxy = ms_bounds
        ms_px = ((maxx - minx) / self.ms_src.RasterXSize + (maxy - miny) / self.ms_src.RasterYSize) / 2
        found = ms_px / pan_px
        ratio = round(found)
        if ratio not in ACCEPTED_RATIOS or abs(found - ratio) > RATIO_TOLERANCE * ratio:
            raise PansharpenError(
                f"The MS pixel ({ms_px:g}) is {found:.3f} times the PAN pixel ({pan_px:g}); "
                f"the resolution ratio must be one of {', '.join(map(str, ACCEPTED_RATIOS))}. "
                "Check that the PAN and MS layers are the right way round and of the same scene."
            )
        return ratio

    def _overlap(self, ms_bounds) -> Window:
        """PAN pixels whose centres fall inside the MS footprint (its bounding box)."""
        gt = self.pan_gt
        minx, miny, maxx, maxy = ms_bounds
        # MS bounds in PAN pixel coordinates (continuous, edges at integers).
        cols = sorted(((minx - gt[0]) / gt[1], (maxx - gt[0]) / gt[1]))
        rows = sorted(((maxy - gt[3]) / gt[5], (miny - gt[3]) / gt[5]))
        eps = 1e-6
        x0 = max(0, math.ceil(cols[0] - 0.5 - eps))
        x1 = min(self.pan_ds.RasterXSize, math.floor(cols[1] - 0.5 + eps) + 1)
        y0 = max(0, math.ceil(rows[0] - 0.5 - eps))
        y1 = min(self.pan_ds.RasterYSize, math.floor(rows[1] - 0.5 + eps) + 1)
        if x1 <= x0 or y1 <= y0:
            raise PansharpenError(
                "The PAN and MS rasters do not overlap: choose a PAN and an MS of the same area."
            )
        if x1 - x0 < 2 * self.ratio or y1 - y0 < 2 * self.ratio:
            raise PansharpenError(
                f"The PAN and MS rasters overlap on only {x1 - x0} x {y1 - y0} PAN pixels; at least "
                f"{2 * self.ratio} x {2 * self.ratio} are needed: choose a PAN and an MS that share more "
                "of their area."
            )
        return Window(x0, y0, x1 - x0, y1 - y0)

    def _edge_fill(self) -> float | None:
        """0 where neither file has a nodata value and the MS has fill around the scene
        (``edge_fill``), said in a warning; else None. Such pixels (0 in every MS band)
        are then nodata, the PAN's zeros over them too (``streaming``), and the PAN's
        zeros stay out of its statistics (``radiometry``)."""
        pan_nodata = self.pan_ds.GetRasterBand(self.pan_band_index).GetNoDataValue()
        ms_nodata = [self.ms_src.GetRasterBand(b + 1).GetNoDataValue() for b in range(self.bands)]
        if pan_nodata is not None or any(v is not None for v in ms_nodata):
            return None
        found = edge_fill(self.ms_src, self.bands)
        if found < FILL_FRACTION:
            return None
        self.warnings.append(
            f"The MS has no nodata value, but {percent(found)} of it is 0 in every band, in areas touching "
            "its edges (the fill around a scene's footprint): pixels 0 in every MS band are taken as "
            "nodata. Give the layers a nodata value to decide otherwise.")
        return 0.0

    def _aligned_ms(self, ms_gt, ms_bounds):
        """The MS on the aligned grid: the file itself if it already is, else a warped VRT."""
        gt, r = self.pan_gt, self.ratio
        col = (ms_gt[0] - gt[0]) / gt[1] - 0.5  # MS origin in PAN pixels, minus the phase
        row = (ms_gt[3] - gt[3]) / gt[5] - 0.5
        aligned = (
            self.same_crs
            and abs(ms_gt[1] - r * gt[1]) <= 1e-6 * abs(gt[1]) * r
            and abs(ms_gt[5] - r * gt[5]) <= 1e-6 * abs(gt[5]) * r
            and abs(col - round(col)) <= PHASE_TOLERANCE
            and abs(row - round(row)) <= PHASE_TOLERANCE
        )
        if aligned:
            return self.ms_src, (round(col), round(row))
        # Aligned grid covering the MS footprint: origin at PAN origin + 0.5 + k*r pixels.
        minx, miny, maxx, maxy = ms_bounds
        c0 = r * math.floor(((minx - gt[0]) / gt[1] - 0.5) / r)
        c1 = r * math.ceil(((maxx - gt[0]) / gt[1] - 0.5) / r)
        r0 = r * math.floor(((maxy - gt[3]) / gt[5] - 0.5) / r)
        r1 = r * math.ceil(((miny - gt[3]) / gt[5] - 0.5) / r)
        x_min = gt[0] + (c0 + 0.5) * gt[1]
        x_max = gt[0] + (c1 + 0.5) * gt[1]
        y_max = gt[3] + (r0 + 0.5) * gt[5]
        y_min = gt[3] + (r1 + 0.5) * gt[5]
        why = "its CRS differs" if not self.same_crs else "its grid is not aligned with the PAN grid"
        self.warnings.append(
            f"MS resampled (cubic) onto a grid aligned with the PAN ({why})."
        )
        vrt = gdal.Warp(
            "", self.ms_src, format="VRT", dstSRS=self.pan_srs.ExportToWkt(),
            outputBounds=(x_min, y_min, x_max, y_max),
            width=(c1 - c0) // r, height=(r1 - r0) // r, resampleAlg="cubic",
            dstNodata="None", dstAlpha=True,  # the source's nodata is honoured; voids are alpha 0
            **({} if self.fill is None else  # fill: a pixel is nodata when every band is
               {"srcNodata": self.fill, "warpOptions": ["UNIFIED_SRC_NODATA=YES"]}),
            # a last band read as alpha that holds data (data_bands) stays a band
            options=["-nosrcalpha"] if self.bands == self.ms_src.RasterCount else [],
        )
        for b in range(self.ms_src.RasterCount):
            vrt.GetRasterBand(b + 1).SetDescription(self.ms_src.GetRasterBand(b + 1).GetDescription())
        return vrt, (c0, r0)

    # -- facts ------------------------------------------------------------------------
    @property
    def bands(self) -> int:
        return self._bands

    @property
    def band_names(self) -> list[str]:
        names = [self.ms_src.GetRasterBand(b + 1).GetDescription() for b in range(self.bands)]
        return [n or f"band {i + 1}" for i, n in enumerate(names)]

    @property
    def output_nodata(self) -> float | None:
        """Output nodata: the MS file's, else the PAN's; else None (the writer masks)."""
        source = [self.ms_src.GetRasterBand(b + 1).GetNoDataValue() for b in range(self.bands)]
        for value in (*source, self.pan_nodata):
            if value is not None:
                return value
        return None

    @property
    def output_geotransform(self) -> tuple[float, ...]:
        gt, w = self.pan_gt, self.window
        return (gt[0] + w.x0 * gt[1], gt[1], 0.0, gt[3] + w.y0 * gt[5], 0.0, gt[5])

    @gdal_exceptions()
    def info(self) -> PairInfo:
        pan_area = self.pan_ds.RasterXSize * self.pan_ds.RasterYSize
        fraction = self.window.width * self.window.height / pan_area
        warnings = list(self.warnings)
        if fraction < 0.999:
            warnings.append(f"The MS covers {percent(fraction)} of the PAN: the output is the overlap only.")
        return PairInfo(
            ratio=self.ratio, bands=self.bands, band_names=self.band_names,
            width=self.window.width, height=self.window.height,
            crs=_crs_name(self.pan_srs), same_crs=self.same_crs, overlap_fraction=fraction,
            scale=self.scale, sensor=self.sensor,
            data_type=gdal.GetDataTypeName(self.ms_src.GetRasterBand(1).DataType),
            nodata=self.output_nodata, resampled=self.ms_ds is not self.ms_src,
            warnings=warnings,
        )

    # -- reads --------------------------------------------------------------------------
    @gdal_exceptions()
    def read_pan(self, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """PAN rows/cols in output-grid coordinates -> (values float32, valid mask)."""
        band = self.pan_ds.GetRasterBand(self.pan_band_index)
        w = self.window
        data = _read_padded(band, (rows[0] + w.y0, rows[1] + w.y0), (cols[0] + w.x0, cols[1] + w.x0))
        valid = valid_mask(data, self.pan_nodata)
        if self.pan_mask is not None:
            valid &= _read_padded(self.pan_mask, (rows[0] + w.y0, rows[1] + w.y0), (cols[0] + w.x0, cols[1] + w.x0)) > 0
        return data, valid

    @gdal_exceptions()
    def read_ms(self, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Aligned-MS rows/cols, where MS pixel m starts at output PAN row ratio*m.

        Returns (values (B, h, w) float32, valid mask (h, w): every band valid).
        """
        r, w = self.ratio, self.window
        # aligned MS pixel m starts at PAN pixel r*m + shift; output row 0 is PAN row w.y0
        off_x = (w.x0 - self.shift[0]) / r
        off_y = (w.y0 - self.shift[1]) / r
        # off_* are integers when the output window starts on an MS pixel boundary
        ox, oy = math.floor(off_x), math.floor(off_y)
        bands = [
            _read_padded(self.ms_ds.GetRasterBand(b + 1), (rows[0] + oy, rows[1] + oy), (cols[0] + ox, cols[1] + ox))
            for b in range(self.bands)
        ]
        data = np.stack(bands)
        valid = self.valid_ms(data)
        if self.ms_mask is not None:
            valid &= _read_padded(self.ms_mask, (rows[0] + oy, rows[1] + oy), (cols[0] + ox, cols[1] + ox)) > 0
        return data, valid

    def valid_ms(self, data: np.ndarray) -> np.ndarray:
        """Where MS values (B, h, w) are data by value: finite and not nodata in any band,
        and not the fill around the scene (0 in every band; ``edge_fill``). An alpha band
        or a mask (``ms_mask``) is read apart."""
        valid = np.ones(data.shape[1:], dtype=bool)
        for b, nodata in enumerate(self.ms_nodata):
            valid &= valid_mask(data[b], nodata)
        if self.fill is not None:
            valid &= ~(data == self.fill).all(axis=0)
        return valid

    @property
    def ms_phase(self) -> tuple[int, int]:
        """Offset (cols, rows) in PAN pixels from output pixel 0 to the start of its MS pixel.

        Output row y lies in aligned MS row (y + phase_y) // ratio as read by read_ms.
        """
        r, w = self.ratio, self.window
        return ((w.x0 - self.shift[0]) % r, (w.y0 - self.shift[1]) % r)


def _read_padded(band: gdal.Band, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Read band rows/cols (may extend past the raster) as float32, mirror-padded."""
    height, width = band.YSize, band.XSize
    r0, r1 = max(rows[0], 0), min(rows[1], height)
    c0, c1 = max(cols[0], 0), min(cols[1], width)
    if r1 <= r0 or c1 <= c0:
        raise PansharpenError("Internal error: a read window lies outside the raster.")
    data = band.ReadAsArray(c0, r0, c1 - c0, r1 - r0).astype(np.float32, copy=False)
    pad = ((r0 - rows[0], rows[1] - r1), (c0 - cols[0], cols[1] - c1))
    if any(p for pair in pad for p in pair):
        data = mirror_pad(data, pad)
    return data


def _bounds_in(ds, gt, srs, target_srs) -> tuple[float, float, float, float]:
    """Bounding box (minx, miny, maxx, maxy) of a raster in the target CRS."""
    xs = [gt[0], gt[0] + ds.RasterXSize * gt[1]]
    ys = [gt[3], gt[3] + ds.RasterYSize * gt[5]]
    if srs.IsSame(target_srs):
        return min(xs), min(ys), max(xs), max(ys)
    transform = osr.CoordinateTransformation(srs, target_srs)
    # densify the edges: projected footprints are curved
    pts = []
    for t in np.linspace(0.0, 1.0, 21):
        x = xs[0] + t * (xs[1] - xs[0])
        y = ys[0] + t * (ys[1] - ys[0])
        pts += [(x, ys[0]), (x, ys[1]), (xs[0], y), (xs[1], y)]
    try:
        out = transform.TransformPoints(pts)
    except RuntimeError:
        out = []
    tx, ty = [p[0] for p in out], [p[1] for p in out]
    if not out or not all(math.isfinite(v) for v in tx + ty):
        raise PansharpenError(
            "The MS footprint cannot be placed in the PAN's coordinate reference system (its corners "
            "fall outside that CRS): check both rasters' georeferencing and CRS."
        )
    return min(tx), min(ty), max(tx), max(ty)


def _crs_name(srs: osr.SpatialReference) -> str:
    authority = srs.GetAuthorityName(None)
    code = srs.GetAuthorityCode(None)
    if authority and code:
        return f"{authority}:{code}"
    return srs.GetName() or "unnamed CRS"

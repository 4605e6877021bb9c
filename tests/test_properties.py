"""Issue 11, beyond the catalogue: property-based tests (Hypothesis) of the weights reader
and of the PAN/MS pair checks. Random headers, configs, metadata, shapes, grids and
data types never give a traceback (only ``PansharpenError``), never make the process
allocate more than a bound, and never leave a file behind."""
import gc
import itertools
import json
import os
import resource
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings, strategies as st
from osgeo import gdal, osr
from safetensors.torch import save_file

from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.engine.models import build, build_metadata, load
from diffusion_pansharpening.engine.models.fose import FoseConfig
from diffusion_pansharpening.engine.pipeline import SharpenRequest, inspect_pair, sharpen

gdal.UseExceptions()
torch.set_num_threads(1)
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
GROWTH_LIMIT_MB = 150


def peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


@pytest.fixture(scope="module")
def tiny_e2e():
    torch.manual_seed(0)
    model = build("e2e", "tiny")
    meta = build_metadata("e2e", model.config, sensor="x", bands=list("bgrn"), ratio=4, scale=2047,
                          training_data="t", licence="CC0", quality={})
    return {k: v.contiguous() for k, v in model.state_dict().items()}, meta


def _load_only_refuses(path):
    try:
        load(str(path), device="cpu")
    except PansharpenError as exc:
        assert "\n" not in str(exc)


# ------------------------------------------------------------------ weights reader
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)
config_keys = st.sampled_from([f.name for f in FoseConfig.__dataclass_fields__.values()] + ["depth"])
config_values = st.one_of(json_values, st.integers(0, 5000), st.lists(st.integers(-2, 3000), max_size=10))


@settings(max_examples=80, **SETTINGS)
@given(config=st.one_of(st.dictionaries(config_keys, config_values, max_size=6), json_values),
       meta=st.dictionaries(st.sampled_from(["ratio", "scale", "bands", "quality", "architecture",
                                             "normalisation"]),
                            st.one_of(st.text(max_size=12), json_values.map(json.dumps)), max_size=3))
@example(config={"widths": []}, meta={})  # IndexError before issue 11
@example(config={"e2e_width": "4"}, meta={})  # TypeError
@example(config=[1], meta={})  # config not an object
@example(config={}, meta={"ratio": "abc"})  # ValueError
@example(config={}, meta={"bands": "[" * 50_000 + "]" * 50_000})  # RecursionError
def test_random_configs_and_metadata_only_refuse(folder, tiny_e2e, config, meta):
    tensors, base = tiny_e2e
    path = folder / "random.safetensors"
    metadata = {**base, "config": json.dumps(config), **meta}
    before = peak_mb()
    save_file(tensors, str(path), metadata=metadata)
    _load_only_refuses(path)
    assert peak_mb() - before < GROWTH_LIMIT_MB
    path.unlink()
    assert os.listdir(folder) == [], "a file was left behind"


dtypes = st.sampled_from(["F32", "F16", "I64", "U8", "BOOL", "F64", "X9", ""])
tensor_entry = st.fixed_dictionaries({
    "dtype": dtypes,
    "shape": st.lists(st.integers(-1, 2**40), max_size=5),
    "data_offsets": st.lists(st.integers(-1, 2**40), min_size=0, max_size=3)})


@settings(max_examples=80, **SETTINGS)
@given(raw=st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["inp.weight", "out.bias", "__metadata__", "x"]),
                    st.one_of(tensor_entry, json_values), max_size=4).map(lambda h: json.dumps(h).encode())),
    declared=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    tail=st.binary(max_size=64))
def test_random_headers_only_refuse(folder, raw, declared, tail):
    path = folder / "header.safetensors"
    length = len(raw) if declared is None else declared
    path.write_bytes(struct.pack("<Q", length) + raw + tail)
    before = peak_mb()
    _load_only_refuses(path)
    assert peak_mb() - before < GROWTH_LIMIT_MB
    path.unlink()
    assert os.listdir(folder) == []


# ------------------------------------------------------------------ pair checks
TYPES = [gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_Float32, gdal.GDT_Int32, gdal.GDT_Float64]
counter = itertools.count()


def raster(path, width, height, bands, gdal_type, gt, epsg, nodata, seed):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, bands, gdal_type)
    if gt is not None:
        ds.SetGeoTransform(gt)
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    data = np.random.default_rng(seed).uniform(0, 200, (height, width))
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(data)
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None
    return str(path)


pixel = st.sampled_from([1.0, 2.0, 4.0, 3.0, 0.5, -1.0, 0.0, 1e-12, 1e12])
origin = st.sampled_from([500000.0, 500000.5, 500002.0, 499990.0, 1e15, -1e15])
wild_grid = st.tuples(origin, pixel, st.sampled_from([0.0, 0.0, 0.0, 0.5]), origin,
                      st.sampled_from([0.0, 0.0, 0.0, 0.5]), pixel.map(lambda p: -p))
side = st.sampled_from([1, 2, 3, 5, 8, 16, 24])
wild = st.tuples(
    st.tuples(side, side, st.sampled_from([1, 1, 2]), st.sampled_from(TYPES), st.none() | wild_grid,
              st.sampled_from([32633, 32633, 4326, 0]), st.sampled_from([None, None, 0, 255, -9999])),
    st.tuples(side, side, st.sampled_from([1, 3, 4, 4, 8]), st.sampled_from(TYPES), st.none() | wild_grid,
              st.sampled_from([32633, 32633, 4326, 0]), st.sampled_from([None, None, 0, -9999])))


@st.composite
def plausible(draw):
    """A PAN/MS pair near what users give: ratios 2-5, shifted or corner-aligned grids,
    partial overlaps, another UTM zone, nodata, the readable data types."""
    size = draw(st.sampled_from([16, 24, 40, 64]))
    ratio = draw(st.sampled_from([2, 3, 4, 4, 4, 2, 5]))
    factor = draw(st.sampled_from([1.0] * 6 + [1.01, 0.97]))
    shift = draw(st.sampled_from([0.5, 0.5, 0.0, 1.0, -3.0, 7.3, 30.0, 1000.0]))
    kind = draw(st.sampled_from(TYPES[:4]))
    pan_gt = (500000.0, 1.0, 0.0, 4000000.0, 0.0, -1.0)
    ms_gt = (500000.0 + shift, ratio * factor, 0.0, 4000000.0 - shift, 0.0, -ratio * factor)
    ms_side = max(1, size // ratio + draw(st.integers(-1, 1)))
    pan = (size, size, 1, kind, pan_gt, 32633, draw(st.sampled_from([None, None, 0])))
    ms = (ms_side, ms_side, draw(st.sampled_from([3, 4, 8])), kind, ms_gt,
          draw(st.sampled_from([32633] * 5 + [32634])), draw(st.sampled_from([None, None, 0])))
    return pan, ms


@settings(max_examples=80, **SETTINGS)
@given(pair=st.integers(0, 4).flatmap(lambda k: wild if k == 0 else plausible()), seed=st.integers(0, 3))
@example(pair=((16, 16, 1, gdal.GDT_UInt16, (500000.0, 1.0, 0.0, 4000000.0, 0.0, -1.0), 32633, None),
                (4, 4, 4, gdal.GDT_UInt16, (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0), 4326, None)),
         seed=0)  # an MS in degrees with metres in its grid: NaN bounds, ValueError before issue 11
@example(pair=((16, 16, 1, gdal.GDT_UInt16, (500000.0, 0.0, 0.0, 4000000.0, 0.0, 0.0), 32633, None),
                (4, 4, 4, gdal.GDT_UInt16, (500000.5, 4.0, 0.0, 3999999.5, 0.0, -4.0), 32633, None)),
         seed=0)  # a zero pixel size: ZeroDivisionError before issue 11
def test_random_pairs_are_described_sharpened_or_refused(folder, pair, seed):
    pan, ms = pair
    n = next(counter)
    pan_path = raster(folder / f"pan{n}.tif", *pan, seed)
    ms_path = raster(folder / f"ms{n}.tif", *ms, seed + 1)
    out = folder / f"out{n}.tif"
    inputs = set(os.listdir(folder))  # GeoTIFFs, and .aux.xml where GDAL keeps a CRS without a grid
    try:
        inspect_pair(pan_path, ms_path)
        sharpen(SharpenRequest(pan=pan_path, ms=ms_path, output=str(out), method="brovey", threads=False))
        event("sharpened")
    except PansharpenError as exc:
        assert "\n" not in str(exc)
        event(" ".join(str(exc).split()[:5]))
    gc.collect()
    expected = inputs | ({f"out{n}.tif"} if out.exists() else set())
    assert set(os.listdir(folder)) == expected, "a file was left behind"
    for name in expected:
        os.remove(folder / name)

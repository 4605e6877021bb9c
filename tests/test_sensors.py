"""One home for sensor knowledge (engine.sensors): the families' sensors are known,
names normalise one way everywhere, and a Pleiades product is detected and scaled."""
import numpy as np
import pytest
from osgeo import gdal

from conftest import write_geotiff
from diffusion_pansharpening.engine import sensors
from diffusion_pansharpening.engine.families import FAMILIES
from diffusion_pansharpening.engine.mtf import sensor_gains
from diffusion_pansharpening.engine.raster_io import RasterPair, normalise_sensor


# ------------------------------------------------------------------ definitions
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_sensor_is_known_with_the_family_band_count(family):
    fam = FAMILIES[family]
    for name in fam.sensors:
        sensor = sensors.lookup(name)
        assert sensor is not None, f"{family} lists {name}, which engine/sensors.py does not know"
        assert sensor.family == fam.name
        assert sensor.band_names_for(fam.bands) is not None, (name, fam.bands)
        # the canonical name is what a pair reports; the family must recognise it
        assert sensor.name in fam.sensors


def test_every_sensor_with_a_family_is_listed_by_it():
    for sensor in sensors.SENSORS:
        if sensor.family is not None:
            assert sensor.name in FAMILIES[sensor.family].sensors, sensor.name


def test_definitions_are_consistent():
    for sensor in sensors.SENSORS:
        assert sensors.lookup(sensor.name) is sensor
        if sensor.ms_gnyq is not None:
            assert len(sensor.ms_gnyq) == sensor.bands
            assert all(0 < g < 1 for g in sensor.ms_gnyq)
        assert 0 < sensor.pan_gnyq < 1
        assert sensor.rgb() is not None  # every known sensor has red, green and blue
        for subset in sensor.subsets:
            assert all(0 <= i < sensor.bands for i in subset)


@pytest.mark.parametrize("spelling, name", [
    ("WorldView-2", "WV2"), ("wv_2", "WV2"), ("WV02", "WV2"), ("worldview3", "WV3"),
    ("QuickBird-2", "QB"), ("QB02", "QB"), ("IKONOS-2", "IKONOS"), ("IK01", "IKONOS"),
    ("GeoEye-1", "GE1"), ("GEOEYE1", "GE1"), ("GE01", "GE1"), ("GaoFen-2", "GF2"),
    ("LANDSAT_8", "LANDSAT8"), ("Landsat 9", "LANDSAT9"),
    ("Pleiades", "PLEIADES"), ("Pléiades 1B", "PLEIADES"), ("PHR 1A", "PLEIADES"),
    ("PHR1B", "PLEIADES"), ("phr", "PLEIADES"),
])
def test_aliases_normalise(spelling, name):
    assert sensors.lookup(spelling).name == name
    assert sensors.canonical(spelling) == name
    assert normalise_sensor(spelling) == name  # raster_io's old name is the same function


def test_unknown_names_stay_the_users_label():
    assert sensors.lookup("Sentinel 2") is None
    assert sensors.canonical(" Sentinel 2 ") == "SENTINEL2"
    assert sensors.canonical(None) is None and sensors.canonical("") is None


def test_numbers_the_engine_always_used():
    scales = {s.name: s.scale for s in sensors.SENSORS}
    assert scales["WV2"] == scales["WV3"] == scales["QB"] == scales["IKONOS"] == scales["GE1"] == 2047
    assert scales["GF2"] == 1023 and scales["LANDSAT8"] is None
    assert scales["PLEIADES"] == 4095  # 12-bit products
    np.testing.assert_allclose(sensor_gains("PHR1A", 4)[0], 0.3)  # no published gains: default
    assert sensor_gains("Pleiades", 4)[1] == 0.15
    assert sensors.default_rgb(4) == (3, 2, 1) and sensors.default_rgb(8) == (5, 3, 2)
    assert sensors.default_rgb(3) is None
    assert sensors.lookup("WV3").band_names_for(4) == ("blue", "green", "red", "NIR1")


# ------------------------------------------------------------------ detection
def _pair(tmp_path, ms_name="ms.tif", pan_name="pan.tif", nbits=None):
    rng = np.random.default_rng(0)
    pan = rng.integers(0, 4095, (64, 64), dtype=np.uint16)
    ms = rng.integers(0, 4095, (4, 16, 16), dtype=np.uint16)
    return (write_geotiff(tmp_path / pan_name, pan, 1.0, nbits=nbits),
            write_geotiff(tmp_path / ms_name, ms, 4.0, nbits=nbits))


def test_pleiades_detected_from_dimap_mission_items(tmp_path):
    """What GDAL's DIMAP driver reports from a Pleiades DIM_*.XML: MISSION, MISSION_INDEX."""
    pan, ms = _pair(tmp_path)
    ds = gdal.Open(ms, gdal.GA_Update)
    ds.SetMetadata({"MISSION": "PHR", "MISSION_INDEX": "1A", "INSTRUMENT": "PHR"})
    ds = None
    pair = RasterPair(pan, ms)
    assert pair.sensor == "PLEIADES" and pair.scale == 4095 and pair.pan_scale == 4095
    info = pair.info()
    assert info.sensor == "PLEIADES" and "sensor PLEIADES" in info.summary()


def test_pleiades_detected_by_gdal_metadata_reader(tmp_path):
    """An IMG_*_R1C1.TIF next to its DIM_*.XML: GDAL's Pleiades reader fills IMAGERY
    SATELLITEID ("PHR 1B"); the file name here carries no sensor word."""
    pan, ms = _pair(tmp_path, ms_name="IMG_SCENE_MS_001_R1C1.TIF")
    (tmp_path / "DIM_SCENE_MS_001.XML").write_text(
        "<Dimap_Document><Dataset_Sources><Source_Identification><Strip_Source>"
        "<MISSION>PHR</MISSION><MISSION_INDEX>1B</MISSION_INDEX>"
        "</Strip_Source></Source_Identification></Dataset_Sources></Dimap_Document>")
    assert gdal.Open(ms).GetMetadataItem("SATELLITEID", "IMAGERY"), "GDAL read no Pleiades metadata beside the file"
    pair = RasterPair(pan, ms)
    assert pair.sensor == "PLEIADES" and pair.scale == 4095


def test_pleiades_detected_from_product_file_name(tmp_path):
    pan, ms = _pair(tmp_path, ms_name="IMG_PHR1B_MS_002.TIF", pan_name="IMG_PHR1B_P_001.TIF")
    assert RasterPair(pan, ms).sensor == "PLEIADES"


def test_metadata_wins_and_nbits_without_a_sensor(tmp_path):
    pan, ms = _pair(tmp_path, ms_name="IMG_PHR1A_MS.TIF", nbits=12)
    ds = gdal.Open(ms, gdal.GA_Update)
    ds.SetMetadataItem("SATELLITEID", "WV03")
    ds = None
    assert RasterPair(pan, ms).sensor == "WV3"  # metadata before file names
    plain_pan, plain_ms = _pair(tmp_path, ms_name="plain_ms.tif", pan_name="plain_pan.tif", nbits=12)
    pair = RasterPair(plain_pan, plain_ms)
    assert pair.sensor is None and pair.scale == 4095  # NBITS still decides alone
    assert RasterPair(plain_pan, plain_ms, sensor="pleiades-1a").sensor == "PLEIADES"

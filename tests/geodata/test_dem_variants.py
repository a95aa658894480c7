"""geodata.dem_variants: each variant is the DEM it says it is."""
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from wps_lakes.errors import LakesError
from wps_lakes.geodata import make_scene, read_vector
from wps_lakes.geodata.dem_variants import RESAMPLED_CRS, RIVER_STEP_M, degrade_dem


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("dem_variants"), seed=5, size_m=1000)


def read(path):
    with rasterio.open(path) as src:
        return src.read(1, masked=True), src


def water_masks(scene, src):
    hydro = read_vector(scene["hydro"], srs=src.crs.to_string())
    return {code: rasterize(hydro.geometry[hydro["TYPECE"] == code], out_shape=src.shape,
                            transform=src.transform).astype(bool) for code in ("21", "10")}


def test_noise_has_the_asked_spread(scene):
    flat, src = read(scene["dem"])
    noisy, _ = read(degrade_dem(scene, "noise5"))
    assert np.ma.std(noisy - flat) == pytest.approx(0.05, rel=0.05)


def test_nodata_and_stepped_and_tin_change_only_the_water(scene):
    flat, src = read(scene["dem"])
    masks = water_masks(scene, src)
    water = masks["21"] | masks["10"]
    nodata, _ = read(degrade_dem(scene, "nodata"))
    assert nodata.mask[water].all() and not nodata.mask[~water & ~flat.mask].any()
    stepped, _ = read(degrade_dem(scene, "stepped"))
    river = masks["10"] & ~flat.mask
    assert np.allclose(np.ma.getdata(stepped)[river] % RIVER_STEP_M, 0, atol=1e-3)
    tin, _ = read(degrade_dem(scene, "tin"))
    lake = masks["21"] & ~flat.mask
    assert np.ma.getdata(tin)[lake].std() > np.ma.getdata(flat)[lake].std()
    assert np.array_equal(np.ma.getdata(tin)[~water], np.ma.getdata(flat)[~water])


def test_resampled_and_coarse_grids(scene):
    with rasterio.open(degrade_dem(scene, "resampled")) as src:
        assert src.crs.to_string() == RESAMPLED_CRS
    with rasterio.open(degrade_dem(scene, "coarse30")) as src:
        assert src.res == (30.0, 30.0)


def test_unknown_variant_is_refused(scene):
    with pytest.raises(LakesError, match="unknown DEM variant"):
        degrade_dem(scene, "lidar")

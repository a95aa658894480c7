import geopandas as gpd
import numpy as np
import pytest
from rasterio.features import rasterize
from scipy import ndimage
from shapely.geometry import box

from wps_lakes.errors import LakesError
from wps_lakes.geodata import build_tensor, open_dem, read_vector, training_windows
from wps_lakes.geodata.tensors import FIXED_DEM_RANGE_M, FIXED_DISTANCE_M, signed_distance, water_mask

from ..geodata_fixtures import X0, Y0, plane, scene, write_tif  # noqa: F401  (scene: fixture)


def exact_signed_distance(mask, px):
    water = mask.astype(bool)
    return np.where(water, -ndimage.distance_transform_edt(water), ndimage.distance_transform_edt(~water)) * px


def test_minmax_channels_on_a_scene_window(scene):  # noqa: F811
    paths, _ = scene
    water = read_vector(paths["hydro"])
    with open_dem(paths["dem"]) as dem:
        window = training_windows(water, dem.grid)[0]
        tensor = build_tensor(dem, water, window.grid)
        elevation = dem.read(window.grid)
    assert tensor.shape == (3,) + window.grid.shape and tensor.dtype == np.float32
    assert tensor.min() >= 0 and tensor.max() <= 1
    # DEM: min-max over the valid pixels, masked pixels 0
    low, high = elevation.min(), elevation.max()
    expected = ((elevation - low) / (high - low)).filled(0)
    np.testing.assert_allclose(tensor[0], expected, atol=1e-6)
    # water mask: every polygon, all touched
    mask = rasterize(water.geometry, out_shape=window.grid.shape, transform=window.grid.transform, all_touched=True)
    np.testing.assert_array_equal(tensor[1], mask)
    # distance: land above the shore value, water below, and close to the exact transform
    exact = exact_signed_distance(mask, window.grid.px_size)
    shore = -exact.min() / (exact.max() - exact.min())
    assert (tensor[2][mask == 1] < shore).all() and (tensor[2][mask == 0] > shore).all()
    assert np.abs(tensor[2] - (exact - exact.min()) / (exact.max() - exact.min())).max() < 0.02


def test_signed_distance_is_close_to_exact_and_exact_in_sign(scene):  # noqa: F811
    paths, _ = scene
    water = read_vector(paths["hydro"])
    with open_dem(paths["dem"]) as dem:
        grids = [dem.grid.subgrid(c, r, 251, 237) for r in range(0, 450, 150) for c in range(0, 450, 150)]
    checked = 0
    for grid in grids:
        mask = water_mask(water, grid)
        if not mask.any() or mask.all():
            continue
        approx, exact = signed_distance(mask, 3.0), exact_signed_distance(mask, 3.0)
        np.testing.assert_array_equal(np.sign(approx), np.sign(exact))
        assert np.abs(approx - exact).max() <= 2 * 3.0  # within one coarse cell (two pixels)
        checked += 1
    assert checked >= 3


def small_case(tmp_path, lakes, nodata_at=None, flat=False):
    data = np.full((120, 160), 200.0) if flat else plane(X0, Y0, 3.0, (120, 160))
    if nodata_at is not None:
        data[nodata_at] = -9999.0
    water = gpd.GeoDataFrame({"TYPECE": ["21"] * len(lakes)}, geometry=lakes, crs="EPSG:2959")
    return write_tif(tmp_path / "dem.tif", data), water


def test_nodata_is_zero_and_ignored_by_the_scaling(tmp_path):
    dem_path, water = small_case(tmp_path, [box(X0 + 30, Y0 - 90, X0 + 90, Y0 - 30)], nodata_at=(slice(5, 9), 7))
    with open_dem(dem_path) as dem:
        tensor = build_tensor(dem, water, dem.grid)
        elevation = dem.read(dem.grid)
    assert (tensor[0][5:9, 7] == 0).all()
    valid = ~elevation.mask
    assert tensor[0][valid].min() == 0 and tensor[0][valid].max() == pytest.approx(1)


def test_constant_channels_become_zero(tmp_path):
    far_lake = box(X0 + 3000, Y0 - 90, X0 + 3090, Y0 - 30)  # off this DEM: no water on the grid
    dem_path, water = small_case(tmp_path, [far_lake], flat=True)
    with open_dem(dem_path) as dem:
        tensor = build_tensor(dem, water, dem.grid)
    assert not tensor.any()


def test_all_touched_marks_a_pixel_a_tiny_polygon_touches(tmp_path):
    tiny = box(X0 + 31.2, Y0 - 31.8, X0 + 31.7, Y0 - 31.3)  # 0.5 m inside pixel (row 10, col 10)
    dem_path, water = small_case(tmp_path, [tiny])
    with open_dem(dem_path) as dem:
        tensor = build_tensor(dem, water, dem.grid)
    assert tensor[1].sum() == 1 and tensor[1][10, 10] == 1


def test_fixed_scaling_uses_metres_relative_to_the_water_level(scene):  # noqa: F811
    paths, _ = scene
    water = read_vector(paths["hydro"])
    with open_dem(paths["dem"]) as dem:
        window = training_windows(water, dem.grid)[0]
        tensor = build_tensor(dem, water, window.grid, scaling="fixed")
        elevation = dem.read(window.grid)
        minmax = build_tensor(dem, water, window.grid)
    mask = tensor[1]
    np.testing.assert_array_equal(mask, minmax[1])
    level = np.ma.median(elevation[mask == 1])
    low, high = FIXED_DEM_RANGE_M
    expected = np.clip((elevation - level - low) / (high - low), 0, 1).filled(0)
    np.testing.assert_allclose(tensor[0], expected, atol=1e-5)
    exact = exact_signed_distance(mask, window.grid.px_size)
    expected_distance = np.clip(exact / (2 * FIXED_DISTANCE_M) + 0.5, 0, 1)
    assert np.abs(tensor[2] - expected_distance).max() <= 6.0 / (2 * FIXED_DISTANCE_M) + 1e-6


def test_unknown_scaling_is_refused(tmp_path):
    dem_path, water = small_case(tmp_path, [box(X0 + 30, Y0 - 90, X0 + 90, Y0 - 30)])
    with open_dem(dem_path) as dem, pytest.raises(LakesError, match="unknown scaling 'zscore'.*minmax, fixed"):
        build_tensor(dem, water, dem.grid, scaling="zscore")

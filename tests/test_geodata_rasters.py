import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject

from wps_lakes.errors import LakesError, LimitExceeded
from wps_lakes.geodata import Grid, open_dem
from wps_lakes.limits import Limits

from .geodata_fixtures import X0, Y0, plane, write_tif


def test_aligned_file_reads_its_own_values_and_masks_nodata(tmp_path):
    data = plane(X0, Y0, 3.0, (300, 400)).astype(np.float32)
    data[10:13, 20:24] = -9999.0
    with open_dem(write_tif(tmp_path / "dem.tif", data)) as dem:
        assert dem.grid == Grid(X0, Y0, 3.0, 400, 300, "EPSG:2959")
        whole = dem.read(dem.grid)
        assert whole.dtype == np.float32
        np.testing.assert_array_equal(whole.mask, data == -9999.0)
        np.testing.assert_array_equal(whole.compressed(), data[data != -9999.0])
        # a window hanging over the top-left corner: the part outside the file is masked
        window = dem.read(dem.grid.subgrid(-5, -7, 50, 60))
        assert window.mask[:7].all() and window.mask[:, :5].all()
        np.testing.assert_array_equal(window[7:, 5:], data[:53, :45])


def test_nan_nodata_is_masked(tmp_path):
    data = plane(X0, Y0, 3.0, (64, 64)).astype(np.float32)
    data[5, 5] = np.nan
    with open_dem(write_tif(tmp_path / "dem.tif", data, nodata=np.nan)) as dem:
        values = dem.read(dem.grid)
        assert values.mask.sum() == 1 and values.mask[5, 5]


def test_striped_file_reads_like_a_tiled_one(tmp_path):
    data = plane(X0, Y0, 3.0, (300, 280))
    tiled, striped = write_tif(tmp_path / "t.tif", data), write_tif(tmp_path / "s.tif", data, tiled=False)
    with rasterio.open(striped) as src:
        assert not src.profile.get("tiled", False)
    with open_dem(tiled) as a, open_dem(striped) as b:
        grid = a.grid.subgrid(17, 33, 120, 90)
        np.testing.assert_array_equal(a.read(grid), b.read(grid))


def test_adjacent_files_form_one_mosaic(tmp_path):
    data = plane(X0, Y0, 3.0, (200, 300))
    left = write_tif(tmp_path / "left.tif", data[:, :130])
    right = write_tif(tmp_path / "right.tif", data[:, 130:], x0=X0 + 130 * 3.0)
    with open_dem([left, right]) as dem:
        assert dem.grid.shape == (200, 300)
        values = dem.read(dem.grid.subgrid(100, 50, 60, 60))  # across the seam
        assert not values.mask.any()
        np.testing.assert_allclose(values, data[50:110, 100:160], rtol=1e-6)


def test_reprojection_round_trip(tmp_path):
    """A plane written in EPSG:2959, warped to lon/lat, read back on the work grid: bilinear keeps a plane."""
    data = plane(X0, Y0, 3.0, (400, 400))
    source = write_tif(tmp_path / "work.tif", data)
    with rasterio.open(source) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                                               *src.bounds)
        lonlat = np.full((height, width), -9999.0, dtype=np.float32)
        reproject(src.read(1), lonlat, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", resampling=Resampling.bilinear, src_nodata=-9999.0, dst_nodata=-9999.0)
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32", crs="EPSG:4326",
                   transform=transform, nodata=-9999.0)
    with rasterio.open(tmp_path / "lonlat.tif", "w", **profile) as out:
        out.write(lonlat, 1)
    with open_dem(tmp_path / "lonlat.tif") as dem:
        assert dem.grid.crs == "EPSG:2959"
        grid = Grid(X0, Y0, 3.0, 400, 400, "EPSG:2959").subgrid(20, 20, 360, 360)  # away from the edges
        back = dem.read(grid)
    assert back.mask.mean() < 0.01
    error = np.abs(back - data[20:380, 20:380])
    assert error.max() < 0.05  # metres, on a plane rising 2 cm per metre


def test_finer_and_shifted_sources_are_resampled_onto_the_lattice(tmp_path):
    fine = plane(X0 + 1.0, Y0, 1.0, (600, 600))     # 1 m pixels, corner 1 m off the 3 m lattice
    with open_dem(write_tif(tmp_path / "fine.tif", fine, x0=X0 + 1.0, px=1.0)) as dem:
        assert dem.grid.x0 % 3.0 == 0 and dem.grid.px_size == 3.0
        grid = dem.grid.subgrid(5, 5, 150, 150)
        values = dem.read(grid)
    expected = plane(grid.x0, grid.y0, 3.0, grid.shape)
    assert not values.mask.any()
    np.testing.assert_allclose(values, expected, atol=0.02)


def test_not_a_raster(tmp_path):
    path = tmp_path / "dem.tif"
    path.write_text("this is not a GeoTIFF")
    with pytest.raises(LakesError, match="is not a GeoTIFF") as error:
        open_dem(path)
    assert str(tmp_path) not in str(error.value)
    with pytest.raises(LakesError, match="not found"):
        open_dem(tmp_path / "missing.tif")


def test_raster_without_crs(tmp_path):
    path = write_tif(tmp_path / "dem.tif", np.zeros((10, 10)), crs=None)
    with pytest.raises(LakesError, match="no coordinate reference system"):
        open_dem(path)


def test_size_limit(tmp_path):
    path = write_tif(tmp_path / "dem.tif", np.zeros((100, 120)))
    with pytest.raises(LimitExceeded, match="max_raster_pixels"):
        open_dem(path, limits=Limits(max_raster_pixels=100 * 120 - 1))
    with open_dem(path, limits=Limits(max_raster_pixels=100 * 120)) as dem:
        assert dem.grid.shape == (100, 120)
    # the limit counts work-grid pixels: the same file at 1 m is 9 times larger
    with pytest.raises(LimitExceeded):
        open_dem(path, px_size=1.0, limits=Limits(max_raster_pixels=100 * 120 * 8))


def test_a_grid_off_the_mosaic_lattice_is_warped_on_its_own(tmp_path):
    """A grid in another CRS (and pixel size) than the mosaic's is still filled, bilinear."""
    data = plane(X0, Y0, 3.0, (300, 300))
    to_work = Transformer.from_crs("EPSG:26918", "EPSG:2959", always_xy=True)
    x, y = Transformer.from_crs("EPSG:2959", "EPSG:26918", always_xy=True).transform(X0 + 300, Y0 - 300)
    grid = Grid(round(x), round(y), 2.0, 100, 100, "EPSG:26918")
    with open_dem(write_tif(tmp_path / "dem.tif", data)) as dem:
        assert not grid.is_aligned_with(dem.grid)
        values = dem.read(grid)
    rows, cols = np.mgrid[0:100, 0:100]
    wx, wy = to_work.transform(grid.x0 + (cols + 0.5) * 2.0, grid.y0 - (rows + 0.5) * 2.0)
    expected = 0.01 * (wx - X0) - 0.02 * (wy - Y0) + 150.0
    assert not values.mask.any()
    np.testing.assert_allclose(values, expected, atol=0.02)

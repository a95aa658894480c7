import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject, transform_bounds
from scipy import ndimage

from wps_lakes.errors import LakesError, LimitExceeded
from wps_lakes.geodata import Grid, open_dem, rasters, tile_grids
from wps_lakes.limits import Limits

from ..geodata_fixtures import X0, Y0, plane, write_tif


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
        # three file pixels a grid pixel: GDAL, whose bilinear averages them, not the affine map's point sampling
        assert not rasters._read_affine(dem._sources[0], grid, np.empty(grid.shape, np.float32), rasters._Scratch())
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


def _write_rugged(path, crs, dtype, shift_m=0.0):
    """A 3 m DEM in ``crs`` over the work area around (X0, Y0): hills, noise, steps, nodata holes."""
    xmin, ymin, xmax, ymax = transform_bounds("EPSG:2959", crs, X0 - 60, Y0 - 960, X0 + 960, Y0 + 60)
    x0, y0 = xmin + shift_m, ymax + shift_m
    width, height = int((xmax - xmin) / 3.0), int((ymax - ymin) / 3.0)
    rows, cols = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(7)
    data = 100 + 10 * np.sin(cols / 17) + 8 * np.cos(rows / 23) + rng.normal(0, 0.5, (height, width))
    data += 5.0 * (cols > 0.7 * rows + 50)   # a 5 m step, like a shore cut into the terrain
    nodata = -32768 if dtype == "int16" else -9999.0
    data[100:106, 120:129] = nodata
    data[rng.integers(0, height, 30), rng.integers(0, width, 30)] = nodata
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype=dtype, crs=crs, nodata=nodata,
                   transform=Affine(3.0, 0, x0, 0, -3.0, y0), tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as out:
        out.write(data.astype(dtype), 1)
    return path


@pytest.mark.parametrize("crs, dtype, shift_m", [("EPSG:3979", "float32", 0.0),   # Lambert: rotated 17.6 deg
                                                 ("EPSG:26917", "int16", 0.0),     # the next UTM zone: 4.3 deg
                                                 ("EPSG:2959", "float32", 1.0)])   # the work SRS, 1 m off the lattice
def test_resampled_reads_are_exact_bilinear(tmp_path, crs, dtype, shift_m):
    """Every tile pixel is the bilinear interpolation of the file at the exact transform of its centre,
    no-data and pixels outside the file left out of the kernel (a pixel whose valid neighbours weigh
    less than half has no data). The oracle transforms every pixel with pyproj and interpolates with
    scipy; the library fits one affine map per tile."""
    path = _write_rugged(tmp_path / "dem.tif", crs, dtype, shift_m)
    with rasterio.open(path) as src:
        values = src.read(1, out_dtype=np.float64)
        valid = values != src.nodata
        to_file = ~src.transform
    to_file_pixels = np.array(to_file.column_vectors).T   # rows: (a, b, c), (d, e, f)
    to_crs = Transformer.from_crs("EPSG:2959", crs, always_xy=True)
    checked = 0
    with open_dem(path) as dem:
        for _, grid in tile_grids(dem.grid, 200, 40):
            out = np.full(grid.shape, np.nan, np.float32)
            assert rasters._read_affine(dem._sources[0], grid, out, rasters._Scratch())  # the fast path applies
            got = dem.read(grid)
            rows, cols = np.mgrid[0:grid.height, 0:grid.width]
            x, y = to_crs.transform(grid.x0 + (cols + 0.5) * 3.0, grid.y0 - (rows + 0.5) * 3.0)
            file_cols, file_rows = to_file_pixels @ np.stack((x.ravel(), y.ravel(), np.ones(x.size)))
            at = [file_rows.reshape(grid.shape) - 0.5, file_cols.reshape(grid.shape) - 0.5]
            # outside the file counts as no data, interpolated like it ("grid-constant")
            weight = ndimage.map_coordinates(valid.astype(float), at, order=1, mode="grid-constant", cval=0.0)
            total = ndimage.map_coordinates(np.where(valid, values, 0.0), at, order=1, mode="grid-constant", cval=0.0)
            expected_mask = weight < 0.5
            clear = np.abs(weight - 0.5) > 1e-3     # the rule's edge: float noise may go either way
            np.testing.assert_array_equal(got.mask[clear], expected_mask[clear])
            both = ~got.mask & ~expected_mask
            np.testing.assert_allclose(got.data[both], (total / np.maximum(weight, 1e-9))[both], atol=0.01)
            checked += both.sum()
    assert checked > 0.8 * dem.grid.width * dem.grid.height


def test_resampling_falls_back_to_gdal(tmp_path, monkeypatch):
    """Where the affine map does not apply (a grid too big; a transform off by more than the tolerance,
    forced here), GDAL warps the grid: on a plane both give the plane."""
    work = write_tif(tmp_path / "work.tif", plane(X0, Y0, 3.0, (400, 400)))
    with rasterio.open(work) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:3979", src.width, src.height,
                                                               *src.bounds, resolution=3.0)
        lambert = np.full((height, width), -9999.0, dtype=np.float32)
        reproject(src.read(1), lambert, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:3979", resampling=Resampling.bilinear, src_nodata=-9999.0, dst_nodata=-9999.0)
    path = tmp_path / "lambert.tif"
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                       crs="EPSG:3979", transform=transform, nodata=-9999.0) as out:
        out.write(lambert, 1)
    inner = Grid(X0, Y0, 3.0, 400, 400, "EPSG:2959").subgrid(20, 20, 360, 360)
    expected = plane(inner.x0, inner.y0, 3.0, inner.shape)
    with open_dem(path) as dem:
        fast = dem.read(inner)
        monkeypatch.setattr(rasters, "AFFINE_TOLERANCE_PX", -1.0)
        assert not rasters._read_affine(dem._sources[0], inner, np.empty(inner.shape, np.float32), rasters._Scratch())
        warped = dem.read(inner)
        monkeypatch.undo()
        big = Grid(X0, Y0, 3.0, 1100, 1000, "EPSG:2959")   # over AFFINE_MAX_PIXELS: GDAL
        assert big.width * big.height > rasters.AFFINE_MAX_PIXELS
        whole = dem.read(big)[20:380, 20:380]
    for values in (fast, warped, whole):
        assert not values.mask.any()
        np.testing.assert_allclose(values, expected, atol=0.05)

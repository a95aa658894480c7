import inspect

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from wps_lakes.errors import LakesError, LimitExceeded
from wps_lakes.geodata import build_tensor, iter_tiles, open_dem, read_vector, tile_grids
from wps_lakes.limits import Limits

from ..geodata_fixtures import X0, Y0, plane, scene, write_tif  # noqa: F401  (scene: fixture)


def test_tile_grid_starts_one_overlap_before_the_origin_and_covers_the_raster(scene):  # noqa: F811
    paths, _ = scene
    with open_dem(paths["dem"]) as dem:
        raster = dem.grid
    size, overlap = 200, 50
    tiles = list(tile_grids(raster, size, overlap))
    (first_index, first), (_, last) = tiles[0], tiles[-1]
    assert first_index == (0, 0)
    assert first.offset_in(raster) == (-overlap, -overlap) and first.shape == (size, size)
    rows = 1 + max(index[0] for index, _ in tiles)
    cols = 1 + max(index[1] for index, _ in tiles)
    assert len(tiles) == rows * cols
    # stride = size - overlap between neighbours
    assert tiles[1][1].offset_in(first) == (size - overlap, 0)
    assert tiles[cols][1].offset_in(first) == (0, size - overlap)
    # the last tile reaches the far corner; one stride less would not
    col, row = last.offset_in(raster)
    assert col + size >= raster.width > col + overlap and row + size >= raster.height > row + overlap
    assert all(grid.is_aligned_with(raster) for _, grid in tiles)


def test_tiles_without_water_are_skipped_and_tensors_match(scene):  # noqa: F811
    paths, _ = scene
    water = read_vector(paths["hydro"])
    with open_dem(paths["dem"]) as dem:
        all_grids = dict(tile_grids(dem.grid, 128, 32))
        tiles = list(iter_tiles(dem, water, tile_size=128, tile_overlap=32))
        wet = {index for index, grid in all_grids.items() if water.intersects(box(*grid.bounds)).any()}
        assert {tile.index for tile in tiles} == wet
        assert 0 < len(wet) < len(all_grids)
        for tile in tiles[:5]:
            assert tile.grid == all_grids[tile.index]
            np.testing.assert_array_equal(tile.tensor, build_tensor(dem, water, tile.grid))


def test_iter_tiles_is_lazy_and_checks_before_the_first_tile(tmp_path):
    dem_path = write_tif(tmp_path / "dem.tif", plane(X0, Y0, 3.0, (300, 300)))
    # pixels 65..75 both ways: in the overlap of the first two tiles of the first two rows (stride 80)
    lake = gpd.GeoDataFrame(geometry=[box(X0 + 195, Y0 - 225, X0 + 225, Y0 - 195)], crs="EPSG:2959")
    far = gpd.GeoDataFrame(geometry=[box(X0 + 9000, Y0 - 90, X0 + 9090, Y0 - 30)], crs="EPSG:2959")
    with open_dem(dem_path) as dem:
        tiles = iter_tiles(dem, lake, tile_size=100, tile_overlap=20)
        assert inspect.isgenerator(tiles)
        assert [tile.index for tile in tiles] == [(0, 0), (0, 1), (1, 0), (1, 1)]
        # errors come at the call, not at the first tile
        with pytest.raises(LakesError, match="do not overlap"):
            iter_tiles(dem, far)
        with pytest.raises(LimitExceeded, match="max_tiles"):
            iter_tiles(dem, lake, tile_size=100, tile_overlap=20, limits=Limits(max_tiles=15))
        with pytest.raises(LakesError, match="tile_overlap < tile_size"):
            iter_tiles(dem, lake, tile_size=100, tile_overlap=100)


def test_water_outside_the_dem_extent_but_in_its_box_is_no_water(tmp_path):
    dem_path = write_tif(tmp_path / "dem.tif", plane(X0, Y0, 3.0, (100, 100)))
    ring = box(X0 - 50, Y0 - 350, X0 + 350, Y0 + 50).difference(box(X0 - 10, Y0 - 310, X0 + 310, Y0 + 10))
    water = gpd.GeoDataFrame(geometry=[ring], crs="EPSG:2959")  # around the DEM, never on it
    with open_dem(dem_path) as dem, pytest.raises(LakesError, match="no water in the area"):
        iter_tiles(dem, water)

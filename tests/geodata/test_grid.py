import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wps_lakes.geodata import Grid

coordinates = st.floats(min_value=-1e6, max_value=1e7, allow_nan=False)
sizes = st.floats(min_value=0.0, max_value=5e4, allow_nan=False)
pixel_sizes = st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0, 30.0])


@given(coordinates, coordinates, sizes, sizes, pixel_sizes)
def test_from_bounds_snaps_outward_to_the_global_lattice(x, y, w, h, px):
    grid = Grid.from_bounds((x, y, x + w, y + h), px, "EPSG:2959")
    xmin, ymin, xmax, ymax = grid.bounds
    tol = 1e-6 * px
    # covers the bounds, by less than one pixel more on each side
    assert xmin <= x + tol and ymin <= y + tol and xmax >= x + w - tol and ymax >= y + h - tol
    assert x - xmin < px + tol and y - ymin < px + tol and xmax - (x + w) < px + tol and ymax - (y + h) < px + tol
    # corners on multiples of the pixel size
    for value in (grid.x0, grid.y0):
        assert abs(value / px - round(value / px)) < 1e-6


def test_transform_bounds_and_shape_agree():
    grid = Grid(300.0, 900.0, 3.0, 40, 20, "EPSG:2959")
    assert grid.shape == (20, 40)
    assert grid.bounds == (300.0, 840.0, 420.0, 900.0)
    assert grid.transform @ (0, 0) == (300.0, 900.0)
    assert grid.transform @ (40, 20) == (420.0, 840.0)


def test_float_noise_does_not_add_a_pixel():
    grid = Grid.from_bounds((3.0000000001, 2.9999999999, 29.9999999999, 30.0000000001), 3.0, "EPSG:2959")
    assert (grid.x0, grid.width, grid.height) == (3.0, 9, 9)


def test_crs_spellings_compare_equal():
    assert Grid(0, 0, 1, 1, 1, "urn:ogc:def:crs:EPSG::2959") == Grid(0, 0, 1, 1, 1, "EPSG:2959")


def test_subgrid_offset_and_intersection():
    big = Grid(0.0, 300.0, 3.0, 100, 100, "EPSG:2959")
    sub = big.subgrid(-10, 90, 20, 30)
    assert sub.offset_in(big) == (-10, 90)
    assert sub.is_aligned_with(big)
    part = big.intersection(sub)
    assert part.offset_in(big) == (0, 90) and part.shape == (10, 10)
    assert big.intersection(big.subgrid(100, 0, 5, 5)) is None  # touching edges only
    shifted = Grid(1.0, 300.0, 3.0, 10, 10, "EPSG:2959")
    assert not shifted.is_aligned_with(big)
    assert not Grid(0.0, 300.0, 3.0, 10, 10, "EPSG:26918").is_aligned_with(big)


def test_to_pixels_inverts_the_transform():
    grid = Grid(1000.0, 2000.0, 2.0, 50, 50, "EPSG:2959")
    col0, row0, col1, row1 = grid.to_pixels((1010.0, 1950.0, 1030.0, 1990.0))
    assert (col0, row0, col1, row1) == (5.0, 5.0, 15.0, 25.0)
    assert math.isclose((grid.transform @ (col1, row0))[0], 1030.0)


def test_invalid_grid_is_refused():
    with pytest.raises(ValueError):
        Grid(0, 0, 0.0, 10, 10, "EPSG:2959")

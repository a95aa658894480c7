import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from wps_lakes.errors import LakesError
from wps_lakes.geodata import Grid, focal_lakes, open_dem, read_vector, training_windows

from ..geodata_fixtures import scene  # noqa: F401  (fixture)

X, Y = 330_000.0, 5_090_001.0  # a corner on the 3 m lattice
DEM = Grid(X - 3000, Y + 3000, 3.0, 4000, 4000, "EPSG:2959")


def hydro(rows):
    """rows: (OBJECTID, TYPECE, geometry) in EPSG:2959."""
    ids, codes, geometries = zip(*rows, strict=True)
    return gpd.GeoDataFrame({"OBJECTID": ids, "TYPECE": codes}, geometry=list(geometries), crs="EPSG:2959")


def test_focal_lakes_area_bounds_and_strict_distance():
    river = box(X, Y, X + 20, Y + 3000)
    edge = X + 20
    layer = hydro([
        (1, "10", river),
        (2, "21", box(edge + 299, Y, edge + 309, Y + 10)),       # 299 m away: focal
        (3, "21", box(edge + 300, Y + 100, edge + 310, Y + 110)),  # exactly 300 m: not (strict)
        (4, "21", box(edge + 301, Y + 200, edge + 311, Y + 210)),
        (5, "21", box(edge + 50, Y + 300, edge + 59.9, Y + 310)),  # 99 m²: too small
        (6, "21", box(edge + 50, Y + 400, edge + 60, Y + 410)),    # 100 m²: smallest allowed
        (7, "21", box(edge + 50, Y + 500, edge + 450, Y + 1000)),  # 200 000 m²: largest allowed
        (8, "21", box(edge + 50, Y + 1100, edge + 450, Y + 1600.01)),  # just over
        (9, "21", box(X - 100, Y, X - 50, Y + 50)),                # other side of the river
    ])
    found = set(focal_lakes(layer)["OBJECTID"])
    assert found == {2, 6, 7, 9}
    lakes = layer[layer["TYPECE"] == "21"]
    rule = {i for i, g in zip(lakes["OBJECTID"], lakes.geometry, strict=True)
            if 100 <= g.area <= 200_000 and g.distance(river) < 300}
    assert found == rule
    assert set(focal_lakes(layer, lake_river_max_dist=301)["OBJECTID"]) == rule | {3}
    assert focal_lakes(layer[layer["TYPECE"] == "21"]).empty  # no river, no focal lake


def test_window_is_the_buffered_bounds_snapped_outward():
    lake = Polygon([(X + 100.4, Y + 100.7), (X + 160.2, Y + 101.1), (X + 130.9, Y + 170.5)])
    layer = hydro([(1, "10", box(X, Y, X + 20, Y + 400)), (2, "21", lake)])
    (window,) = training_windows(layer, DEM, roi_buffer=50.0)
    assert window.focal_id == 2
    xmin, ymin, xmax, ymax = window.grid.bounds
    lx0, ly0, lx1, ly1 = lake.bounds
    assert xmin <= lx0 - 50 < xmin + 3 and ymin <= ly0 - 50 < ymin + 3
    assert xmax - 3 < lx1 + 50 <= xmax and ymax - 3 < ly1 + 50 <= ymax
    assert window.grid.is_aligned_with(DEM)
    # the focal lake's box: its bounds in the window's pixels, snapped outward
    col0, row0, col1, row1 = window.grid.to_pixels(lake.bounds)
    np.testing.assert_array_equal(window.boxes, [[math.floor(col0), math.floor(row0), math.ceil(col1),
                                                  math.ceil(row1)]])


def test_boxes_every_lake_part_clipped_rivers_never_thin_dropped():
    focal = box(X + 300, Y + 300, X + 360, Y + 330)
    river = box(X + 250, Y, X + 270, Y + 1000)
    lakes = [
        (3, "21", box(X + 100, Y + 350, X + 200, Y + 380)),        # partly outside the window (left)
        (4, "21", MultiPolygon([box(X + 400, Y + 300, X + 430, Y + 330), box(X + 450, Y + 300, X + 480, Y + 330)])),
        (5, "21", Polygon(box(X + 300, Y + 400, X + 390, Y + 460).exterior.coords,
                          [box(X + 320, Y + 420, X + 340, Y + 440).exterior.coords])),  # with an island
        (6, "21", box(X + 301, Y + 200, X + 302.5, Y + 260)),     # 1.5 m wide, inside one pixel column: dropped
        (7, "21", box(X + 401, Y + 200, X + 405.5, Y + 260)),     # spans 2 pixel columns: kept
        (8, "99", box(X + 500, Y + 200, X + 520, Y + 220)),       # any other non-river code gets a box too
    ]
    layer = hydro([(1, "10", river), (2, "21", focal)] + lakes)
    window = next(w for w in training_windows(layer, DEM, roi_buffer=150.0) if w.focal_id == 2)
    grid = window.grid
    assert window.boxes.dtype == np.float32
    boxes = {tuple(b) for b in window.boxes.tolist()}

    def pixels(geometry):
        col0, row0, col1, row1 = grid.to_pixels(geometry.bounds)
        return (max(math.floor(col0), 0), max(math.floor(row0), 0), min(math.ceil(col1), grid.width),
                min(math.ceil(row1), grid.height))

    expected = {pixels(focal), pixels(lakes[0][2].intersection(box(*grid.bounds))),
                pixels(lakes[1][2].geoms[0]), pixels(lakes[1][2].geoms[1]), pixels(lakes[2][2]),
                pixels(lakes[4][2]), pixels(lakes[5][2])}
    assert boxes == expected
    assert pixels(lakes[0][2].intersection(box(*grid.bounds)))[0] == 0  # clipped at the window's left edge
    assert not any(b[0] <= pixels(river)[0] and b[2] >= pixels(river)[2] for b in boxes)  # no river box
    assert pixels(lakes[3][2])[2] - pixels(lakes[3][2])[0] == 1  # the dropped one was 1 px wide


def test_a_lake_cut_in_two_by_the_window_edge_gives_two_boxes():
    river = box(X, Y, X + 20, Y + 400)
    focal = box(X + 60, Y + 60, X + 90, Y + 90)
    # a U open to the right whose two arms cross the window's right edge, the bottom outside it
    u_shape = shapely.union_all([box(X + 200, Y + 40, X + 300, Y + 60), box(X + 200, Y + 100, X + 300, Y + 120),
                                 box(X + 280, Y + 40, X + 300, Y + 120)])
    layer = hydro([(1, "10", river), (2, "21", focal), (3, "21", u_shape)])
    window = next(w for w in training_windows(layer, DEM, roi_buffer=150.0) if w.focal_id == 2)
    assert window.grid.bounds[2] < X + 280  # the window ends before the U's bottom
    right_edge = [b for b in window.boxes if b[2] == window.grid.width]
    assert len(right_edge) == 2


def test_window_is_clipped_to_the_dem():
    small_dem = Grid(X, Y + 600, 3.0, 200, 200, "EPSG:2959")
    layer = hydro([(1, "10", box(X + 10, Y + 10, X + 30, Y + 590)), (2, "21", box(X + 40, Y + 40, X + 80, Y + 70))])
    (window,) = training_windows(layer, small_dem, roi_buffer=1000.0)
    assert window.grid == small_dem


def test_label_errors_say_what_to_fix():
    lake, river = box(X + 40, Y + 40, X + 80, Y + 70), box(X, Y, X + 20, Y + 400)
    untyped = gpd.GeoDataFrame({"OBJECTID": [1, 2]}, geometry=[lake, river], crs="EPSG:2959")
    with pytest.raises(LakesError, match="no TYPECE attribute"):
        training_windows(untyped, DEM)
    with pytest.raises(LakesError, match="no training sample.*lake_river_max_dist"):
        training_windows(hydro([(1, "21", lake), (2, "21", river)]), DEM)
    elsewhere = Grid(X + 50_000, Y + 600, 3.0, 200, 200, "EPSG:2959")
    with pytest.raises(LakesError, match="do not overlap"):
        training_windows(hydro([(1, "21", lake), (2, "10", river)]), elsewhere)


def test_scene_windows_hold_their_focal_lake(scene):  # noqa: F811
    paths, truth = scene
    layer = read_vector(paths["hydro"], require_typece=True)
    with open_dem(paths["dem"]) as dem:
        windows = training_windows(layer, dem.grid)
    expected = {lake["OBJECTID"] for lake in truth["lakes"] if lake["focal"]}
    assert {w.focal_id for w in windows} == expected and len(expected) >= 3
    lakes = layer.set_index("OBJECTID")
    for window in windows:
        lake = lakes.loc[window.focal_id, "geometry"]
        assert box(*window.grid.bounds).contains(lake)
        for part in shapely.get_parts(lake):  # one box per part
            col0, row0, col1, row1 = window.grid.to_pixels(part.bounds)
            assert any(b[0] <= col0 and b[1] <= row0 and b[2] >= col1 and b[3] >= row1 for b in window.boxes)

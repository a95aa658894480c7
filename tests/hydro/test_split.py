"""The waterbody split on hand-built geometries and GeoTIFFs: refined vs the original box cut."""
import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio import features

from wps_lakes.errors import LakesError
from wps_lakes.geodata import Grid, make_scene, read_vector, write_geojson
from wps_lakes.hydro import SplitParams, SplitResult, evaluate_split, split_waterbodies, truth_lake_boxes, write_split
from wps_lakes.hydro.split import split_to_files

CRS = "EPSG:2959"
X0, Y0 = 300_000.0, 5_000_000.0  # somewhere in UTM 18N
LAKE = shapely.Point(X0 + 1000, Y0 + 1000).buffer(150)
RIVER = shapely.LineString([(X0, Y0 + 1000), (X0 + 2000, Y0 + 1100)]).buffer(15)
LAKE_LEVEL = 97.25


def frame(geoms, crs=CRS, **columns):
    return gpd.GeoDataFrame(columns, geometry=list(geoms), crs=crs)


def write_dem(path, lakes, rivers, bounds=(X0 - 99, Y0 + 399, X0 + 2199, Y0 + 1599), px=3.0, river_step=0.0):
    """A hydro-flattened GeoTIFF: rough terrain, rivers descending eastward (in level steps of
    ``river_step`` m if given), each lake at one level."""
    grid = Grid.from_bounds(bounds, px, CRS)
    rows, cols = np.mgrid[0:grid.height, 0:grid.width]
    x = grid.x0 + px * (cols + 0.5)
    z = 110 + 0.005 * (x - X0) + np.random.default_rng(0).normal(0, 0.2, grid.shape)
    for river in rivers:
        inside = features.rasterize([(river, 1)], grid.shape, transform=grid.transform).astype(bool)
        level = 100 - 0.004 * (x - X0)
        z[inside] = (np.floor(level / river_step) * river_step if river_step else level)[inside]
    for i, lake in enumerate(lakes):
        inside = features.rasterize([(lake, 1)], grid.shape, transform=grid.transform).astype(bool)
        z[inside] = LAKE_LEVEL - i
    with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
                       dtype="float32", crs=CRS, transform=grid.transform) as dst:
        dst.write(z.astype("float32"), 1)
    return path


def union(layer):
    return shapely.union_all(layer.geometry.values)


def iou(a, b):
    return a.intersection(b).area / a.union(b).area


def truth(lakes, rivers):
    lakes, rivers = list(lakes), list(rivers)
    water = shapely.union_all(lakes)
    return frame(lakes + [r.difference(water) for r in rivers], TYPECE=["21"] * len(lakes) + ["10"] * len(rivers))


@pytest.fixture(scope="module")
def dem(tmp_path_factory):
    return write_dem(tmp_path_factory.mktemp("dem") / "dem.tif", [LAKE], [RIVER])


@pytest.fixture
def waterbody():
    return frame([shapely.union_all([LAKE, RIVER])], OBJECTID=[7], NAME=["Lac et rivière"])


def test_lake_is_cut_at_its_shoreline_not_at_the_box_edge(waterbody, dem):
    """A box over half the lake: the box cut leaves half the lake as river; refined finds the shore."""
    half_box = frame([shapely.box(X0 + 850, Y0 + 1000, X0 + 1160, Y0 + 1200)], confidence=[0.9])
    expected = truth([LAKE], [RIVER])
    figures = {}
    for method, dem_used in (("boxes", None), ("refined", dem), ("refined", None)):
        result = split_waterbodies(waterbody, half_box, dem=dem_used, method=method)
        figures[method, dem_used is not None] = evaluate_split(result.hydro, expected)
    assert figures["refined", True]["lake_iou"] >= 0.99 and figures["refined", True]["river_iou"] >= 0.99
    assert figures["refined", False]["lake_iou"] >= 0.95 and figures["refined", False]["river_iou"] >= 0.95
    assert figures["boxes", False]["lake_iou"] < 0.7  # only the boxed half became lake


def test_river_reach_crossing_a_box_stays_river(tmp_path):
    dem = write_dem(tmp_path / "river.tif", [], [RIVER])
    river = frame([RIVER], OBJECTID=[3])
    box = frame([shapely.box(X0 + 900, Y0 + 950, X0 + 1100, Y0 + 1150)], confidence=[0.95])
    for dem_used in (dem, None):
        result = split_waterbodies(river, box, dem=dem_used)
        assert result.lakes.empty
        assert union(result.rivers).symmetric_difference(RIVER).area < 1e-6 * RIVER.area
    boxed = split_waterbodies(river, box, method="boxes")
    assert len(boxed.lakes) == 1 and len(boxed.rivers) == 2  # the original's flaw, reproduced


def test_level_stretch_of_river_in_a_box_stays_river(tmp_path):
    """Hydro-flattened rivers are often stepped: a level reach as wide as the water around it is no lake."""
    dem = write_dem(tmp_path / "stepped.tif", [], [RIVER], river_step=0.5)  # level reaches 125 m long
    box = frame([shapely.box(X0 + 900, Y0 + 950, X0 + 1100, Y0 + 1150)], confidence=[0.95])
    result = split_waterbodies(frame([RIVER], OBJECTID=[3]), box, dem=dem)
    assert result.lakes.empty and len(result.rivers) == 1
    # it is the outlet test that keeps them river: without it, the boxed level reaches become lakes
    unchecked = split_waterbodies(frame([RIVER], OBJECTID=[3]), box, dem=dem, params=SplitParams(neck_ratio=100))
    assert not unchecked.lakes.empty


def test_flat_lake_without_any_box_stays_lake(waterbody, dem):
    result = split_waterbodies(waterbody, None, dem=dem)
    assert len(result.lakes) == 1
    assert iou(union(result.lakes), LAKE) >= 0.99
    assert split_waterbodies(waterbody, None, method="boxes").lakes.empty


def test_without_a_dem_a_lake_ends_where_its_channels_begin():
    """Two lakes of a chain 60 m apart on one river, no DEM, no box: the openings that free each lake
    also take the first stretch of its channels and, when both come loose together, the stretch
    between them; those go back to the river, so the river keeps the channel between the lakes."""
    second = shapely.Point(X0 + 1330, Y0 + 1066).buffer(120)
    lakes, river = [LAKE, second], RIVER
    waterbody = frame([shapely.union_all([*lakes, river])], OBJECTID=[1])
    result = split_waterbodies(waterbody, None)
    found = union(result.lakes)
    assert len(result.lakes) == 2
    assert iou(found, shapely.union_all(lakes)) >= 0.97
    link = river.difference(LAKE.buffer(3)).difference(second.buffer(3)).intersection(
        shapely.box(X0 + 1150, Y0, X0 + 1210, Y0 + 2000))
    assert found.intersection(link).area < 0.05 * link.area


def test_pond_without_dem_or_box_is_a_lake():
    pond = shapely.Polygon([(X0, Y0), (X0 + 240, Y0 + 30), (X0 + 260, Y0 + 160), (X0 + 40, Y0 + 190)])
    result = split_waterbodies(frame([pond], OBJECTID=[1]), None)
    assert result.rivers.empty and union(result.lakes).equals(pond)


def test_properties_kept_one_feature_per_part_multipart_and_holes(tmp_path):
    """A multipart waterbody (lake with an island + river, and a separate lake) keeps its properties."""
    island = shapely.Point(X0 + 1000, Y0 + 920).buffer(40)
    other_lake = shapely.Point(X0 + 1600, Y0 + 700).buffer(80)
    geom = shapely.MultiPolygon([shapely.union_all([LAKE.difference(island), RIVER]), other_lake])
    dem = write_dem(tmp_path / "dem.tif", [LAKE, other_lake], [RIVER])
    layer = frame([geom], OBJECTID=[42], NAME=["réseau"], AREA=[geom.area])
    result = split_waterbodies(layer, None, dem=dem)
    assert len(result.lakes) == 2 and len(result.rivers) == 2
    assert len(result.hydro) == 4 and set(result.hydro["TYPECE"]) == {"21", "10"}
    assert (result.hydro["OBJECTID"] == 42).all() and (result.hydro["NAME"] == "réseau").all()
    assert (result.hydro["AREA"] == geom.area).all()
    assert all(g.geom_type == "Polygon" for g in result.hydro.geometry)
    island_lake = result.lakes.geometry[result.lakes.geometry.intersects(island.buffer(1))].item()
    assert len(island_lake.interiors) == 1 and island_lake.intersection(island).area < 1.0
    assert abs(union(result.hydro).area - geom.area) < 1e-6 * geom.area  # every m² accounted for once
    assert sum(result.hydro.area) == pytest.approx(geom.area, rel=1e-9)


def test_area_without_lakes_writes_valid_empty_outputs(tmp_path):
    dem = write_dem(tmp_path / "river.tif", [], [RIVER])
    result = split_waterbodies(frame([RIVER], OBJECTID=[3]), None, dem=dem)
    paths = write_split(result, tmp_path / "out", dem=dem)
    lakes = json.loads(paths["lakes"].read_text())
    assert lakes == {"type": "FeatureCollection", "features": []}
    assert len(json.loads(paths["rivers"].read_text())["features"]) == 1
    assert paths["quicklook"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = split_waterbodies(frame([], OBJECTID=[]), None)
    assert isinstance(empty, SplitResult) and empty.hydro.empty


def test_a_detector_that_found_nothing_leaves_the_split_to_the_dem(tmp_path, waterbody, dem):
    # detect writes an empty FeatureCollection where it finds no lake: split goes on with the DEM alone
    (tmp_path / "none.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    water = write_geojson(waterbody, tmp_path / "water.geojson", crs=CRS)
    paths = split_to_files(water, tmp_path / "out", detections=tmp_path / "none.geojson", rasters=[dem])
    without = split_waterbodies(waterbody, None, dem=dem)
    assert len(without.lakes) >= 1
    assert len(json.loads(paths["lakes"].read_text())["features"]) == len(without.lakes)


def test_outputs_round_trip_in_4326_and_work_crs(tmp_path, waterbody, dem):
    box = frame([LAKE.envelope], confidence=[0.8])
    result = split_waterbodies(waterbody, box, dem=dem)
    paths = write_split(result, tmp_path / "4326", dem=dem, detections=box)
    assert "crs" not in json.loads(paths["hydro"].read_text())
    back = read_vector(paths["hydro"], srs=CRS)
    assert list(back["TYPECE"]) == list(result.hydro["TYPECE"])
    assert abs(union(back).area - union(result.hydro).area) < 1e-4 * union(result.hydro).area
    paths = write_split(result, tmp_path / "2959", crs=CRS)
    collection = json.loads(paths["lakes"].read_text())
    assert collection["crs"]["properties"]["name"].endswith("2959")


def test_detections_far_from_the_waterbodies_are_refused(waterbody):
    # boxes written in lon/lat but declared in the work CRS: they land near (0, 0) in UTM 18N
    wrong = frame([shapely.box(-75.5, 45.1, -75.4, 45.2)], confidence=[0.9])
    with pytest.raises(LakesError, match="none of the 1 detections overlaps the waterbodies"):
        split_waterbodies(waterbody, wrong)


def test_a_dem_of_another_area_is_refused(tmp_path, waterbody):
    elsewhere = write_dem(tmp_path / "elsewhere.tif", [], [], bounds=(X0 + 50_000, Y0, X0 + 51_000, Y0 + 1000))
    with pytest.raises(LakesError, match="the DEM and the hydro layer do not overlap"):
        split_waterbodies(waterbody, None, dem=[elsewhere])


def test_unknown_method_is_refused(waterbody):
    with pytest.raises(LakesError, match="unknown split method 'magic'"):
        split_waterbodies(waterbody, None, method="magic")


def test_refined_split_meets_its_targets_on_a_synthetic_scene(tmp_path):
    """True lake boxes as detections: IoU >= 0.95 for lakes and rivers, at most half the box cut's error."""
    scene = make_scene(tmp_path, seed=3, size_m=1500)
    expected = read_vector(scene["hydro"])
    waterbodies = read_vector(scene["waterbodies"])
    boxes = truth_lake_boxes(expected)
    boxed = evaluate_split(split_waterbodies(waterbodies, boxes, method="boxes").hydro, expected)
    for dem in (scene["dem"], None):
        refined = evaluate_split(split_waterbodies(waterbodies, boxes, dem=dem).hydro, expected)
        for kind in ("lake_iou", "river_iou"):
            assert refined[kind] >= 0.95, (kind, dem, refined)
            assert 1 - refined[kind] <= (1 - boxed[kind]) / 2, (kind, dem, refined, boxed)

import json
import zipfile

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Polygon, box

from wps_lakes.errors import LakesError, LimitExceeded
from wps_lakes.geodata import read_vector, write_geojson
from wps_lakes.limits import Limits

from ..geodata_fixtures import feature, rect, write_features

LON, LAT = -77.4, 45.9  # near Petawawa


def same_shape(a, b, tolerance):
    """Same polygon up to ring orientation and start vertex."""
    return shapely.normalize(a).equals_exact(shapely.normalize(b), tolerance=tolerance)


def lonlat_square(lon=LON, lat=LAT, d=0.001):
    return rect(lon, lat, lon + d, lat + d)


def test_rfc7946_lonlat_is_reprojected_to_the_work_srs(tmp_path):
    path = write_features(tmp_path / "h.geojson", [feature(lonlat_square(), TYPECE="21", OBJECTID=7)])
    gdf = read_vector(path)
    assert gdf.crs.to_epsg() == 2959
    to_work = Transformer.from_crs("EPSG:4326", "EPSG:2959", always_xy=True)
    expected = shapely.transform(shapely.from_geojson(json.dumps(lonlat_square())),
                                 lambda xy: np.column_stack(to_work.transform(xy[:, 0], xy[:, 1])))
    assert same_shape(gdf.geometry[0], expected, 1e-6)
    assert gdf.loc[0, "TYPECE"] == "21" and gdf.loc[0, "OBJECTID"] == 7


@pytest.mark.parametrize("name", ["urn:ogc:def:crs:EPSG::26918", "EPSG:26918", "urn:ogc:def:crs:EPSG:6.6:26918"])
def test_legacy_crs_member_is_honoured(tmp_path, name):
    x, y = 321_000.0, 5_090_000.0
    path = write_features(tmp_path / "h.json", [feature(rect(x, y, x + 90, y + 60), TYPECE=21)], crs_name=name)
    gdf = read_vector(path)
    corner = Transformer.from_crs("EPSG:26918", "EPSG:2959", always_xy=True).transform(x, y)
    assert shapely.Point(corner).distance(gdf.geometry[0].boundary) < 1e-6
    assert gdf.geometry[0].area == pytest.approx(90 * 60, rel=1e-3)


def test_work_srs_input_is_not_moved(tmp_path):
    path = write_features(tmp_path / "h.geojson", [feature(rect(321_000, 5_090_000, 321_090, 5_090_060))],
                          crs_name="urn:ogc:def:crs:EPSG::2959")
    assert read_vector(path).geometry[0].bounds == (321_000, 5_090_000, 321_090, 5_090_060)


def test_write_geojson_rfc7946_and_legacy_round_trip(tmp_path):
    lake = Polygon([(321_000, 5_090_000), (321_000, 5_090_300), (321_200, 5_090_300), (321_200, 5_090_000)],
                   [[(321_050, 5_090_050), (321_100, 5_090_050), (321_100, 5_090_100), (321_050, 5_090_100)]])
    gdf = gpd.GeoDataFrame({"TYPECE": ["21"], "OBJECTID": [np.int64(3)], "depth": [np.float32(2.5)],
                            "note": [None]}, geometry=[lake], crs="EPSG:2959")
    lonlat = write_geojson(gdf, tmp_path / "a.geojson")
    data = json.loads(lonlat.read_text())
    assert "crs" not in data
    exterior = np.array(data["features"][0]["geometry"]["coordinates"][0])
    assert -180 < exterior[0, 0] < 180 and -90 < exterior[0, 1] < 90
    assert Polygon(exterior).exterior.is_ccw  # RFC 7946 right-hand rule
    assert data["features"][0]["properties"] == {"TYPECE": "21", "OBJECTID": 3, "depth": 2.5, "note": None}

    legacy = write_geojson(gdf, tmp_path / "b.geojson", crs="EPSG:26918")
    assert json.loads(legacy.read_text())["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::26918"
    for path in (lonlat, legacy):
        back = read_vector(path)
        assert same_shape(back.geometry[0], lake, 1e-5)
        assert len(back.geometry[0].interiors) == 1


def test_empty_frame_writes_an_empty_collection(tmp_path):
    path = write_geojson(gpd.GeoDataFrame({"id": []}, geometry=[], crs="EPSG:2959"), tmp_path / "e.geojson")
    assert json.loads(path.read_text()) == {"type": "FeatureCollection", "features": []}
    with pytest.raises(LakesError, match="no polygon"):
        read_vector(path)


def _frame():
    polygons = [box(321_000, 5_090_000, 321_100, 5_090_100), box(321_300, 5_090_000, 321_330, 5_090_500)]
    return gpd.GeoDataFrame({"TYPECE": [21, 10], "OBJECTID": [1, 2]}, geometry=polygons, crs="EPSG:26918")


def test_shapefile_zip_and_geopackage_through_the_same_reader(tmp_path):
    frame = _frame()
    frame.to_file(tmp_path / "h.shp")
    frame.to_file(tmp_path / "h.gpkg", layer="hydro")
    with zipfile.ZipFile(tmp_path / "h.zip", "w") as archive:
        for part in tmp_path.glob("h.*"):
            if part.suffix in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
                archive.write(part, part.name)
    expected = frame.to_crs("EPSG:2959")
    for name in ("h.shp", "h.zip", "h.gpkg"):
        gdf = read_vector(tmp_path / name, require_typece=True)
        assert list(gdf["TYPECE"]) == ["21", "10"], name
        assert list(gdf["OBJECTID"]) == [1, 2], name
        assert all(same_shape(a, b, 1e-6) for a, b in zip(gdf.geometry, expected.geometry, strict=True)), name


def test_shapefile_without_prj_is_refused(tmp_path):
    _frame().to_file(tmp_path / "h.shp")
    (tmp_path / "h.prj").unlink()
    with pytest.raises(LakesError, match="no coordinate reference system"):
        read_vector(tmp_path / "h.shp")


def test_typece_codes_and_column_case_are_normalised(tmp_path):
    square = rect(321_000, 5_090_000, 321_010, 5_090_010)
    values = [10, 21.0, " 21 ", "10", "30"]
    path = write_features(tmp_path / "h.geojson", [feature(square, typece=v, objectid=i) for i, v in enumerate(values)],
                          crs_name="EPSG:2959")
    gdf = read_vector(path, require_typece=True)
    assert list(gdf["TYPECE"]) == ["10", "21", "21", "10", "30"]
    assert list(gdf["OBJECTID"]) == [0, 1, 2, 3, 4]


def test_holes_and_multipolygons_are_accepted(tmp_path):
    with_hole = rect(321_000, 5_090_000, 321_300, 5_090_300, holes=[(321_100, 5_090_100, 321_200, 5_090_200)])
    multi = {"type": "MultiPolygon", "coordinates": [rect(321_400, 5_090_000, 321_450, 5_090_050)["coordinates"],
                                                      rect(321_500, 5_090_000, 321_550, 5_090_050)["coordinates"]]}
    path = write_features(tmp_path / "h.geojson", [feature(with_hole, TYPECE="21"), feature(multi, TYPECE="21")],
                          crs_name="EPSG:2959")
    gdf = read_vector(path)
    assert gdf.geometry[0].area == pytest.approx(300 * 300 - 100 * 100)
    assert len(gdf.geometry[0].interiors) == 1
    assert isinstance(gdf.geometry[1], MultiPolygon) and len(gdf.geometry[1].geoms) == 2


def test_invalid_polygon_is_repaired_when_it_stays_a_polygon(tmp_path):
    bowtie = {"type": "Polygon", "coordinates": [[[321_000, 5_090_000], [321_020, 5_090_020], [321_020, 5_090_000],
                                                  [321_000, 5_090_020], [321_000, 5_090_000]]]}
    path = write_features(tmp_path / "h.geojson", [feature(bowtie, TYPECE="21", OBJECTID=5)], crs_name="EPSG:2959")
    repaired = read_vector(path).geometry[0]
    assert repaired.is_valid and repaired.area == pytest.approx(200.0)  # two 20 x 10 / 2 triangles


def test_polygon_collapsed_to_a_line_is_reported(tmp_path):
    flat = {"type": "Polygon", "coordinates": [[[321_000, 5_090_000], [321_010, 5_090_010], [321_020, 5_090_020],
                                                [321_000, 5_090_000]]]}
    good = rect(321_100, 5_090_000, 321_110, 5_090_010)
    path = write_features(tmp_path / "h.geojson", [feature(good, OBJECTID=1), feature(flat, OBJECTID=42)],
                          crs_name="EPSG:2959")
    with pytest.raises(LakesError, match="OBJECTID 42"):
        read_vector(path)


def test_empty_geometries_are_dropped(tmp_path):
    features = [feature(rect(321_000, 5_090_000, 321_010, 5_090_010), OBJECTID=1), feature(None, OBJECTID=2),
                feature({"type": "Polygon", "coordinates": []}, OBJECTID=3)]
    gdf = read_vector(write_features(tmp_path / "h.geojson", features, crs_name="EPSG:2959"))
    assert list(gdf["OBJECTID"]) == [1]


def test_only_empty_geometries_is_an_error(tmp_path):
    with pytest.raises(LakesError, match="no polygon"):
        read_vector(write_features(tmp_path / "h.geojson", [feature(None)]))


def test_non_polygons_are_refused(tmp_path):
    line = {"type": "LineString", "coordinates": [[LON, LAT], [LON + 0.01, LAT]]}
    path = write_features(tmp_path / "h.geojson", [feature(lonlat_square()), feature(line, OBJECTID=9)])
    with pytest.raises(LakesError, match=r"not polygons \(LineString.*OBJECTID 9"):
        read_vector(path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"type": "Feature", "geometry": null, "properties": {}}', "not a GeoJSON FeatureCollection"),
    ('{"type": "FeatureCollection", "features": [{"type": "Polygon"}]}', "feature 0 is not a GeoJSON Feature"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", '
     '"coordinates": [[1, 2]]}}]}', "malformed geometry"),
    ('{"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:99999999"}}, '
     '"features": []}', "unknown CRS"),
])
def test_bad_geojson_gives_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(LakesError, match=message) as error:
        read_vector(path)
    assert str(tmp_path) not in str(error.value)


def test_projected_coordinates_without_crs_member_are_refused(tmp_path):
    path = write_features(tmp_path / "h.geojson", [feature(rect(321_000, 5_090_000, 321_010, 5_090_010))])
    with pytest.raises(LakesError, match="not longitude/latitude"):
        read_vector(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(LakesError, match="not found") as error:
        read_vector(tmp_path / "nothing.geojson")
    assert str(tmp_path) not in str(error.value)
    (tmp_path / "h.txt").write_text("x")
    with pytest.raises(LakesError, match="unsupported vector format"):
        read_vector(tmp_path / "h.txt")
    (tmp_path / "h.gpkg").write_text("not a geopackage")
    with pytest.raises(LakesError, match="could not be read"):
        read_vector(tmp_path / "h.gpkg")


def test_typece_required_for_labels(tmp_path):
    square = lonlat_square()
    with pytest.raises(LakesError, match="no TYPECE attribute"):
        read_vector(write_features(tmp_path / "a.geojson", [feature(square, OBJECTID=1)]), require_typece=True)
    with pytest.raises(LakesError, match="1 feature.*no TYPECE value.*OBJECTID 2"):
        read_vector(write_features(tmp_path / "b.geojson", [feature(square, TYPECE="21", OBJECTID=1),
                                                            feature(square, TYPECE=None, OBJECTID=2)]),
                    require_typece=True)


def test_feature_and_vertex_limits(tmp_path):
    path = write_features(tmp_path / "h.geojson", [feature(lonlat_square(lon=LON + i * 0.01)) for i in range(5)])
    with pytest.raises(LimitExceeded, match="max_vector_features"):
        read_vector(path, limits=Limits(max_vector_features=4))
    with pytest.raises(LimitExceeded, match="max_vector_vertices"):
        read_vector(path, limits=Limits(max_vector_vertices=24))
    assert len(read_vector(path, limits=Limits(max_vector_features=5, max_vector_vertices=25))) == 5


def test_vertex_count_is_the_number_of_coordinates():
    assert shapely.get_num_coordinates(shapely.from_geojson(json.dumps(lonlat_square()))) == 5


def test_line_is_not_polygonal_after_repair():
    assert shapely.make_valid(LineString([(0, 0), (1, 1)])).geom_type == "LineString"

import json

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import rasterize
from scipy import ndimage

from wps_lakes.cli import main
from wps_lakes.errors import LakesError
from wps_lakes.geodata import make_scene, read_vector
from wps_lakes.geodata.labels import LAKE_AREA_MAX, LAKE_AREA_MIN, LAKE_RIVER_MAX_DIST

from ..geodata_fixtures import scene  # noqa: F401  (fixture)


def test_same_seed_same_files_other_seed_other_scene(tmp_path, scene):  # noqa: F811
    paths, truth = scene
    again = make_scene(tmp_path / "again", seed=truth["seed"], size_m=truth["size_m"])
    for name in ("dem", "hydro", "waterbodies", "truth"):
        assert again[name].read_bytes() == paths[name].read_bytes(), name
    other = make_scene(tmp_path / "other", seed=truth["seed"] + 1, size_m=truth["size_m"])
    assert other["dem"].read_bytes() != paths["dem"].read_bytes()


def test_dem_file(scene):  # noqa: F811
    paths, truth = scene
    with rasterio.open(paths["dem"]) as src:
        assert src.crs.to_epsg() == 2959 and src.res == (3.0, 3.0) and src.dtypes[0] == "float32"
        assert src.profile["tiled"] and src.nodata == truth["nodata_value"]
        assert (src.transform.c, src.transform.f) == (truth["grid"]["x0"], truth["grid"]["y0"])
        dem = src.read(1, masked=True)
    assert 0 < truth["nodata_pixels"] == dem.mask.sum() < 0.01 * dem.size
    assert dem.max() - dem.min() > 20  # tens of metres of relief


def check_lakes_flat_below_their_shore(paths, truth):
    """Every lake pixel (centre inside) at the lake's level; every shore pixel (2 px out, not water) above it."""
    hydro = read_vector(paths["hydro"], require_typece=True).set_index("OBJECTID")
    with rasterio.open(paths["dem"]) as src:
        dem = src.read(1, masked=True)
        water = rasterize(hydro.geometry, out_shape=dem.shape, transform=src.transform) > 0
        for lake in truth["lakes"]:
            inside = rasterize([hydro.loc[lake["OBJECTID"], "geometry"]], out_shape=dem.shape,
                               transform=src.transform) > 0
            np.testing.assert_allclose(dem[inside & ~dem.mask], lake["level_m"], atol=1e-3)
            shore = ndimage.binary_dilation(inside, iterations=2) & ~water & ~dem.mask
            assert (dem[shore] > lake["level_m"]).all(), lake["OBJECTID"]


def check_rivers_descend(paths, truth):
    """The mean level of a river's reaches strictly decreases downstream."""
    hydro = read_vector(paths["hydro"]).set_index("OBJECTID")
    with rasterio.open(paths["dem"]) as src:
        dem = src.read(1, masked=True)
        for river in truth["rivers"]:
            levels = []
            for reach in river["reaches"]:
                mask = rasterize([hydro.loc[reach, "geometry"]], out_shape=dem.shape, transform=src.transform) > 0
                levels.append(dem[mask & ~dem.mask].mean())
            assert len(levels) >= 2 and np.all(np.diff(levels) < 0), levels


def test_lakes_are_flat_at_their_level_below_their_shore(scene):  # noqa: F811
    check_lakes_flat_below_their_shore(*scene)


def test_rivers_descend_along_their_course(scene):  # noqa: F811
    check_rivers_descend(*scene)


@pytest.mark.slow
@pytest.mark.parametrize("size_m", [1000, 2000, 3000, 4500])
@pytest.mark.parametrize("seed", range(4))
def test_scene_rules_hold_for_many_seeds_and_sizes(tmp_path, seed, size_m):
    paths = make_scene(tmp_path, seed=seed, size_m=size_m)
    truth = json.loads(paths["truth"].read_text())
    check_lakes_flat_below_their_shore(paths, truth)
    check_rivers_descend(paths, truth)
    assert truth["counts"]["focal_lakes"] >= 3 and truth["counts"]["lakes_with_holes"] >= 1


def test_hydro_layer_has_what_the_method_is_tested_on(scene):  # noqa: F811
    paths, truth = scene
    raw = json.loads(paths["hydro"].read_text())
    assert "crs" not in raw  # RFC 7946: every consumer reprojects
    hydro = read_vector(paths["hydro"], require_typece=True)
    assert set(hydro["TYPECE"]) == {"10", "21"} and hydro["OBJECTID"].is_unique
    lakes, rivers = hydro[hydro["TYPECE"] == "21"], hydro[hydro["TYPECE"] == "10"]
    river_union = shapely.union_all(rivers.geometry.values)
    by_id = {lake["OBJECTID"]: lake for lake in truth["lakes"]}
    for row in lakes.itertuples():
        record = by_id[row.OBJECTID]
        assert row.geometry.area == pytest.approx(record["area_m2"], abs=0.5)
        assert 900 < row.geometry.area < 200_000
        distance = row.geometry.distance(river_union)
        focal = LAKE_AREA_MIN <= row.geometry.area <= LAKE_AREA_MAX and distance < LAKE_RIVER_MAX_DIST
        assert focal == record["focal"]
    counts = truth["counts"]
    assert counts["focal_lakes"] >= 3 and counts["lakes"] > counts["focal_lakes"]  # some far from rivers
    assert counts["lakes_with_holes"] >= 1 and counts["multipart_lakes"] >= 1
    assert counts["bbox_crossings"] >= 1  # a river across a lake's bounding box, not the lake
    assert any(lake["kind"] == "flow-through" and lake["distance_to_river_m"] == 0 for lake in truth["lakes"])
    assert shapely.get_num_interior_rings(lakes.geometry.values).sum() == sum(r["holes"] for r in truth["lakes"])


def test_waterbodies_are_the_same_water_merged(scene):  # noqa: F811
    paths, truth = scene
    hydro = read_vector(paths["hydro"])
    waterbodies = read_vector(paths["waterbodies"])
    assert "TYPECE" not in waterbodies.columns and waterbodies["id"].is_unique
    assert len(waterbodies) == truth["counts"]["waterbodies"]
    merged = shapely.union_all(hydro.geometry.values)
    assert len(waterbodies) == len(shapely.get_parts(merged)) < len(hydro)  # lakes and rivers joined
    assert shapely.union_all(waterbodies.geometry.values).symmetric_difference(merged).area < 1.0


def test_scene_command(tmp_path, capsys):
    assert main(["scene", str(tmp_path / "s"), "--seed", "5", "--size-m", "1200"]) == 0
    output = capsys.readouterr().out
    for name in ("dem.tif", "hydro.geojson", "waterbodies.geojson", "truth.json"):
        assert (tmp_path / "s" / name).is_file() and name in output
    assert json.loads((tmp_path / "s" / "truth.json").read_text())["seed"] == 5
    assert main(["scene", str(tmp_path / "t"), "--size-m", "10"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_scene_size_is_checked(tmp_path):
    with pytest.raises(LakesError, match="out of range"):
        make_scene(tmp_path, size_m=100_000)

"""`wps-lakes split` and `wps-lakes evaluate` on a synthetic scene, as a user runs them."""
import json

import pytest

from wps_lakes.cli import main
from wps_lakes.geodata import make_scene, read_vector, write_geojson
from wps_lakes.hydro import evaluate_split, split_waterbodies, truth_lake_boxes


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    paths = make_scene(folder, seed=3, size_m=1500)
    paths["boxes"] = write_geojson(truth_lake_boxes(read_vector(paths["hydro"])), folder / "boxes.geojson")
    return paths


def test_split_then_evaluate(scene, tmp_path, capsys):
    out = tmp_path / "split"
    assert main(["split", "--vector", str(scene["waterbodies"]), "--detections", str(scene["boxes"]),
                 "--raster", str(scene["dem"]), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["hydro.geojson", "lakes.geojson", "rivers.geojson", "split.png"]
    hydro = json.loads((out / "hydro.geojson").read_text())
    assert {f["properties"]["TYPECE"] for f in hydro["features"]} == {"21", "10"}
    assert all("id" in f["properties"] for f in hydro["features"])  # the waterbodies' own property, kept

    figures_path = tmp_path / "figures.json"
    assert main(["evaluate", "--truth", str(scene["hydro"]), "--detections", str(scene["boxes"]),
                 "--split", str(out), "-o", str(figures_path)]) == 0
    figures = json.loads(figures_path.read_text())
    assert figures["detections"]["ap"] == pytest.approx(1.0)  # the true boxes themselves
    # the command scores exactly what the library computes for the same split
    truth = read_vector(scene["hydro"])
    direct = evaluate_split(split_waterbodies(read_vector(scene["waterbodies"]), read_vector(scene["boxes"]),
                                              dem=scene["dem"]).hydro, truth)
    assert figures["split"]["lake_iou"] == pytest.approx(direct["lake_iou"], abs=1e-6)
    assert figures["split"]["lake_iou"] >= 0.95 and figures["split"]["river_iou"] >= 0.95
    printed = capsys.readouterr().out
    assert "lake_iou" in printed and "ap" in printed


def test_boxes_method_and_work_crs_output(scene, tmp_path):
    out = tmp_path / "boxes"
    assert main(["split", "--vector", str(scene["waterbodies"]), "--detections", str(scene["boxes"]),
                 "--method", "boxes", "--crs", "EPSG:2959", "-o", str(out)]) == 0
    lakes = json.loads((out / "lakes.geojson").read_text())
    assert lakes["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::2959"
    assert lakes["features"]


def test_user_errors_are_one_line_messages(scene, tmp_path, capsys):
    assert main(["split", "--vector", str(scene["waterbodies"]), "--detections", str(scene["boxes"]),
                 "--checkpoint", "x.pth", "-o", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["evaluate", "--truth", str(scene["hydro"])]) == 2
    assert "give something to evaluate" in capsys.readouterr().err
    assert main(["evaluate", "--truth", str(scene["waterbodies"]), "--split", str(tmp_path)]) == 2
    assert "TYPECE" in capsys.readouterr().err

"""`wps-lakes detect`, and `wps-lakes split --checkpoint`, as a user runs them."""
import json
import subprocess

import pytest

from wps_lakes.cli import main
from wps_lakes.geodata import make_scene

from ..common import WPS_LAKES
from .test_inference import fresh_checkpoint


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    paths = make_scene(folder, seed=3, size_m=1500)
    paths["checkpoint"] = fresh_checkpoint(folder / "fresh.pth")
    return paths


def test_detect_command_writes_geojson_and_quicklook(scene, tmp_path):
    output = tmp_path / "out" / "lakes.geojson"
    run = subprocess.run([WPS_LAKES, "detect", "--checkpoint", str(scene["checkpoint"]), "--raster", str(scene["dem"]),
                          "--vector", str(scene["hydro"]), "-o", str(output), "--score-threshold", "0",
                          "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    collection = json.loads(output.read_text())
    assert "crs" not in collection and collection["features"]
    assert {"confidence", "tile", "id"} == set(collection["features"][0]["properties"])
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert f"{len(collection['features'])} lake(s)" in run.stdout


def test_detect_command_refuses_a_bad_checkpoint_with_a_message(scene, tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 64)
    assert main(["detect", "--checkpoint", str(bad), "--raster", str(scene["dem"]), "--vector", str(scene["hydro"]),
                 "-o", str(tmp_path / "x.geojson")]) == 2
    assert "wps-lakes detect: 'bad.pth' is not a PyTorch checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.geojson").exists()


def test_split_detects_first_with_a_checkpoint(scene, tmp_path):
    out = tmp_path / "split"
    assert main(["split", "--vector", str(scene["waterbodies"]), "--checkpoint", str(scene["checkpoint"]),
                 "--raster", str(scene["dem"]), "--score-threshold", "0", "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["detections.geojson", "detections.png", "hydro.geojson", "lakes.geojson", "rivers.geojson",
                     "split.png"]
    assert json.loads((out / "detections.geojson").read_text())["features"]

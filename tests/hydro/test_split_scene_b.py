"""The refined split on the second scene style (geodata.scene_b), which the method was not tuned on."""
import pytest

from wps_lakes.geodata import read_vector
from wps_lakes.geodata.dem_variants import degrade_dem
from wps_lakes.geodata.scene_b import make_scene_b
from wps_lakes.hydro import evaluate_split, split_waterbodies, truth_lake_boxes


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    paths = make_scene_b(tmp_path_factory.mktemp("scene_b"), seed=1, size_m=1200)
    truth, waterbodies = read_vector(paths["hydro"]), read_vector(paths["waterbodies"])
    boxes = truth_lake_boxes(truth)
    baseline = {name: evaluate_split(split_waterbodies(waterbodies, boxes, method=method).hydro, truth)
                for name, method in (("boxes", "boxes"), ("no_dem", "refined"))}
    return paths, truth, waterbodies, boxes, baseline


TIN_SHORT = pytest.mark.xfail(reason="issue 17, open: on style B a TIN-like DEM costs about 0.01 of lake IoU "
                                     "against the split without a DEM (cause not yet found)")


@pytest.mark.parametrize("variant", ["flattened", "noise10", "stepped", pytest.param("tin", marks=TIN_SHORT),
                                     "nodata"])
def test_scene_b_with_a_dem_is_never_worse_than_without(scene, variant):
    paths, truth, waterbodies, boxes, baseline = scene
    scores = evaluate_split(split_waterbodies(waterbodies, boxes, dem=degrade_dem(paths, variant)).hydro, truth)
    for kind in ("lake_iou", "river_iou"):
        assert scores[kind] >= baseline["no_dem"][kind] - 0.005, (variant, kind, scores, baseline)
        assert scores[kind] >= baseline["boxes"][kind], (variant, kind, scores, baseline)

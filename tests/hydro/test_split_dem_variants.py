"""The refined split on the DEMs users have (issue 17): noisy, resampled, coarse, stepped, TIN-like,
no data over water. One small scene; every variant must meet the targets and never fall below the
box cut, nor below the split without a DEM by more than a rounding."""
import logging

import numpy as np
import pytest
import rasterio

from wps_lakes.geodata import make_scene, read_vector
from wps_lakes.geodata.dem_variants import VARIANTS, degrade_dem
from wps_lakes.hydro import evaluate_lakes, evaluate_split, split_waterbodies, truth_lake_boxes
from wps_lakes.hydro.split import EVIDENCE, LEVEL, SHAPE


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    paths = make_scene(tmp_path_factory.mktemp("variants"), seed=3, size_m=1500)
    truth = read_vector(paths["hydro"])
    waterbodies = read_vector(paths["waterbodies"])
    boxes = truth_lake_boxes(truth)
    baseline = {name: evaluate_split(split_waterbodies(waterbodies, boxes, dem=None, method=method).hydro, truth)
                for name, method in (("boxes", "boxes"), ("no_dem", "refined"))}
    return paths, truth, waterbodies, boxes, baseline


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_dem_variant_meets_the_targets(scene, variant):
    paths, truth, waterbodies, boxes, baseline = scene
    result = split_waterbodies(waterbodies, boxes, dem=degrade_dem(paths, variant, seed=3))
    scores = evaluate_split(result.hydro, truth)
    for kind in ("lake_iou", "river_iou"):
        assert scores[kind] >= baseline["no_dem"][kind] - 0.005, (variant, kind, scores)
        if variant != "nodata":
            assert scores[kind] >= 0.95, (variant, kind, scores)
            assert scores[kind] >= baseline["boxes"][kind], (variant, kind, scores, baseline)
    if variant != "nodata":
        assert evaluate_lakes(result.hydro, truth)["f1"] >= 0.9
        assert result.evidence == {LEVEL: len(waterbodies)}
    else:
        assert result.evidence == {SHAPE: len(waterbodies)} and result.dem_unusable == len(waterbodies)


def test_every_part_says_why(scene, caplog):
    paths, truth, waterbodies, boxes, _ = scene
    with caplog.at_level(logging.INFO, logger="wps_lakes.hydro.split"):
        result = split_waterbodies(waterbodies, boxes, dem=paths["dem"])
    assert result.hydro[EVIDENCE].notna().all()
    assert set(result.lakes[EVIDENCE]) <= {LEVEL, SHAPE, f"{SHAPE}, boxes"}
    assert (result.lakes[EVIDENCE] == LEVEL).any()
    assert f"{len(waterbodies)} by {LEVEL}" in result.summary()
    assert result.summary() in caplog.text
    boxed = split_waterbodies(waterbodies, boxes, method="boxes")
    assert set(boxed.hydro[EVIDENCE]) == {"boxes"}


@pytest.mark.parametrize("values, problem", [
    (lambda z: np.full_like(z, 120.0), "constant"),
    (lambda z: z * 1e6, "not heights"),
    (lambda z: np.full_like(z, -9999.0), "no data"),
])
def test_a_dem_that_is_not_heights_is_reported_and_left_out(scene, tmp_path, caplog, values, problem):
    paths, truth, waterbodies, boxes, baseline = scene
    bad = tmp_path / "bad.tif"
    with rasterio.open(paths["dem"]) as src:
        profile, z = src.profile, src.read(1)
    with rasterio.open(bad, "w", **profile) as dst:
        if problem == "no data":  # no data over the water only: the DEM still opens
            water = read_vector(paths["waterbodies"]).buffer(6).union_all()
            from rasterio.features import geometry_mask
            z = np.where(geometry_mask([water], z.shape, profile["transform"]), z, -9999.0)
        else:
            z = values(z)
        dst.write(z.astype(np.float32), 1)
    with caplog.at_level(logging.WARNING, logger="wps_lakes.hydro.split"):
        result = split_waterbodies(waterbodies, boxes, dem=bad)
    assert problem in caplog.text
    assert result.evidence == {SHAPE: len(waterbodies)}
    scores = evaluate_split(result.hydro, truth)
    assert scores["lake_iou"] == pytest.approx(baseline["no_dem"]["lake_iou"], abs=1e-9)

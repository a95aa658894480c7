"""Scores against truth: detection AP / precision / recall, split IoU and typed share, the table."""
import geopandas as gpd
import pytest
import shapely

from wps_lakes.errors import LakesError
from wps_lakes.hydro import evaluate_detections, evaluate_split, format_table, truth_lake_boxes

CRS = "EPSG:2959"
X0, Y0 = 300_000.0, 5_000_000.0
LAKE_A = shapely.box(X0, Y0, X0 + 100, Y0 + 100)
LAKE_B = shapely.MultiPolygon([shapely.box(X0 + 300, Y0, X0 + 340, Y0 + 40),
                               shapely.box(X0 + 400, Y0, X0 + 440, Y0 + 40)])   # two parts, two boxes
RIVER = shapely.box(X0 + 100, Y0 + 40, X0 + 600, Y0 + 60)


def frame(geoms, **columns):
    return gpd.GeoDataFrame(columns, geometry=list(geoms), crs=CRS)


TRUTH = frame([LAKE_A, LAKE_B, RIVER], TYPECE=["21", "21", "10"])


def test_truth_boxes_are_one_per_lake_part():
    boxes = truth_lake_boxes(TRUTH)
    assert len(boxes) == 3 and (boxes["confidence"] == 1).all()
    assert sorted(b.area for b in boxes.geometry) == sorted([LAKE_A.area] + [p.area for p in LAKE_B.geoms])


def test_detection_scores_count_matches_misses_and_false_alarms():
    true = list(truth_lake_boxes(TRUTH).geometry)
    shifted = shapely.affinity.translate(true[0], 30, 0)     # IoU 70/130 >= 0.5 with lake A: a match
    far = shapely.box(X0 + 800, Y0, X0 + 850, Y0 + 50)       # no lake there
    detections = frame([shifted, far, true[1]], confidence=[0.9, 0.8, 0.3])
    figures = evaluate_detections(detections, TRUTH, score_threshold=0.5)
    # at 0.5: shifted (TP) and far (FP) kept, true[1] (0.3) not; lake B's second part never found
    assert (figures["tp"], figures["fp"], figures["fn"], figures["n_gt"], figures["n_pred"]) == (1, 1, 2, 3, 3)
    assert figures["precision"] == pytest.approx(1 / 2) and figures["recall"] == pytest.approx(1 / 3)
    # ranking TP, FP, TP over 3 lakes: precision 1 up to recall 1/3, then 2/3 up to recall 2/3
    assert figures["ap"] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    assert evaluate_detections(frame([], confidence=[]), TRUTH)["ap"] == 0.0


def test_detections_in_another_crs_are_compared_in_the_truth_crs():
    boxes = truth_lake_boxes(TRUTH).to_crs("EPSG:4326")
    assert evaluate_detections(boxes, TRUTH)["ap"] == pytest.approx(1.0)


def test_split_scores_from_areas():
    half_a = shapely.box(X0, Y0, X0 + 100, Y0 + 50)   # half of lake A typed lake, the other half river
    split = frame([half_a, LAKE_B, shapely.box(X0, Y0 + 50, X0 + 100, Y0 + 100), RIVER],
                  TYPECE=["21", "21", "10", "10"])
    figures = evaluate_split(split, TRUTH)
    lakes, water = LAKE_A.area + LAKE_B.area, LAKE_A.area + LAKE_B.area + RIVER.area
    assert figures["lake_iou"] == pytest.approx((lakes - LAKE_A.area / 2) / lakes)
    assert figures["river_iou"] == pytest.approx(RIVER.area / (RIVER.area + LAKE_A.area / 2))
    assert figures["typed_correctly"] == pytest.approx((water - LAKE_A.area / 2) / water)
    assert evaluate_split(TRUTH, TRUTH)["lake_iou"] == evaluate_split(TRUTH, TRUTH)["river_iou"] == 1.0


def test_layers_without_typece_are_refused():
    with pytest.raises(LakesError, match="has no TYPECE attribute"):
        evaluate_split(frame([LAKE_A]), TRUTH)


def test_table_lists_every_figure():
    table = format_table({"lake_iou": 0.98765, "tp": 3, "nested": {"ap": 0.5}}, title="split")
    lines = table.splitlines()
    assert lines[:2] == ["split", "-----"]
    assert [line.split() for line in lines[2:]] == [["lake_iou", "0.9877"], ["tp", "3"], ["nested.ap", "0.5000"]]

"""PASCAL VOC AP@0.5, precision and recall (wps_lakes.detector.metrics)."""
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from wps_lakes.detector.metrics import DetectionScores, box_iou, detection_scores, match_detections, voc_ap


def naive_ap(tp_in_rank_order, n_gt):
    """All-points AP from its definition: mean over the ground-truth boxes of the best precision
    reachable at a recall at least as high as the rank where each one is found (0 if never found)."""
    tp = np.asarray(tp_in_rank_order, dtype=bool)
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    found = np.flatnonzero(tp)
    return sum(precision[k:].max() for k in found) / n_gt


def random_boxes(rng, n):
    xs, ys = np.sort(rng.uniform(0, 50, (n, 2)), axis=1), np.sort(rng.uniform(0, 50, (n, 2)), axis=1)
    return np.column_stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]])


def test_iou_matches_shapely_areas():
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 6), random_boxes(rng, 5)
    iou = box_iou(a, b)
    for i, box_a in enumerate(a):
        for j, box_b in enumerate(b):
            pa, pb = shapely.box(*box_a), shapely.box(*box_b)
            assert iou[i, j] == pytest.approx(pa.intersection(pb).area / pa.union(pb).area)


def test_perfect_detections_score_one_and_misses_lower_recall():
    gt = [np.array([[0, 0, 10, 10], [20, 20, 40, 30]]), np.array([[5, 5, 15, 25]])]
    perfect = [(boxes, np.linspace(0.9, 0.8, len(boxes))) for boxes in gt]
    scores = detection_scores(perfect, gt)
    assert scores["ap"] == pytest.approx(1.0)
    assert (scores["precision"], scores["recall"], scores["tp"], scores["fp"], scores["fn"]) == (1.0, 1.0, 3, 0, 0)
    missing_one = [perfect[0], (np.zeros((0, 4)), np.zeros(0))]
    scores = detection_scores(missing_one, gt)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["ap"] == pytest.approx(2 / 3)


def test_duplicates_and_low_iou_are_false_positives():
    gt = np.array([[0, 0, 10, 10]])
    preds = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 4]])   # same box twice; IoU 0.4
    tp = match_detections(preds, [0.9, 0.8, 0.95], gt)
    assert tp.tolist() == [True, False, False]
    scores = detection_scores([(preds, np.array([0.9, 0.8, 0.95]))], [gt])
    assert scores["tp"] == 1 and scores["fp"] == 2
    assert scores["ap"] == pytest.approx(naive_ap([False, True, False], 1))   # ranks: 0.95, 0.9, 0.8


def test_iou_threshold_is_inclusive():
    gt = np.array([[0, 0, 10, 10]])
    half = np.array([[0, 0, 10, 5]])           # IoU exactly 0.5
    assert match_detections(half, [1.0], gt, iou_threshold=0.5).tolist() == [True]
    assert match_detections(half, [1.0], gt, iou_threshold=0.51).tolist() == [False]


def test_operating_threshold_counts_only_confident_predictions():
    gt = [np.array([[0, 0, 10, 10], [20, 0, 30, 10]])]
    preds = [(np.array([[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]]), np.array([0.9, 0.3, 0.6]))]
    scores = detection_scores(preds, gt, score_threshold=0.5)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 1)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(0.5)
    assert scores["ap"] == pytest.approx(naive_ap([True, False, True], 2))


def test_eleven_point_method_and_empty_cases():
    assert voc_ap([0.5, 1.0], [1.0, 0.5], method="11-points") == pytest.approx((6 * 1.0 + 5 * 0.5) / 11)
    empty = DetectionScores().compute()
    assert empty["ap"] == 0.0 and empty["n_gt"] == 0 and empty["precision"] == 0.0
    with pytest.raises(ValueError):
        voc_ap([1.0], [1.0], method="bogus")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0.01, 1.0)), min_size=1, max_size=25),
       st.integers(1, 6), st.integers(0, 2**16))
def test_ap_equals_its_definition(pred_specs, n_gt, seed):
    """Random images: AP from the ranking equals the definition; precision/recall are counted ratios."""
    rng = np.random.default_rng(seed)
    gt_boxes = [np.array([[10.0 * k, 0, 10.0 * k + 8, 8] for k in range(n_gt)])]
    boxes, scores = [], []
    for target, score in pred_specs:
        jitter = rng.uniform(-3, 3, 4) if target < n_gt else np.array([500.0, 500, 500, 500])
        boxes.append(gt_boxes[0][min(target, n_gt - 1)] + jitter)
        scores.append(score)
    boxes, scores = np.array(boxes), np.array(scores)
    result = detection_scores([(boxes, scores)], gt_boxes)
    tp = match_detections(boxes, scores, gt_boxes[0])
    order = np.argsort(-scores, kind="stable")
    assert result["ap"] == pytest.approx(naive_ap(tp[order], n_gt))
    assert 0.0 <= result["ap"] <= 1.0
    kept = scores >= 0.5
    assert result["tp"] == int(tp[kept].sum())
    assert result["recall"] == pytest.approx(tp[kept].sum() / n_gt)

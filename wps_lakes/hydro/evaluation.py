"""Scores against ground truth: detections (VOC AP@0.5, precision, recall) and splits (area IoU).

The truth is a hydro layer with ``TYPECE`` on every feature (a synthetic scene's ``hydro.geojson``):
its lake parts give the true lake boxes and, with its river parts, the true lake and river areas.
Every function returns a plain dict of figures (JSON-ready); ``format_table`` prints them.
"""
import geopandas as gpd
import numpy as np
import shapely

from ..errors import LakesError
from ..geodata.vectors import LAKE, RIVER, TYPECE


def truth_lake_boxes(truth):
    """The true lakes' boxes as detections (``confidence`` 1), one per polygon part as the training labels."""
    _check_typece(truth, "the truth layer")
    lakes = shapely.get_parts(truth.geometry[truth[TYPECE] == LAKE].values)
    return gpd.GeoDataFrame({"confidence": np.ones(len(lakes))}, geometry=shapely.envelope(lakes), crs=truth.crs)


def evaluate_detections(detections, truth, iou_threshold=0.5, score_threshold=0.5):
    """Detections (boxes with ``confidence``) against the true lakes of ``truth``, over the whole region.

    Returns ``ap`` (all-points VOC AP at ``iou_threshold``), ``precision``, ``recall``, ``tp``, ``fp``,
    ``fn`` (at ``score_threshold``), ``n_gt`` and ``n_pred``.
    """
    from ..detector.metrics import detection_scores

    boxes = shapely.bounds(detections.to_crs(truth.crs).geometry.values).reshape(-1, 4)
    scores = detections["confidence"].to_numpy(dtype=np.float64) if len(detections) else np.zeros(0)
    true_boxes = shapely.bounds(truth_lake_boxes(truth).geometry.values).reshape(-1, 4)
    return detection_scores([(boxes, scores)], [true_boxes], iou_threshold=iou_threshold,
                            score_threshold=score_threshold)


def evaluate_split(hydro, truth):
    """A split (a layer with ``TYPECE``, e.g. ``SplitResult.hydro``) against the true lakes and rivers.

    Returns ``lake_iou`` and ``river_iou`` (area IoU of the union of each class), ``typed_correctly``
    (share of the true waterbody area given its true type), and the areas in m².
    """
    _check_typece(hydro, "the split")
    _check_typece(truth, "the truth layer")
    hydro = hydro.to_crs(truth.crs)
    pred_lake, pred_river = (_union(hydro, code) for code in (LAKE, RIVER))
    true_lake, true_river = (_union(truth, code) for code in (LAKE, RIVER))
    water = shapely.union(true_lake, true_river).area
    correct = pred_lake.intersection(true_lake).area + pred_river.intersection(true_river).area
    return {
        "lake_iou": _iou(pred_lake, true_lake),
        "river_iou": _iou(pred_river, true_river),
        "typed_correctly": correct / water if water else 0.0,
        "lake_area_m2": pred_lake.area,
        "true_lake_area_m2": true_lake.area,
        "river_area_m2": pred_river.area,
        "true_river_area_m2": true_river.area,
    }


def evaluate_lakes(hydro, truth, iou_threshold=0.5):
    """Per-lake detection by the split: a true lake (each polygon part of one, as the true boxes) is
    found when one predicted lake part has IoU >= ``iou_threshold`` with it (each part matched once).
    Returns ``precision``, ``recall``, ``f1``, ``tp``, ``n_true`` and ``n_pred`` (lake parts)."""
    _check_typece(hydro, "the split")
    _check_typece(truth, "the truth layer")
    pred = list(shapely.get_parts(hydro.to_crs(truth.crs).geometry[hydro[TYPECE] == LAKE].values))
    true = list(shapely.get_parts(truth.geometry[truth[TYPECE] == LAKE].values))
    tree = shapely.STRtree(pred)
    used, tp = set(), 0
    for lake in true:
        best, best_iou = None, iou_threshold
        for j in tree.query(lake, predicate="intersects"):
            iou = _iou(pred[j], lake)
            if j not in used and iou >= best_iou:
                best, best_iou = j, iou
        if best is not None:
            used.add(best)
            tp += 1
    precision = tp / len(pred) if pred else 1.0
    recall = tp / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "n_true": len(true), "n_pred": len(pred)}


def format_table(figures, title=None):
    """Rows of ``name  value`` (nested dicts as ``section.name``), floats to 4 decimals."""
    rows = list(_flatten(figures))
    width = max((len(name) for name, _ in rows), default=0)
    lines = [title, "-" * len(title)] if title else []
    for name, value in rows:
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{name:<{width}}  {shown:>12}")
    return "\n".join(lines)


def _flatten(figures, prefix=""):
    for name, value in figures.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _union(layer, code):
    return shapely.union_all(layer.geometry[layer[TYPECE] == code].values)


def _iou(a, b):
    union = shapely.union(a, b).area
    return shapely.intersection(a, b).area / union if union else 1.0


def _check_typece(layer, name):
    if TYPECE not in layer.columns:
        raise LakesError(f'{name} has no TYPECE attribute: give a layer with TYPECE "{LAKE}" (lake) or '
                         f'"{RIVER}" (river) on every feature')

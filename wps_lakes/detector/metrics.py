"""Detection scores: PASCAL VOC average precision at an IoU threshold, precision and recall.

The one implementation used by validation during training and by ``wps-lakes evaluate``.
Boxes are ``(xmin, ymin, xmax, ymax)`` arrays in any common unit (pixels or metres); a prediction
matches a ground-truth box when their IoU is at least ``iou_threshold``. Matching is greedy as in
the VOC devkit: predictions are taken by decreasing score over the whole set, each one is compared
with the ground-truth boxes of its own image, and counts as a true positive when its best-overlapping
box reaches the threshold and was not already matched (otherwise it is a false positive).
An empty denominator gives 0.0; ``n_gt`` and ``n_pred`` tell such cases apart.
"""
import numpy as np

AP_METHODS = ("all-points", "11-points")


def box_iou(a, b):
    """IoU matrix (len(a) x len(b)) of two sets of ``(xmin, ymin, xmax, ymax)`` boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def voc_ap(recall, precision, method="all-points"):
    """Area under a precision/recall curve given in ranking order, as the PASCAL VOC devkit computes it.

    ``all-points`` (VOC 2010+): precision made monotonically decreasing, integrated at every recall
    change; ``11-points`` (VOC 2007): mean of the interpolated precision at recall 0, 0.1, ..., 1.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if method == "11-points":
        return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))
    if method != "all-points":
        raise ValueError(f"unknown AP method {method!r}; use one of {AP_METHODS}")
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changes = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def match_detections(pred_boxes, pred_scores, gt_boxes, iou_threshold=0.5):
    """Greedy VOC matching on one image: a true-positive flag per prediction (in the given order)."""
    pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")
    iou = box_iou(pred_boxes, gt_boxes)
    used = np.zeros(iou.shape[1], dtype=bool)
    tp = np.zeros(len(pred_boxes), dtype=bool)
    if iou.shape[1] == 0:
        return tp
    for i in order:
        best = int(np.argmax(iou[i]))
        if iou[i, best] >= iou_threshold and not used[best]:
            used[best] = True
            tp[i] = True
    return tp


class DetectionScores:
    """Accumulates predictions and ground truth image by image, then scores them together.

    >>> scores = DetectionScores()
    >>> scores.add(pred_boxes, pred_scores, gt_boxes)   # once per image
    >>> scores.compute()  # {"ap": ..., "precision": ..., "recall": ..., ...}
    """

    def __init__(self, iou_threshold=0.5, score_threshold=0.5, method="all-points"):
        if method not in AP_METHODS:
            raise ValueError(f"unknown AP method {method!r}; use one of {AP_METHODS}")
        self.iou_threshold = float(iou_threshold)
        self.score_threshold = float(score_threshold)
        self.method = method
        self.scores, self.tp = [], []
        self.n_gt = 0

    def add(self, pred_boxes, pred_scores, gt_boxes):
        """Add one image's predictions (boxes, scores) and its ground-truth boxes."""
        pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        self.tp.append(match_detections(pred_boxes, pred_scores, gt_boxes, self.iou_threshold))
        self.scores.append(pred_scores)
        self.n_gt += len(gt_boxes)

    def best_f1(self, floor=0.05):
        """The score threshold with the best F1 on what was added (see ``best_f1``)."""
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        tp = np.concatenate(self.tp) if self.tp else np.zeros(0, dtype=bool)
        return best_f1(scores, tp, self.n_gt, floor)

    def compute(self):
        """``ap`` over all scores, ``precision``/``recall``/``tp``/``fp``/``fn`` at ``score_threshold``."""
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        tp = np.concatenate(self.tp) if self.tp else np.zeros(0, dtype=bool)
        order = np.argsort(-scores, kind="stable")
        tp_cum = np.cumsum(tp[order])
        ranks = np.arange(1, len(order) + 1)
        if self.n_gt and len(order):
            ap = voc_ap(tp_cum / self.n_gt, tp_cum / ranks, self.method)
        else:
            ap = 0.0
        kept = scores >= self.score_threshold
        n_tp, n_kept = int(tp[kept].sum()), int(kept.sum())
        return {
            "ap": ap,
            "precision": n_tp / n_kept if n_kept else 0.0,
            "recall": n_tp / self.n_gt if self.n_gt else 0.0,
            "tp": n_tp,
            "fp": n_kept - n_tp,
            "fn": self.n_gt - n_tp,
            "n_gt": self.n_gt,
            "n_pred": len(scores),
        }


def best_f1(scores, tp, n_gt, floor=0.05):
    """The score threshold with the best F1 over ranked predictions (``scores``, true-positive flags).

    Returns ``{"score_threshold", "f1", "precision", "recall"}``; the threshold is midway between the
    last score kept and the next one (so a slightly different score keeps the same decision), at least
    ``floor``. With no prediction or no ground truth, F1 is 0 and the threshold 0.5 (the old default).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    tp = np.asarray(tp, dtype=bool).reshape(-1)
    if not n_gt or not len(scores):
        return {"score_threshold": 0.5, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    order = np.argsort(-scores, kind="stable")
    scores, tp = scores[order], tp[order]
    tp_cum = np.cumsum(tp)
    ranks = np.arange(1, len(scores) + 1)
    # only the last of equal scores is a possible cut: a threshold keeps all of them or none
    last = np.append(scores[1:] != scores[:-1], True)
    f1 = np.where(last, 2 * tp_cum / (ranks + n_gt), -1.0)
    best = int(np.argmax(f1))
    below = scores[best + 1] if best + 1 < len(scores) else 0.0
    threshold = max(float((scores[best] + below) / 2), floor)
    kept = scores >= threshold
    n_tp, n_kept = int(tp[kept].sum()), int(kept.sum())
    precision = n_tp / n_kept if n_kept else 0.0
    recall = n_tp / n_gt
    return {"score_threshold": round(threshold, 4), "f1": 2 * n_tp / (n_kept + n_gt),
            "precision": precision, "recall": recall}


def detection_scores(predictions, ground_truth, iou_threshold=0.5, score_threshold=0.5, method="all-points"):
    """Score paired lists of per-image predictions ``(boxes, scores)`` and ground-truth boxes."""
    scores = DetectionScores(iou_threshold, score_threshold, method)
    for (boxes, confidences), gt_boxes in zip(predictions, ground_truth, strict=True):
        scores.add(boxes, confidences, gt_boxes)
    return scores.compute()

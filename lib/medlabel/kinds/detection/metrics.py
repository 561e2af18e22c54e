"""Detection quality on held-out images: FROC sensitivities, CPM and average precision.

A detection hits a lesion when their boxes overlap with IoU >= ``iou`` (0.1 by default, as MONAI's LUNA16
detection evaluation uses). FROC: at each score threshold, sensitivity is the fraction of lesions hit by a
detection at or above it, and false positives are such detections that hit no lesion (a second hit on a
lesion is neither); the sensitivity at a rate of false positives per volume is the best sensitivity among
thresholds at or below that rate. CPM is the mean over 1/8 .. 8 FP per volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from monai.data.box_utils import box_iou

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class ImageDetections:
    """One image's predicted boxes with scores and its reference boxes, all in the same frame."""

    boxes: np.ndarray  # (N, 6)
    scores: np.ndarray  # (N,)
    truth: np.ndarray  # (G, 6)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 6), np.asarray(b, dtype=np.float64).reshape(-1, 6)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return np.asarray(box_iou(a, b), dtype=np.float64)


def froc(images: list[ImageDetections], iou: float = 0.1, fp_rates=FP_RATES) -> dict:
    """``{"sensitivity": {rate: s}, "cpm": mean, "lesions": G, "images": N}``; CPM is 0 without lesions."""
    lesion_scores, fp_scores, lesions = [], [], 0
    for image in images:
        hits = _iou(image.boxes, image.truth) >= iou  # (N, G)
        scores = np.asarray(image.scores, dtype=np.float64).reshape(-1)
        lesions += hits.shape[1]
        for g in range(hits.shape[1]):  # a lesion counts as found from its best hitting detection's score
            lesion_scores.append(scores[hits[:, g]].max() if hits[:, g].any() else -np.inf)
        fp_scores.extend(scores[~hits.any(axis=1)])
    lesion_scores, fp_scores = np.array(lesion_scores), np.array(fp_scores)
    thresholds = np.unique(np.concatenate([lesion_scores[np.isfinite(lesion_scores)], fp_scores]))[::-1]
    n = max(1, len(images))
    fp_per_image = np.array([0.0] + [(fp_scores >= t).sum() / n for t in thresholds])
    sensitivity = np.array([0.0] + [(lesion_scores >= t).sum() / max(1, lesions) for t in thresholds])
    at = {float(r): float(sensitivity[fp_per_image <= r].max()) for r in fp_rates}
    return {"sensitivity": at, "cpm": float(np.mean(list(at.values()))) if lesions else 0.0,
            "lesions": lesions, "images": len(images)}


def average_precision(images: list[ImageDetections], iou: float = 0.1) -> float:
    """Area under the precision-recall curve (all points, precision made non-increasing), greedy matching of
    detections by descending score to the unmatched lesion they overlap most; 0 without lesions."""
    records, lesions = [], 0
    for image in images:
        overlaps = _iou(image.boxes, image.truth)
        scores = np.asarray(image.scores, dtype=np.float64).reshape(-1)
        lesions += overlaps.shape[1]
        free = np.ones(overlaps.shape[1], dtype=bool)
        for d in np.argsort(-scores, kind="stable"):
            candidates = np.where(free & (overlaps[d] >= iou))[0]
            hit = len(candidates) > 0
            if hit:
                free[candidates[np.argmax(overlaps[d, candidates])]] = False
            records.append((scores[d], hit))
    if not lesions or not records:
        return 0.0
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([hit for _, hit in records])
    precision = tp / np.arange(1, len(records) + 1)
    recall = tp / lesions
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def detection_metrics(images: list[ImageDetections], iou: float = 0.1) -> dict:
    """FROC, CPM and mAP at ``iou`` in one dict (the gate's ``score`` is the CPM)."""
    result = froc(images, iou)
    return {**result, f"map_iou_{iou:g}": average_precision(images, iou)}

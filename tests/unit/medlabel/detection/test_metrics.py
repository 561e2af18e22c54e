"""FROC, CPM and average precision on hand-made cases."""

import numpy as np
import pytest

from medlabel.kinds.detection.metrics import FP_RATES, ImageDetections, average_precision, detection_metrics, froc

A = [0, 0, 0, 10, 10, 10]
B = [20, 20, 20, 30, 30, 30]
FAR = [50, 50, 50, 60, 60, 60]
NEAR_A = [1, 1, 1, 11, 11, 11]  # IoU with A = 729 / 1271 = 0.57


def img(boxes, scores, truth):
    return ImageDetections(np.array(boxes, float).reshape(-1, 6), np.array(scores, float), np.array(truth, float).reshape(-1, 6))


def test_perfect_detection_scores_one():
    result = detection_metrics([img([A, B], [0.9, 0.8], [A, B])])
    assert result["cpm"] == 1.0 and result["map_iou_0.1"] == 1.0 and result["lesions"] == 2


def test_nothing_detected_scores_zero():
    result = detection_metrics([img([], [], [A])])
    assert result["cpm"] == 0.0 and result["map_iou_0.1"] == 0.0


def test_sensitivity_at_each_fp_rate_over_two_volumes():
    # volume 1: a false positive scored above the hit on A; volume 2: B found at a low score, one more FP
    images = [img([FAR, NEAR_A], [0.9, 0.7], [A]), img([B, FAR], [0.3, 0.5], [B])]
    sens = froc(images)["sensitivity"]
    # thresholds: 0.9 -> 1 FP (0.5/vol), 0 hits; 0.7 -> 0.5/vol, 1 hit; 0.5 -> 1/vol, 1 hit; 0.3 -> 1/vol, 2 hits
    assert sens[0.125] == 0.0 and sens[0.25] == 0.0
    assert sens[0.5] == 0.5
    assert sens[1.0] == sens[8.0] == 1.0
    assert froc(images)["cpm"] == pytest.approx((0 + 0 + 0.5 + 1 + 1 + 1 + 1) / len(FP_RATES))


def test_duplicate_hits_are_not_false_positives_and_iou_threshold_applies():
    images = [img([A, NEAR_A], [0.9, 0.8], [A])]
    assert froc(images)["sensitivity"][0.125] == 1.0  # the duplicate is neither TP nor FP for FROC
    assert average_precision(images) == 1.0  # AP: the duplicate is an FP after recall is already 1
    barely = [img([[9, 9, 9, 19, 19, 19]], [0.9], [A])]  # IoU 1/1999
    assert froc(barely)["cpm"] == 0.0 and froc(barely, iou=0.0001)["cpm"] == 1.0


def test_average_precision_ranks_by_score():
    # an FP above the only TP: precision at recall 1 is 1/2
    assert average_precision([img([FAR, A], [0.9, 0.5], [A])]) == pytest.approx(0.5)
    # the TP above the FP: AP 1
    assert average_precision([img([FAR, A], [0.5, 0.9], [A])]) == pytest.approx(1.0)
    # half the lesions found, with no FP: AP 0.5
    assert average_precision([img([A], [0.9], [A, B])]) == pytest.approx(0.5)

"""Classification metrics on hand-made cases whose values are known."""

import numpy as np
import pytest

from medlabel.kinds.classification.metrics import accuracy, auroc_per_class, expected_calibration_error, summarise
from medlabel.kinds.classification.spec import ClassificationSpec


def test_auroc_perfect_reversed_and_chance():
    target = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    assert auroc_per_class(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]]), target) == [1.0, 1.0]
    assert auroc_per_class(np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.9, 0.1]]), target) == [0.0, 0.0]
    # one positive ranked above one of two negatives: 1/2
    assert auroc_per_class(np.array([[0.5], [0.9], [0.1]]), np.array([[1.0], [0.0], [0.0]])) == [0.5]


def test_auroc_undefined_without_both_outcomes():
    assert auroc_per_class(np.array([[0.2], [0.7]]), np.array([[1.0], [1.0]])) == [None]


def test_accuracy_single_and_multi_label():
    prob = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    target = np.array([[1, 0], [1, 0], [1, 0]], dtype=float)
    assert accuracy(prob, target, multi_label=False) == pytest.approx(2 / 3)
    # multi-label: 5 of 6 (image, class) decisions right at 0.5
    assert accuracy(prob, np.array([[1, 0], [0, 1], [1, 1]], dtype=float), multi_label=True) == pytest.approx(5 / 6)


def test_ece_zero_when_calibrated_and_gap_when_overconfident():
    # confidence 0.75 and 3 of 4 right: perfectly calibrated
    prob = np.array([[0.75, 0.25]] * 4)
    target = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=float)
    assert expected_calibration_error(prob, target, multi_label=False) == pytest.approx(0.0)
    # confidence 0.95, half right: gap 0.45
    prob = np.array([[0.95, 0.05]] * 4)
    target = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    assert expected_calibration_error(prob, target, multi_label=False) == pytest.approx(0.45)
    # multi-label: p = 0.9 per class, always right: gap 0.1
    assert expected_calibration_error(np.array([[0.9]] * 3), np.ones((3, 1)), multi_label=True) == pytest.approx(0.1)


def test_summary_score_is_mean_defined_auroc_else_accuracy():
    spec = ClassificationSpec(name="m", classes=("a", "b"), multi_label=True)
    prob = np.array([[0.9, 0.2], [0.1, 0.8]])
    both = summarise(prob, np.array([[1, 0], [0, 1]], dtype=float), spec)
    assert both["score"] == 1.0 and both["score_metric"] == "mean_auroc" and both["auroc"] == {"a": 1.0, "b": 1.0}
    none = summarise(prob, np.array([[1, 1], [1, 1]], dtype=float), spec)
    assert none["score_metric"] == "accuracy" and none["score"] == pytest.approx(0.5)

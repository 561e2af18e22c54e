"""Labelmap drawing, findings rows, TTA disagreement, the spec, and the network without torchvision."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from medlabel.kinds.detection.findings import findings
from medlabel.kinds.detection.infer import boxes_to_labelmap
from medlabel.kinds.detection.network import NormalisedFocalLoss, box_masks
from medlabel.kinds.detection.predictor import Detections
from medlabel.kinds.detection.spec import DetectionSpec
from medlabel.kinds.detection.strategy import tta_disagreement

A = np.array([[0.0, 0, 0, 10, 10, 10]])
B = np.array([[20.0, 20, 20, 30, 30, 30]])


def test_boxes_drawn_on_the_voxels_whose_centres_they_hold():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # voxel i spans 2i-1 .. 2i+1 mm
    label = boxes_to_labelmap(np.array([[3.0, 3.0, 3.0, 9.0, 7.0, 5.0]]), affine, (8, 8, 8))
    assert label.dtype == np.uint8
    assert set(zip(*np.nonzero(label))) == {(i, j, 2) for i in (2, 3, 4) for j in (2, 3)}


def test_findings_report_centre_size_volume_intensity_and_score():
    raw = torch.full((1, 10, 10, 10), -50.0)
    raw[0, 2:4, 2:4, 2:4] = 70.0  # a 2 mm cube of 70 HU at voxels 2..3
    (row,) = findings(np.array([[1.5, 1.5, 1.5, 3.5, 3.5, 3.5]]), np.array([0.8]), raw, np.eye(4))
    assert row["centre_ras_mm"] == [2.5, 2.5, 2.5] and row["size_mm"] == [2.0, 2.0, 2.0]
    assert row["volume_mm3"] == 8.0 and row["mean_intensity"] == 70.0 and row["score"] == 0.8


def _passes(*found):
    return [Detections(np.concatenate([b for b, _ in f]) if f else np.zeros((0, 6)),
                       np.array([s for _, s in f])) for f in found]


def test_tta_disagreement_is_zero_when_passes_agree_and_grows_with_contested_boxes():
    agree = _passes([(A, 0.9)], [(A + 0.5, 0.9)], [(A, 0.9)], [(A, 0.9)])
    assert tta_disagreement(agree) == pytest.approx(0.0)
    one_contested = _passes([(A, 0.9)], [], [(A, 0.9)], [])
    two_contested = _passes([(A, 0.9), (B, 0.8)], [], [(A, 0.9)], [(B, 0.8)])
    assert 0 < tta_disagreement(one_contested) < tta_disagreement(two_contested)


def test_spec_rejects_bad_values():
    DetectionSpec(name="lesions")
    with pytest.raises(ValidationError):
        DetectionSpec(name="lesions", roi_size=(30, 32, 32))
    with pytest.raises(ValidationError):
        DetectionSpec(name="lesions", labels={"lesion": 2})
    with pytest.raises(ValidationError):
        DetectionSpec(name="lesions", fpn_channels=24)  # RetinaNet heads use GroupNorm(16)


@pytest.mark.parametrize("levels, recipe", [(3, ""), (2, ""), (2, ", seg_weight=1.0, cls_loss='focal'")])
def test_network_trains_a_step_and_never_imports_torchvision(levels, recipe):
    code = (
        "import sys, torch\n"
        "from medlabel.kinds.detection.network import build_detector, build_network, detection_loss\n"
        "from medlabel.kinds.detection.spec import DetectionSpec\n"
        "torch.manual_seed(0)\n"
        f"spec = DetectionSpec(name='lesions', head_levels={levels}{recipe})\n"
        "detector = build_detector(spec, build_network(spec)); detector.train()\n"
        "assert len(detector.network.feature_extractor(torch.rand(1, 1, 32, 32, 32))) == spec.head_levels\n"
        "opt = torch.optim.Adam(detector.network.parameters(), 1e-3)\n"
        "image = torch.rand(1, 32, 32, 32); image[:, 10:16, 10:16, 10:16] += 2\n"
        "target = [{'box': torch.tensor([[10., 10, 10, 16, 16, 16]]), 'box_label': torch.tensor([0])}]\n"
        "losses = []\n"
        "for _ in range(4):\n"
        "    loss = detection_loss(spec, detector, [image], target); opt.zero_grad(); loss.backward(); opt.step()\n"
        "    losses.append(float(loss))\n"
        "assert losses[-1] < losses[0], losses\n"
        "assert not any(m.startswith('torchvision') for m in sys.modules), 'torchvision imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_segmentation_target_is_the_ellipsoid_inscribed_in_each_box():
    box = torch.tensor([[4.0, 4, 4, 12, 12, 12]])  # a sphere of radius 4 voxels centred at 8
    mask = box_masks([box, torch.zeros((0, 6))], (8, 8, 8), stride=2)[:, 0]
    assert mask[1].sum() == 0  # an image without lesions: empty mask
    assert mask[0, 3, 3, 3] == 1 and mask[0, 2, 3, 3] == 1 and mask[0, 2, 2, 2] == 0  # box corner is outside
    assert mask[0, :2].sum() == 0 and mask[0, 6:].sum() == 0  # nothing outside the box
    tiny = box_masks([torch.tensor([[5.0, 5, 5, 5.5, 5.5, 5.5]])], (8, 8, 8), stride=2)
    assert tiny.sum() >= 1  # a lesion smaller than a mask voxel still marks the voxel it sits in


def test_focal_loss_is_normalised_by_positive_anchors():
    loss = NormalisedFocalLoss()
    target = torch.zeros(1000, 1)
    target[:2] = 1
    logits = torch.full((1000, 1), -4.6)  # sigmoid 0.01, RetinaNet's prior
    few_negatives = loss(logits[:10], target[:10])
    many_negatives = loss(logits, target)
    assert many_negatives > few_negatives > 0  # easy negatives add little but not nothing
    assert float(loss(torch.full((4, 1), -20.0), torch.zeros(4, 1))) < 1e-6  # no positives: no division by 0

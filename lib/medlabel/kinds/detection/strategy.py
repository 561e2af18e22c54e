"""Detection uncertainty: how much the boxes and scores disagree under flip test-time augmentation.

The image is detected as is and flipped along each axis in turn; boxes from all passes are grouped
(IoU >= 0.1 with a group's best box), and each group's score in each pass is its best box's score there
(0 when that pass did not find it). A lesion found alike in every pass adds nothing; one found confidently
in some passes and not others adds the spread (standard deviation) of its scores. The image's score is the
sum over groups, so an image with several contested findings ranks above one with a single one. Caching
per model version and the strategy itself are the shared ones (``medlabel.activelearning.uncertainty``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from monai.data.box_utils import box_iou

from medlabel.activelearning.uncertainty import MostUncertain, UncertaintyScorer, UncertaintyScoring
from medlabel.kinds.detection.predictor import DetectionPredictor, Detections

FLIPS: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2))
GROUP_IOU = 0.1


def tta_disagreement(passes: list[Detections], iou: float = GROUP_IOU) -> float:
    """Sum over box groups of the standard deviation of their score across passes (see the module doc)."""
    entries = [(float(s), p, b) for p, d in enumerate(passes) for b, s in zip(d.boxes, d.scores)]
    entries.sort(key=lambda e: -e[0])
    groups: list[tuple[np.ndarray, np.ndarray]] = []  # (leading box, best score per pass)
    for score, p, box in entries:
        for lead, scores in groups:
            if float(box_iou(lead[None], box[None])[0, 0]) >= iou:
                scores[p] = max(scores[p], score)
                break
        else:
            scores = np.zeros(len(passes))
            scores[p] = score
            groups.append((box, scores))
    return float(sum(scores.std() for _, scores in groups))


class DetectionUncertaintyScorer(UncertaintyScorer):
    """Flip-TTA disagreement of one detector, cached per image and model version like the segmentation score."""

    def __init__(self, predictor: DetectionPredictor, samples: int, device: str):
        super().__init__(predictor, samples, device)  # type: ignore[arg-type]

    def score(self, image_path: str) -> float:
        image = self.predictor.preprocess(image_path)["image"]
        floor = min(0.05, self.predictor.spec.score_threshold)  # low-scoring boxes disagree too
        passes = [self.predictor.detect(image, self.device, floor, flip) for flip in FLIPS[: self.samples]]
        return tta_disagreement(passes)


def detection_active_learning(predictor: DetectionPredictor, settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """``uncertainty`` strategy and scoring method (strategies, scoring) for a detection model."""
    scorer = DetectionUncertaintyScorer(predictor, settings.uncertainty_samples, settings.device)
    return {"uncertainty": MostUncertain(scorer)}, {"uncertainty": UncertaintyScoring(scorer)}

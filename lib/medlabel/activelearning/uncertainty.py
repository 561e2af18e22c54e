"""Uncertainty-based active learning: score unlabeled images, then return the most uncertain one.

The score is the mean normalised predictive entropy of several stochastic predictions (MC dropout, or
flip test-time augmentation for networks without dropout). Scores are cached in the datastore's image
info with the model version that made them and recomputed when the model changes. Unlike MONAI Label's
epistemic strategy, the image returned is the top-scoring one, not one past the top k.
"""

from __future__ import annotations

import logging
import math
import time

import torch
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy

from medlabel.kinds.segmentation.predictor import Predictor
from medlabel.runtime import pick_device

logger = logging.getLogger(__name__)


def predictive_entropy(prob: torch.Tensor) -> float:
    """Mean over voxels of the entropy of (C, ...) class probabilities, divided by log C (so in [0, 1])."""
    p = prob.clamp_min(1e-8)
    entropy = -(p * p.log()).sum(0)
    return float(entropy.mean() / math.log(prob.shape[0]))


class UncertaintyScorer:
    """Computes and caches each image's uncertainty under one model's current weights."""

    def __init__(self, predictor: Predictor, samples: int, device: str):
        self.predictor = predictor
        self.samples = samples
        self.device = pick_device(device)
        self.key = f"uncertainty_{predictor.spec.name}"

    def score(self, image_path: str) -> float:
        image = self.predictor.preprocess(image_path)
        return predictive_entropy(self.predictor.sampled_probabilities(image, self.device, self.samples))

    def scores(self, datastore: Datastore, image_ids: list[str]) -> dict[str, float]:
        """Score of each id, computing only those missing or made by an older model version."""
        self.predictor.network(self.device)  # loads the newest weights and sets the version
        version = self.predictor.version
        result = {}
        for image_id in image_ids:
            cached = datastore.get_image_info(image_id).get(self.key)
            if cached and cached.get("version") == version:
                result[image_id] = float(cached["score"])
                continue
            value = self.score(datastore.get_image_uri(image_id))
            datastore.update_image_info(image_id, {self.key: {"score": value, "version": version, "ts": int(time.time())}})
            result[image_id] = value
        return result


class MostUncertain(Strategy):
    """Next sample: the unlabeled image with the highest predictive entropy."""

    def __init__(self, scorer: UncertaintyScorer):
        super().__init__(f"Most uncertain unlabeled image under '{scorer.predictor.spec.name}' (predictive entropy)")
        self.scorer = scorer

    def __call__(self, request, datastore: Datastore):
        unlabeled = datastore.get_unlabeled_images()
        if not unlabeled:
            return {}
        scores = self.scorer.scores(datastore, sorted(unlabeled))
        best = max(scores, key=lambda i: (scores[i], i))
        logger.info(f"uncertainty: picked {best} ({scores[best]:.4f}) of {len(scores)} unlabeled")
        return {"id": best, "uncertainty": scores[best]}


class UncertaintyScoring(ScoringMethod):
    """Scores every unlabeled image ahead of time so the strategy answers at once."""

    def __init__(self, scorer: UncertaintyScorer):
        super().__init__(f"Predictive entropy of unlabeled images under '{scorer.predictor.spec.name}'")
        self.scorer = scorer

    def __call__(self, request, datastore: Datastore):
        scores = self.scorer.scores(datastore, sorted(datastore.get_unlabeled_images()))
        return {"scored": len(scores), "scores": scores}

"""Active learning for classifiers: entropy, margin and BALD uncertainty, and core-set diversity.

Each strategy is named (``/activelearning/entropy``, ``margin``, ``bald``, ``coreset``). One pass per
image computes all three uncertainty scores and the embedding; scores are cached in the image's
datastore info with the model version that made them, embeddings in memory, and both are recomputed
when the serving model changes. The image returned is the top-scoring unlabeled one.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy

from medlabel.kinds.classification.predictor import ClassificationPredictor
from medlabel.runtime import pick_device

logger = logging.getLogger(__name__)
UNCERTAINTIES = ("entropy", "margin", "bald")


def _entropy(p: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Entropy over the last axis normalised to [0, 1]; multi-label: mean binary entropy over classes."""
    p = p.clamp(1e-7, 1 - 1e-7)
    if multi_label:
        return (-(p * p.log() + (1 - p) * (1 - p).log()) / math.log(2)).mean(-1)
    return -(p * p.log()).sum(-1) / math.log(p.shape[-1])


def entropy_score(prob: torch.Tensor, multi_label: bool) -> float:
    """Normalised predictive entropy of (C,) probabilities: 0 certain, 1 uniform."""
    return float(_entropy(prob, multi_label))


def margin_score(prob: torch.Tensor, multi_label: bool) -> float:
    """1 - (top - second probability); multi-label: 1 - mean |2p - 1| (how close the classes are to 0.5)."""
    if multi_label:
        return float(1 - (2 * prob - 1).abs().mean())
    top2 = prob.topk(2).values
    return float(1 - (top2[0] - top2[1]))


def bald_score(samples: torch.Tensor, multi_label: bool) -> float:
    """Mutual information between prediction and weights from (T, C) MC-dropout samples:
    entropy of the mean minus mean entropy (high where the samples disagree, not where all are unsure)."""
    return float((_entropy(samples.mean(0), multi_label) - _entropy(samples, multi_label).mean()).clamp_min(0))


def farthest_first(candidates: np.ndarray, labelled: np.ndarray) -> tuple[int, float]:
    """Core-set step (greedy k-centre): the candidate farthest from its nearest labelled embedding.

    Without labelled images, the candidate farthest from the candidates' mean. Returns (index, distance).
    """
    centres = labelled if len(labelled) else candidates.mean(0, keepdims=True)
    distance = np.sqrt(((candidates[:, None, :] - centres[None, :, :]) ** 2).sum(-1)).min(1)
    best = int(distance.argmax())
    return best, float(distance[best])


class ClassificationScorer:
    """Computes and caches each image's uncertainty scores and embedding under the serving weights."""

    def __init__(self, predictor: ClassificationPredictor, samples: int, device: str):
        self.predictor = predictor
        self.samples = max(2, samples)
        self.device = pick_device(device)
        self.key = f"uncertainty_{predictor.spec.name}"
        self._embeddings: dict[tuple[str, int], np.ndarray] = {}

    def _compute(self, datastore: Datastore, image_id: str, version: int) -> dict:
        image = self.predictor.preprocess(datastore.get_image_uri(image_id))
        multi = self.predictor.spec.multi_label
        embedding, prob = self.predictor.embedding_and_probabilities(image, self.device)
        samples = self.predictor.sampled_probabilities(image, self.device, self.samples)
        self._embeddings[(image_id, version)] = embedding.numpy()
        return {"entropy": entropy_score(prob, multi), "margin": margin_score(prob, multi),
                "bald": bald_score(samples, multi), "version": version, "ts": int(time.time())}

    def scores(self, datastore: Datastore, image_ids: list[str]) -> dict[str, dict]:
        """Scores of each id, computing only those missing or made by an older model version."""
        self.predictor.network(self.device)  # loads the newest weights and sets the version
        version = self.predictor.version
        result = {}
        for image_id in image_ids:
            cached = datastore.get_image_info(image_id).get(self.key)
            if not (cached and cached.get("version") == version and all(k in cached for k in UNCERTAINTIES)):
                cached = self._compute(datastore, image_id, version)
                datastore.update_image_info(image_id, {self.key: cached})
            result[image_id] = cached
        return result

    def embeddings(self, datastore: Datastore, image_ids: list[str]) -> np.ndarray:
        """(N, F) embeddings of the ids under the serving weights."""
        self.predictor.network(self.device)
        version = self.predictor.version
        self._embeddings = {k: v for k, v in self._embeddings.items() if k[1] == version}
        rows = []
        for image_id in image_ids:
            if (image_id, version) not in self._embeddings:
                image = self.predictor.preprocess(datastore.get_image_uri(image_id))
                self._embeddings[(image_id, version)] = self.predictor.embedding(image, self.device).numpy()
            rows.append(self._embeddings[(image_id, version)])
        return np.stack(rows) if rows else np.zeros((0, 1), np.float32)


class MostUncertain(Strategy):
    """Next sample: the unlabeled image with the highest score of one uncertainty measure."""

    def __init__(self, scorer: ClassificationScorer, measure: str):
        super().__init__(f"Unlabeled image with the highest {measure} under '{scorer.predictor.spec.name}'")
        self.scorer, self.measure = scorer, measure

    def __call__(self, request, datastore: Datastore):
        unlabeled = sorted(datastore.get_unlabeled_images())
        if not unlabeled:
            return {}
        scores = {i: s[self.measure] for i, s in self.scorer.scores(datastore, unlabeled).items()}
        best = max(scores, key=lambda i: (scores[i], i))
        logger.info(f"{self.measure}: picked {best} ({scores[best]:.4f}) of {len(scores)} unlabeled")
        return {"id": best, self.measure: scores[best]}


class CoreSet(Strategy):
    """Next sample: the unlabeled image farthest, in the network's embedding space, from every labelled one."""

    def __init__(self, scorer: ClassificationScorer):
        super().__init__(f"Core-set (diversity) on the embeddings of '{scorer.predictor.spec.name}'")
        self.scorer = scorer

    def __call__(self, request, datastore: Datastore):
        unlabeled = sorted(datastore.get_unlabeled_images())
        if not unlabeled:
            return {}
        labelled = sorted(datastore.get_labeled_images())
        index, distance = farthest_first(self.scorer.embeddings(datastore, unlabeled),
                                         self.scorer.embeddings(datastore, labelled))
        logger.info(f"coreset: picked {unlabeled[index]} at distance {distance:.4f} from {len(labelled)} labelled")
        return {"id": unlabeled[index], "distance": distance}


class UncertaintyScoring(ScoringMethod):
    """Scores every unlabeled image ahead of time so the uncertainty strategies answer at once."""

    def __init__(self, scorer: ClassificationScorer):
        super().__init__(f"Entropy, margin and BALD of unlabeled images under '{scorer.predictor.spec.name}'")
        self.scorer = scorer

    def __call__(self, request, datastore: Datastore):
        scores = self.scorer.scores(datastore, sorted(datastore.get_unlabeled_images()))
        return {"scored": len(scores), "scores": scores}

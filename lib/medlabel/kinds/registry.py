"""The hand-written registry of task kinds: how each kind builds its tasks from a spec.

Adding a kind means: a spec class (subclass of ``medlabel.spec.BaseSpec``), a predictor, infer tasks, a
trainer (subclass of ``medlabel.continual.training.ContinualTrainTask``), optionally active-learning
strategies and a label check, and one entry here. The app, model store, retraining trigger, versions,
rollback and request guard then work for it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from medlabel.activelearning.uncertainty import MostUncertain, UncertaintyScorer, UncertaintyScoring
from medlabel.continual.store import ModelStore
from medlabel.datastore.local import check_label_file
from medlabel.kinds.clicks.infer import ClickInfer
from medlabel.kinds.clicks.predictor import ClickPredictor
from medlabel.kinds.clicks.train import ClickTrain
from medlabel.kinds.classification import strategy as classification_al
from medlabel.kinds.classification.infer import ClassificationInfer
from medlabel.kinds.classification.labels import label_check as classification_label_check
from medlabel.kinds.classification.predictor import ClassificationPredictor
from medlabel.kinds.classification.train import ClassificationTrain
from medlabel.kinds.detection.infer import detection_infers
from medlabel.kinds.detection.labels import check_box_label
from medlabel.kinds.detection.predictor import DetectionPredictor
from medlabel.kinds.detection.strategy import detection_active_learning
from medlabel.kinds.detection.train import DetectionTrain
from medlabel.kinds.generation import kind as generation
from medlabel.kinds.scribbles.infer import ScribblesInfer, ScribblesRefiner
from medlabel.kinds.segmentation.infer import SegmentationInfer
from medlabel.kinds.segmentation.predictor import Predictor
from medlabel.kinds.segmentation.train import SegmentationTrain
from medlabel.spec import AppSettings

LabelCheck = Callable[[str, str, str], None]
"""``check(label_path, image_path, image_id)`` raises ``BadRequest`` naming what to fix."""


@dataclass(frozen=True)
class ActiveLearning:
    """Named strategies (``/activelearning/<name>``) and scoring methods (``/scoring/<name>``) of one model."""

    strategies: dict[str, Any]
    scoring: dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """One kind's builders; a new model of an existing kind is a spec, not code."""

    predictor: Callable[[ModelStore], Any]
    infers: Callable[[Any, AppSettings], dict[str, Any]]  # infer tasks by model name
    train: Callable[[ModelStore, AppSettings], Any] | None
    active_learning: Callable[[Any, AppSettings], ActiveLearning] = lambda predictor, settings: ActiveLearning({}, {})
    check_label: LabelCheck | None = None  # None: the kind takes no labels
    check_label_for: Callable[[list[Any]], LabelCheck] | None = None  # a check built from the app's specs of this kind


def _segmentation_active_learning(predictor: Predictor, settings: AppSettings) -> ActiveLearning:
    scorer = UncertaintyScorer(predictor, settings.uncertainty_samples, settings.device)
    return ActiveLearning({"uncertainty": MostUncertain(scorer)}, {"uncertainty": UncertaintyScoring(scorer)})


def _classification_active_learning(predictor: ClassificationPredictor, settings: AppSettings) -> ActiveLearning:
    scorer = classification_al.ClassificationScorer(predictor, settings.uncertainty_samples, settings.device)
    strategies = {m: classification_al.MostUncertain(scorer, m) for m in classification_al.UNCERTAINTIES}
    strategies["coreset"] = classification_al.CoreSet(scorer)
    return ActiveLearning(strategies, {"classification_uncertainty": classification_al.UncertaintyScoring(scorer)})


KINDS: dict[str, Kind] = {
    "segmentation": Kind(
        predictor=Predictor,
        infers=lambda predictor, settings: {predictor.spec.name: SegmentationInfer(predictor, settings.device)},
        train=SegmentationTrain,
        active_learning=_segmentation_active_learning,
        check_label=check_label_file,
    ),
    "classification": Kind(
        predictor=ClassificationPredictor,
        infers=lambda predictor, settings: {predictor.spec.name: ClassificationInfer(predictor, settings.device)},
        train=ClassificationTrain,
        active_learning=_classification_active_learning,
        check_label_for=classification_label_check,
    ),
    "generation": Kind(
        predictor=generation.predictor,
        infers=generation.infers,
        train=generation.trainer,
        check_label=generation.check_label,
    ),
    "detection": Kind(
        predictor=DetectionPredictor,
        infers=detection_infers,
        train=DetectionTrain,
        active_learning=lambda predictor, settings: ActiveLearning(*detection_active_learning(predictor, settings)),
        check_label=check_box_label,
    ),
    "scribbles": Kind(
        predictor=ScribblesRefiner,
        infers=lambda refiner, settings: {refiner.spec.name: ScribblesInfer(refiner, settings.device)},
        train=None,  # no weights of its own: it refines the prior model's prediction
    ),
    "clicks": Kind(
        predictor=ClickPredictor,
        infers=lambda predictor, settings: {predictor.spec.name: ClickInfer(predictor, settings.device)},
        train=ClickTrain,
        check_label=check_label_file,
    ),
}

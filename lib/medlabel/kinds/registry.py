"""The hand-written registry of task kinds: how each kind builds its infer and train tasks from a spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from medlabel.continual.store import ModelStore
from medlabel.kinds.segmentation.infer import SegmentationInfer
from medlabel.kinds.segmentation.predictor import Predictor
from medlabel.kinds.segmentation.train import SegmentationTrain
from medlabel.spec import AppSettings


@dataclass(frozen=True)
class Kind:
    """One kind's builders; a new model of an existing kind is a spec, not code."""

    predictor: Callable[[ModelStore], Any]
    infer: Callable[[Any, AppSettings], Any]
    train: Callable[[ModelStore, AppSettings], Any]


KINDS: dict[str, Kind] = {
    "segmentation": Kind(
        predictor=Predictor,
        infer=lambda predictor, settings: SegmentationInfer(predictor, settings.device),
        train=SegmentationTrain,
    ),
}

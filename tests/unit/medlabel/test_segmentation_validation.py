"""The validation Dice that picks the best checkpoint must see an all-background label as a real case."""

import torch
from ignite.engine import Engine
from monai.handlers import from_engine

from medlabel.kinds.segmentation.train import _dice


def _validation_dice(pred: torch.Tensor, label: torch.Tensor) -> float:
    engine = Engine(lambda e, batch: {"pred": [pred], "label": [label]})
    _dice(from_engine(["pred", "label"])).attach(engine, "val_mean_dice")
    engine.run([0], max_epochs=1)
    return float(engine.state.metrics["val_mean_dice"])


def _one_hot(mask: torch.Tensor) -> torch.Tensor:
    return torch.stack([1 - mask, mask]).float()


def test_empty_label_found_empty_scores_one_and_a_false_positive_scores_zero():
    empty = torch.zeros(8, 8, 8)
    blob = empty.clone()
    blob[2:5, 2:5, 2:5] = 1
    assert _validation_dice(_one_hot(empty), _one_hot(empty)) == 1.0
    assert _validation_dice(_one_hot(blob), _one_hot(empty)) == 0.0
    assert _validation_dice(_one_hot(blob), _one_hot(blob)) == 1.0

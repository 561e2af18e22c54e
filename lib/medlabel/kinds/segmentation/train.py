"""Segmentation training: Dice + cross-entropy fine-tuning with validation Dice per label.

The continual-learning behaviour (fine-tuning from serving weights, fixed split, gate, versions) is the
shared ``ContinualTrainTask``; this module adds only what is specific to segmentation.
"""

from __future__ import annotations

import torch
from monai.handlers import IgniteMetricHandler, from_engine
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.transforms import Activationsd, AsDiscreted, EnsureTyped
from monailabel.tasks.train.basic_train import Context

from medlabel.continual.store import ModelStore
from medlabel.continual.training import ContinualTrainTask, split_by_id
from medlabel.kinds.segmentation.metrics import evaluate
from medlabel.kinds.segmentation.network import build_network
from medlabel.kinds.segmentation.transforms import train_transforms, val_transforms
from medlabel.spec import AppSettings

__all__ = ["SegmentationTrain", "split_by_id"]


def _label_channel(index: int):
    """Output transform selecting background and one label channel, so MeanDice gives that label's Dice."""

    def select(output):
        preds, labels = from_engine(["pred", "label"])(output)
        return [p[[0, index]] for p in preds], [t[[0, index]] for t in labels]

    return select


def _dice(output_transform) -> IgniteMetricHandler:
    """Validation Dice that scores a structure absent from both label and prediction as 1, as the gate does.

    With MONAI's default (``ignore_empty=True``) an annotator's all-background label makes validation
    Dice 0 in every epoch, so the best checkpoint would stay the first epoch's whatever training learns.
    """
    dice = DiceMetric(include_background=False, ignore_empty=False)
    return IgniteMetricHandler(dice, output_transform=output_transform)


class SegmentationTrain(ContinualTrainTask):
    """Dice + cross-entropy fine-tuning of one segmentation spec."""

    def __init__(self, store: ModelStore, settings: AppSettings):
        super().__init__(store, settings, f"Fine-tune '{store.spec.name}' on the datastore's final labels")

    def network(self, context: Context):
        return build_network(self.spec)

    def loss_function(self, context: Context):
        return DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True)

    def train_pre_transforms(self, context: Context):
        return train_transforms(self.spec)

    def val_pre_transforms(self, context: Context):
        return val_transforms(self.spec)

    def train_post_transforms(self, context: Context):
        n = self.spec.num_classes
        return [
            EnsureTyped(keys="pred", dtype=torch.float32),
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys=("pred", "label"), argmax=(True, False), to_onehot=(n, n)),
        ]

    def val_inferer(self, context: Context):
        return SlidingWindowInferer(roi_size=self.spec.roi_size, sw_batch_size=2, overlap=0.25, mode="gaussian")

    def val_key_metric(self, context: Context):
        return {self.VAL_METRIC_MEAN_DICE: _dice(from_engine(["pred", "label"]))}

    def val_additional_metrics(self, context: Context):
        return {f"val_dice_{name}": _dice(_label_channel(idx)) for name, idx in self.spec.labels.items()}

    def evaluate_weights(self, weights, datalist, device):
        """Mean Dice over labels on whole validation volumes is the gate's score."""
        result = evaluate(self.spec, weights, datalist, device)
        return {"score": result["mean_dice"], **result}

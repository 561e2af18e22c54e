"""Click-model training: DeepGrow's simulated clicks inside the shared continual trainer."""

from __future__ import annotations

import torch
from monai.apps.deepgrow.interaction import Interaction
from monai.inferers import SimpleInferer
from monai.losses import DiceCELoss
from monai.transforms import Activationsd, AsDiscreted, EnsureTyped
from monailabel.tasks.train.basic_train import Context

from medlabel.continual.store import ModelStore
from medlabel.continual.training import ContinualTrainTask
from medlabel.kinds.clicks.metrics import evaluate
from medlabel.kinds.clicks.network import build_network
from medlabel.kinds.clicks.transforms import interaction_transforms, train_transforms, val_transforms
from medlabel.spec import AppSettings


class ClickTrain(ContinualTrainTask):
    """Fine-tunes a click model on the final labels' structure, with up to ``max_interactions`` simulated
    correction clicks per batch (each round predicts, then clicks where the prediction is wrong)."""

    def __init__(self, store: ModelStore, settings: AppSettings):
        super().__init__(store, settings, f"Fine-tune click model '{store.spec.name}' with simulated clicks")

    def network(self, context: Context):
        return build_network(self.spec)

    def loss_function(self, context: Context):
        return DiceCELoss(to_onehot_y=True, softmax=True)

    def train_pre_transforms(self, context: Context):
        return train_transforms(self.spec)

    def val_pre_transforms(self, context: Context):
        return val_transforms(self.spec)

    def train_post_transforms(self, context: Context):
        return [
            EnsureTyped(keys="pred", dtype=torch.float32),
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys=("pred", "label"), argmax=(True, False), to_onehot=(2, 2)),
        ]

    def val_inferer(self, context: Context):
        return SimpleInferer()

    def train_iteration_update(self, context: Context):
        return Interaction(interaction_transforms(self.spec), max_interactions=self.spec.max_interactions, train=True)

    def evaluate_weights(self, weights, datalist, device):
        """Mean Dice over a simulated annotator's first ``eval_clicks`` clicks is the gate's score."""
        result = evaluate(self.spec, weights, datalist, device)
        return {"score": result["mean_dice"], **result}

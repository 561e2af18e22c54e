"""Classification training: cross-entropy (single-label) or per-class BCE (multi-label) fine-tuning.

The continual-learning behaviour (fine-tuning from serving weights, fixed split, gate, versions) is the
shared ``ContinualTrainTask``; this module adds the classifier, its loss and metrics, and the two
learning rates of transfer learning.
"""

from __future__ import annotations

import torch
from ignite.metrics import Accuracy, EpochMetric
from monai.handlers import from_engine
from monai.inferers import SimpleInferer
from monai.transforms import Activationsd, EnsureTyped
from monailabel.tasks.train.basic_train import Context

from medlabel.continual.store import ModelStore
from medlabel.continual.training import ContinualTrainTask
from medlabel.kinds.classification.metrics import evaluate, summarise
from medlabel.kinds.classification.network import build_network, parameter_groups
from medlabel.kinds.classification.spec import ClassificationSpec
from medlabel.kinds.classification.transforms import train_transforms, val_transforms
from medlabel.spec import AppSettings


class ClassificationTrain(ContinualTrainTask):
    """Fine-tunes one classification spec on the datastore's final JSON labels."""

    def __init__(self, store: ModelStore, settings: AppSettings):
        super().__init__(store, settings, f"Fine-tune '{store.spec.name}' on the datastore's final class labels")
        self.spec: ClassificationSpec = store.spec

    def network(self, context: Context):
        return build_network(self.spec, pretrained=False)  # starts from the serving weights (version 0 holds the checkpoint)

    def optimizer(self, context: Context):
        lr = float(context.request.get("learning_rate", self.spec.train.learning_rate))
        return torch.optim.AdamW(parameter_groups(context.network, self.spec, lr), weight_decay=1e-4)

    def loss_function(self, context: Context):
        # labels arrive as (C,) vectors in both modes; cross-entropy takes one-hot targets as probabilities
        return torch.nn.BCEWithLogitsLoss() if self.spec.multi_label else torch.nn.CrossEntropyLoss()

    def train_pre_transforms(self, context: Context):
        return train_transforms(self.spec)

    def val_pre_transforms(self, context: Context):
        return val_transforms(self.spec)

    def train_post_transforms(self, context: Context):
        return [
            EnsureTyped(keys="pred", dtype=torch.float32),
            Activationsd(keys="pred", sigmoid=self.spec.multi_label, softmax=not self.spec.multi_label),
        ]

    def _accuracy(self) -> Accuracy:
        multi = self.spec.multi_label

        def batched(output):
            p, t = _stacked(output)
            return ((p >= 0.5).long(), t.long()) if multi else (p, t.argmax(1))

        return Accuracy(output_transform=batched, is_multilabel=multi)

    def train_key_metric(self, context: Context):
        return {"train_accuracy": self._accuracy()}

    def val_key_metric(self, context: Context):
        """The gate's own score (mean AUROC, else accuracy), so the kept epoch is the one the gate would pick.

        Accuracy on a few validation images ties often, and a tie keeps the earliest epoch.
        """
        spec = self.spec

        def score(prob: torch.Tensor, target: torch.Tensor) -> float:
            n = len(prob)  # ignite flattens (N, 1) to (N,)
            return summarise(prob.reshape(n, -1).numpy(), target.reshape(n, -1).numpy(), spec)["score"]

        return {"val_score": EpochMetric(score, output_transform=_stacked, check_compute_fn=False)}

    def val_inferer(self, context: Context):
        return SimpleInferer()

    def evaluate_weights(self, weights, datalist, device):
        """Mean AUROC over classes (accuracy where no class has both outcomes) is the gate's score."""
        return evaluate(self.spec, weights, datalist, device)


def _stacked(output) -> tuple[torch.Tensor, torch.Tensor]:
    """An engine's decollated batch -> (B, C) probabilities and (B, C) targets."""
    preds, labels = from_engine(["pred", "label"])(output)
    return (torch.stack([torch.as_tensor(x) for x in preds]).float(),
            torch.stack([torch.as_tensor(x) for x in labels]).float())

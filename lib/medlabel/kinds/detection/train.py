"""Detection training: RetinaNet fine-tuning from boxes, validated by CPM on whole volumes.

The continual-learning behaviour (fine-tuning from serving weights, fixed split, gate, versions) is the
shared ``ContinualTrainTask``; this module adds the detector's own training step (MONAI's detector computes
its classification and box-regression losses from image lists and box targets, so it replaces the
engine's default network-then-loss step), box-aware data loading and a CPM validation metric.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from ignite.metrics import Average, Metric
from monai.data import DataLoader, Dataset
from monai.data.utils import no_collation
from monai.inferers import SimpleInferer
from monailabel.tasks.train.basic_train import Context
from torch.utils.data import RandomSampler

from medlabel.continual.store import ModelStore
from medlabel.continual.training import ContinualTrainTask
from medlabel.kinds.detection.metrics import ImageDetections, detection_metrics
from medlabel.kinds.detection.network import build_detector, build_network, detection_loss
from medlabel.kinds.detection.predictor import detect_voxel_boxes
from medlabel.kinds.detection.transforms import train_transforms, val_transforms
from medlabel.spec import AppSettings

EVAL_SCORE_THRESHOLD = 0.0  # evaluation ranks every box the detector keeps, as FROC needs
WARMUP_FRACTION = 0.25  # no best checkpoint from the first quarter of the epochs (see CpmMetric)


def _samples(batch) -> list[dict]:
    """A no-collation batch (a list of items, each a dict or a list of crops) as a flat list of dicts."""
    return [s for item in batch for s in (item if isinstance(item, list) else [item])]


class CpmMetric(Metric):
    """CPM over the validation images of one evaluation run (the key metric for the best checkpoint).

    0 while ``warming_up()``: a detector trained from scratch gives near-tied scores for its first epochs,
    and their CPM on a few validation lesions is luck (measured on the demo: an epoch-2 checkpoint with
    validation CPM 0.29 and 0.00 on the held-out octants), which then wins the best checkpoint.
    """

    def __init__(self, output_transform: Callable, warming_up: Callable[[], bool] = lambda: False):
        self._warming_up = warming_up
        super().__init__(output_transform=output_transform)

    def reset(self):
        self._images: list[ImageDetections] = []

    def update(self, output):
        boxes, scores, truth = output
        self._images.append(ImageDetections(boxes, scores, truth))

    def compute(self):
        return 0.0 if self._warming_up() else detection_metrics(self._images)["cpm"]


@torch.no_grad()
def evaluate(spec, weights: dict[str, torch.Tensor], datalist: list[dict], device: torch.device) -> dict:
    """FROC sensitivities, CPM and mAP at IoU 0.1 of ``weights`` over ``datalist`` (image/label paths)."""
    network = build_network(spec)
    network.load_state_dict(weights)
    detector = build_detector(spec, network.to(device), score_threshold=EVAL_SCORE_THRESHOLD)
    images = []
    for item in DataLoader(Dataset(datalist, val_transforms(spec)), batch_size=1, num_workers=0,
                           collate_fn=no_collation):
        boxes, scores = detect_voxel_boxes(detector, item[0]["image"], device)
        images.append(ImageDetections(boxes.numpy(), scores.numpy(), item[0]["box"].numpy()))
    return detection_metrics(images)


class DetectionTrain(ContinualTrainTask):
    """Fine-tunes one detection spec on the datastore's final labels (boxes or masks)."""

    def __init__(self, store: ModelStore, settings: AppSettings):
        super().__init__(store, settings, f"Fine-tune '{store.spec.name}' on the datastore's final box labels")

    def network(self, context: Context):
        return build_network(self.spec)

    def loss_function(self, context: Context):
        return None  # the detector computes its losses in the training step

    def train_pre_transforms(self, context: Context):
        return train_transforms(self.spec)

    def val_pre_transforms(self, context: Context):
        return val_transforms(self.spec)

    def train_post_transforms(self, context: Context):
        return []

    def val_post_transforms(self, context: Context):
        return []

    def train_inferer(self, context: Context):
        return SimpleInferer()

    def val_inferer(self, context: Context):
        return SimpleInferer()

    def train_key_metric(self, context: Context):
        return {"train_neg_loss": Average(output_transform=lambda out: -out["loss"])}

    def val_key_metric(self, context: Context):
        def warming_up() -> bool:
            return context.trainer.state.epoch <= int(WARMUP_FRACTION * context.max_epochs)

        return {"val_cpm": CpmMetric(lambda out: (out["boxes"], out["scores"], out["truth"]), warming_up)}

    def train_data_loader(self, context: Context, num_workers=0, shuffle=True):
        """As the shared loader (a fixed number of batches per epoch), without collation: crops carry
        different numbers of boxes."""
        dataset, _ = self._dataset(context, context.train_datalist, is_train=True)
        batches = int(context.request.get("iterations_per_epoch", self.spec.train.iterations_per_epoch))
        sampler = RandomSampler(dataset, replacement=True, num_samples=batches * context.train_batch_size)
        return DataLoader(dataset, batch_size=context.train_batch_size, sampler=sampler, num_workers=num_workers,
                          collate_fn=no_collation)

    def val_data_loader(self, context: Context, num_workers=0):
        dataset, _ = self._dataset(context, context.val_datalist, is_train=False)
        return DataLoader(dataset, batch_size=1, num_workers=num_workers, collate_fn=no_collation)

    def train_iteration_update(self, context: Context):
        detector = build_detector(self.spec, context.network)
        device = context.device

        def step(engine, batch):
            samples = _samples(batch)
            images = [s["image"].as_tensor().to(device) for s in samples]
            targets = [{"box": s["box"].to(device), "box_label": s["box_label"].to(device)} for s in samples]
            detector.train()
            engine.optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", enabled=bool(engine.amp) and device.type == "cuda"):
                loss = detection_loss(self.spec, detector, images, targets)
            if engine.amp and engine.scaler is not None:
                engine.scaler.scale(loss).backward()
                engine.scaler.step(engine.optimizer)
                engine.scaler.update()
            else:
                loss.backward()
                engine.optimizer.step()
            return {"loss": float(loss.detach())}

        return step

    def val_iteration_update(self, context: Context):
        detector = build_detector(self.spec, context.network, score_threshold=EVAL_SCORE_THRESHOLD)
        device = context.device

        def step(engine, batch):
            item = _samples(batch)[0]
            boxes, scores = detect_voxel_boxes(detector, item["image"].as_tensor(), device)
            return {"boxes": boxes.numpy(), "scores": scores.numpy(), "truth": np.asarray(item["box"])}

        return step

    def evaluate_weights(self, weights, datalist, device):
        """CPM (mean FROC sensitivity at 1/8..8 FP per volume) on whole validation volumes is the gate's score."""
        result = evaluate(self.spec, weights, datalist, device)
        return {"score": result["cpm"], **result}

"""Restoration training: self-supervised from the datastore's own images, or from paired targets.

No labels are needed: every original image (not one this kind generated) is degraded on the fly and the
network learns to restore it. A clean target submitted with label tag ``target`` makes that image a
real (noisy, clean) pair for a denoising model. The continual-learning behaviour (fine-tuning, fixed
split, gate, versions) is the shared ``ContinualTrainTask``; the gate's score is validation PSNR.
"""

from __future__ import annotations

import logging

import SimpleITK as sitk
import torch
from monai.handlers import PeakSignalToNoiseRatio, from_engine
from monai.inferers import SlidingWindowInferer
from monailabel.tasks.train.basic_train import Context

from medlabel.continual.store import ModelStore
from medlabel.continual.training import ContinualTrainTask
from medlabel.kinds.generation.metrics import evaluate_restoration
from medlabel.kinds.generation.network import build_restoration_network
from medlabel.kinds.generation.spec import Denoise, RestorationSpec
from medlabel.kinds.generation.transforms import train_transforms, val_transforms
from medlabel.spec import AppSettings

logger = logging.getLogger(__name__)

TARGET_TAG = "target"
GENERATED_KEY = "generated"  # image info key marking an image this kind made


def slice_spacing_mm(path: str) -> float:
    """Spacing along the K (slice) axis from the file's header."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return float(reader.GetSpacing()[2]) if reader.GetDimension() >= 3 else 0.0


def restoration_datalist(spec: RestorationSpec, datastore) -> list[dict]:
    """The images a restoration model learns from: originals only (never its own outputs); for
    super-resolution only thin-slice ones; with the ``target`` label as a paired target where present."""
    items = []
    for image_id in sorted(datastore.list_images()):
        if (datastore.get_image_info(image_id) or {}).get(GENERATED_KEY):
            continue
        uri = datastore.get_image_uri(image_id)
        if not isinstance(spec.degradation, Denoise) and slice_spacing_mm(uri) > spec.max_train_slice_mm:
            continue
        item = {"image": uri}
        target = datastore.get_labels_by_image_id(image_id).get(TARGET_TAG)
        if target and isinstance(spec.degradation, Denoise):
            item["label"] = datastore.get_label_uri(target, TARGET_TAG)
        items.append(item)
    return items


class RestorationTrain(ContinualTrainTask):
    """L1 training of a residual restoration network on degraded crops."""

    VAL_KEY = "val_psnr"
    needs_labels = False  # every original image is a training example

    def __init__(self, store: ModelStore, settings: AppSettings):
        spec: RestorationSpec = store.spec
        what = "denoising" if isinstance(spec.degradation, Denoise) else "slice super-resolution"
        super().__init__(store, settings, f"Self-supervised {what} of '{spec.name}' on the datastore's images")

    def pre_process(self, request, datastore):
        items = restoration_datalist(self.spec, datastore)
        logger.info(f"'{self.spec.name}' learns from {len(items)} images "
                    f"({sum('label' in i for i in items)} with paired targets)")
        return items

    def network(self, context: Context):
        return build_restoration_network(self.spec)

    def loss_function(self, context: Context):
        return torch.nn.L1Loss()

    def train_pre_transforms(self, context: Context):
        return train_transforms(self.spec)

    def val_pre_transforms(self, context: Context):
        return val_transforms(self.spec)

    def train_post_transforms(self, context: Context):
        return None  # the network's output is the restored image

    def val_inferer(self, context: Context):
        return SlidingWindowInferer(roi_size=self.spec.roi_size, sw_batch_size=2, overlap=0.25, mode="gaussian")

    def train_key_metric(self, context: Context):
        return {"train_psnr": PeakSignalToNoiseRatio(max_val=1.0, output_transform=from_engine(["pred", "label"]))}

    def val_key_metric(self, context: Context):
        return {self.VAL_KEY: PeakSignalToNoiseRatio(max_val=1.0, output_transform=from_engine(["pred", "label"]))}

    def evaluate_weights(self, weights, datalist, device):
        """Mean PSNR on whole validation images (with the baselines' figures alongside)."""
        network = build_restoration_network(self.spec)
        network.load_state_dict(weights)
        return evaluate_restoration(self.spec, network, datalist, device)

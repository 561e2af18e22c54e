"""Segmentation quality: Dice per label on whole volumes, as the promotion gate and the benchmarks use it."""

from __future__ import annotations

import torch
from monai.data import DataLoader, Dataset
from monai.metrics import compute_dice
from monai.networks.utils import one_hot

from medlabel.kinds.segmentation.network import build_network
from medlabel.kinds.segmentation.predictor import sliding_window_logits
from medlabel.kinds.segmentation.transforms import val_transforms
from medlabel.spec import ModelSpec


def dice_per_label(pred: torch.Tensor, truth: torch.Tensor, labels: dict[str, int]) -> dict[str, float]:
    """Dice of each label between two (X, Y, Z) label maps; a label absent from both scores 1.

    Scoring empty-on-empty as 1 (``ignore_empty=False``) makes false positives on an image without the
    structure cost something, which a gate between two models must see.
    """
    n = max(labels.values()) + 1
    p = one_hot(pred[None, None].long(), n)
    t = one_hot(truth[None, None].long(), n)
    scores = compute_dice(p, t, include_background=False, ignore_empty=False)[0]
    return {name: float(scores[idx - 1]) for name, idx in labels.items()}


@torch.no_grad()
def evaluate(spec: ModelSpec, weights: dict[str, torch.Tensor], datalist: list[dict], device: torch.device) -> dict:
    """Mean and per-label Dice of ``weights`` over ``datalist`` (image/label paths), on the model grid."""
    network = build_network(spec)
    network.load_state_dict(weights)
    network.to(device).eval()
    per_image = []
    for item in DataLoader(Dataset(datalist, val_transforms(spec)), batch_size=1, num_workers=0):
        logits = sliding_window_logits(item["image"][0], network, spec, device)
        per_image.append(dice_per_label(logits.argmax(0).cpu(), item["label"][0, 0].cpu(), spec.labels))
    if not per_image:
        return {"mean_dice": 0.0, "dice": {}, "images": 0}
    dice = {name: sum(d[name] for d in per_image) / len(per_image) for name in spec.labels}
    return {"mean_dice": sum(dice.values()) / len(dice), "dice": dice, "images": len(per_image)}

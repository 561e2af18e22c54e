"""Held-out quality of a classifier: AUROC per class, accuracy, expected calibration error (ECE).

Pure functions on (N, C) probabilities and (N, C) one-hot / multi-hot targets, plus ``evaluate``, which
runs weights over labelled images; the gate's score is the mean AUROC of the classes that have both
positive and negative examples among those images, or the accuracy where none has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.metrics import compute_roc_auc

from medlabel.kinds.classification.labels import read_classes, target_vector
from medlabel.kinds.classification.network import build_network
from medlabel.kinds.classification.predictor import activate
from medlabel.kinds.classification.spec import ClassificationSpec
from medlabel.kinds.classification.transforms import infer_transforms


def auroc_per_class(prob: np.ndarray, target: np.ndarray) -> list[float | None]:
    """Area under the ROC curve of each class (one-vs-rest); None where a class is all positive or all negative."""
    result: list[float | None] = []
    for c in range(target.shape[1]):
        t = target[:, c]
        if t.min() == t.max():
            result.append(None)
        else:
            result.append(float(compute_roc_auc(torch.as_tensor(prob[:, c]), torch.as_tensor(t))))
    return result


def accuracy(prob: np.ndarray, target: np.ndarray, multi_label: bool) -> float:
    """Single-label: top class right. Multi-label: each class's presence right at 0.5, averaged."""
    if multi_label:
        return float(((prob >= 0.5) == (target >= 0.5)).mean())
    return float((prob.argmax(1) == target.argmax(1)).mean())


def expected_calibration_error(prob: np.ndarray, target: np.ndarray, multi_label: bool, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by the bins' counts.

    Single-label: confidence is the top probability. Multi-label: every (image, class) decision counts,
    with confidence max(p, 1 - p).
    """
    if multi_label:
        confidence = np.maximum(prob, 1 - prob).ravel()
        correct = ((prob >= 0.5) == (target >= 0.5)).ravel()
        low = 0.5
    else:
        confidence = prob.max(1)
        correct = prob.argmax(1) == target.argmax(1)
        low = 0.0
    edges = np.linspace(low, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def summarise(prob: np.ndarray, target: np.ndarray, spec: ClassificationSpec) -> dict[str, Any]:
    """Every metric, and the gate's ``score``: mean defined AUROC, else accuracy."""
    aurocs = auroc_per_class(prob, target)
    defined = [a for a in aurocs if a is not None]
    acc = accuracy(prob, target, spec.multi_label)
    return {
        "score": float(np.mean(defined)) if defined else acc,
        "score_metric": "mean_auroc" if defined else "accuracy",
        "auroc": dict(zip(spec.classes, aurocs)),
        "accuracy": acc,
        "ece": expected_calibration_error(prob, target, spec.multi_label),
        "images": int(len(prob)),
    }


@torch.no_grad()
def predict(spec: ClassificationSpec, weights: dict[str, torch.Tensor], images: list[str], device) -> np.ndarray:
    """(N, C) probabilities of ``weights`` on image files."""
    network = build_network(spec, pretrained=False)
    network.load_state_dict(weights)
    network.to(device).eval()
    pre = infer_transforms(spec)
    out = []
    for path in images:
        x = pre({"image": path})["image"].as_tensor()
        out.append(activate(network(x[None].to(device)).float(), spec)[0].cpu().numpy())
    return np.stack(out) if out else np.zeros((0, spec.num_classes), np.float32)


def evaluate(spec: ClassificationSpec, weights: dict[str, torch.Tensor], datalist: list[dict], device) -> dict[str, Any]:
    """Metrics of ``weights`` on labelled items ``{"image": path, "label": json path}``."""
    if not datalist:
        return {"score": 0.0, "images": 0}
    prob = predict(spec, weights, [d["image"] for d in datalist], device)
    target = np.stack([target_vector(read_classes(d["label"]), spec) for d in datalist])
    return summarise(prob, target, spec)

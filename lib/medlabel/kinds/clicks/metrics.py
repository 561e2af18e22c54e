"""How good a click model is: Dice after each of a few simulated clicks, on whole validation volumes."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from medlabel.interactive.simulate import next_click
from medlabel.kinds.clicks.network import build_network
from medlabel.kinds.clicks.predictor import click_probability
from medlabel.kinds.clicks.spec import ClickSpec
from medlabel.kinds.clicks.transforms import _prepared


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def click_session(network, image: torch.Tensor, truth: np.ndarray, spec: ClickSpec, clicks: int,
                  device: torch.device) -> list[float]:
    """Dice after each click of a simulated annotator (model grid), starting from an empty segmentation."""
    fg, bg, scores = [], [], []
    pred = np.zeros(truth.shape, dtype=bool)
    for _ in range(clicks):
        c = next_click(pred, truth)
        if c is None:
            scores.append(1.0)
            continue
        (fg if c.foreground else bg).append(list(c.point))
        pred = click_probability(network, image, fg, bg, spec, device).numpy() > 0.5
        scores.append(dice(pred, truth))
    return scores


@torch.no_grad()
def evaluate(spec: ClickSpec, weights: dict[str, torch.Tensor], datalist: list[dict], device) -> dict:
    """Mean Dice over the clicks of each image's session, averaged over images (the gate's score)."""
    network = build_network(spec)
    network.load_state_dict(weights)
    network.to(device).eval()
    sessions = []
    for item in DataLoader(Dataset(datalist, Compose(_prepared(spec))), batch_size=1, num_workers=0):
        truth = item["label"][0, 0].numpy() > 0.5
        if truth.any():
            sessions.append(click_session(network, item["image"][0], truth, spec, spec.eval_clicks, device))
    if not sessions:
        return {"mean_dice": 0.0, "dice_per_click": [], "images": 0}
    per_click = np.mean(sessions, axis=0)
    return {"mean_dice": float(per_click.mean()), "dice_per_click": [round(float(v), 4) for v in per_click],
            "images": len(sessions)}

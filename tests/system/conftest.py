"""Helpers for system tests, as fixtures (the tests run with --import-mode=importlib)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk


def _liver_dice(result: str, truth: Path) -> float:
    """Dice of the whole liver (liver and tumour ids) between a result file and the ground truth."""
    pred = sitk.GetArrayFromImage(sitk.ReadImage(str(result))) >= 1
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(truth))) >= 1
    return float(2 * (pred & ref).sum() / max(1, pred.sum() + ref.sum()))


def _same_grid(result: str, image: Path) -> bool:
    """Whether a result file lies on the image's own voxel grid (size, origin, spacing, direction)."""
    a, b = sitk.ReadImage(str(result)), sitk.ReadImage(str(image))
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-4)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4)
    )


def _wait_for_training(client, timeout: float = 900, seen_id: str | None = None) -> dict:
    """Polls the Slicer client's train status until the newest training (other than ``seen_id``) ends."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            status = client.train_status()
        except Exception:  # 404 until a first training is submitted
            status = {}
        if status.get("id") and status.get("id") != seen_id and status.get("status") not in ("SUBMITTED", "QUEUED", "RUNNING"):
            return status
        time.sleep(2)
    raise TimeoutError("training did not finish")


@pytest.fixture
def liver_dice():
    return _liver_dice


@pytest.fixture
def wait_for_training():
    return _wait_for_training


@pytest.fixture
def same_grid():
    return _same_grid

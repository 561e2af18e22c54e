"""Plans a segmentation spec from the user's own images and labels, as nnU-Net plans, for a CPU budget.

A user who brings a new structure should not have to guess spacing, patch size, network width or epochs.
The rules, in order (nnU-Net's, then the compute budget):

1. Spacing: the median spacing of the images; on anisotropic data (one axis over 3x coarser) the coarse
   axis takes its 10th percentile instead, so thin slices are not thrown away.
2. Budget: the median image on that grid may hold at most ``max_voxels``; beyond that the grid is
   coarsened isotropically. A large structure survives coarse grids well and a 2-core CPU cannot
   afford fine ones, which is the regime where MONAI Label's stock 96^3/1.5 mm recipe learns nothing.
3. Patch: the median resampled image size, rounded up to multiples of 16, at most ``max_roi`` per axis;
   the structure's median extent (from the labels) sets the lower bound, so a patch sees all of it.
4. Network: a residual UNet with one level per halving the patch allows (three or four), 16 features
   at the top, instance norm and dropout (for MC-dropout uncertainty).
5. Epochs: as many 20-batch epochs as ``budget_minutes`` allows at ``seconds_per_batch``, which
   ``measure_seconds_per_batch`` times on this machine for the planned network and patch.
6. Trade resolution for iterations (``plan_for_budget``): when the budget buys fewer than
   ``min_epochs`` epochs, plan again on a coarser voxel budget (smaller grid, smaller patch), timing
   each candidate, until it does. With 4 labels a model needs a few hundred optimizer steps far more
   than fine voxels.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medlabel.spec import CTWindow, Intensity, ModelSpec, NetworkSpec, TrainSpec, ZScore


@dataclass(frozen=True)
class Fingerprint:
    """What the planner needs to know of one labelled (or unlabeled) image: grid and structure extent."""

    spacing_mm: tuple[float, float, float]
    shape: tuple[int, int, int]
    foreground_extent_mm: tuple[float, float, float] | None  # bounding box of label > 0, if labelled
    intensity_min: float
    intensity_max: float


def fingerprint(image: Path, label: Path | None = None) -> Fingerprint:
    """Reads an image (and its label) and returns its fingerprint; (x, y, z) in the file's voxel order."""
    img = sitk.ReadImage(str(image))
    values = sitk.GetArrayViewFromImage(img)
    extent = None
    if label is not None:
        lab = sitk.GetArrayViewFromImage(sitk.ReadImage(str(label)))
        nz = np.argwhere(lab > 0)  # (z, y, x)
        if nz.size:
            size_vox = (nz.max(0) - nz.min(0) + 1)[::-1]
            extent = tuple(float(s * sp) for s, sp in zip(size_vox, img.GetSpacing()))
    return Fingerprint(tuple(img.GetSpacing()), tuple(img.GetSize()), extent,
                       float(np.percentile(values, 0.5)), float(np.percentile(values, 99.5)))


def _round16(v: float) -> int:
    return int(16 * math.ceil(v / 16))


def plan_spacing(prints: list[Fingerprint], max_voxels: int) -> tuple[float, float, float]:
    spacings = np.array([p.spacing_mm for p in prints], dtype=float)
    target = np.median(spacings, axis=0)
    coarse = int(np.argmax(target))
    if target[coarse] > 3 * np.min(target):
        target[coarse] = np.percentile(spacings[:, coarse], 10)
    extents = np.median([np.array(p.shape) * np.array(p.spacing_mm) for p in prints], axis=0)
    voxels = float(np.prod(extents / target))
    if voxels > max_voxels:
        target = target * (voxels / max_voxels) ** (1 / 3)
    return tuple(round(float(s), 2) for s in target)


def plan_roi(prints: list[Fingerprint], spacing: tuple[float, float, float], max_roi: int) -> tuple[int, int, int]:
    extents = np.median([np.array(p.shape) * np.array(p.spacing_mm) for p in prints], axis=0)
    shape = extents / np.array(spacing)
    fg = [p.foreground_extent_mm for p in prints if p.foreground_extent_mm]
    if fg:
        shape = np.maximum(np.minimum(shape, max_roi), np.median(fg, axis=0) / np.array(spacing))
    return tuple(int(min(max_roi, max(32, _round16(s)))) for s in shape)


def plan_network(roi: tuple[int, int, int]) -> NetworkSpec:
    levels = 4 if min(roi) >= 48 else 3
    return NetworkSpec(arch="unet", channels=tuple(16 * 2**i for i in range(levels)), dropout=0.1)


def plan_intensity(prints: list[Fingerprint]) -> Intensity:
    """CT when the data look like Hounsfield units (air near -1000), else per-image z-score."""
    lows = [p.intensity_min for p in prints]
    if np.median(lows) < -500:
        return CTWindow(hu_min=-175, hu_max=250)  # soft-tissue window; change it for bone or lung
    return ZScore()


def plan(
    name: str,
    labels: dict[str, int],
    prints: list[Fingerprint],
    budget_minutes: float = 10.0,
    seconds_per_batch: float | None = None,
    max_voxels: int = 96**3,
    max_roi: int = 64,
) -> ModelSpec:
    """A complete ``ModelSpec`` for ``labels`` from the fingerprints of the user's images."""
    if not prints:
        raise ValueError("planning needs at least one image")
    spacing = plan_spacing(prints, max_voxels)
    roi = plan_roi(prints, spacing, max_roi)
    network = plan_network(roi)
    batches = 20
    epochs = 40
    if seconds_per_batch:
        # 85% of the budget for training batches; validation and the gate take the rest
        epochs = max(1, int(budget_minutes * 60 * 0.85 / (batches * seconds_per_batch)))
    return ModelSpec(
        name=name,
        labels=labels,
        spacing_mm=spacing,
        roi_size=roi,
        intensity=plan_intensity(prints),
        network=network,
        train=TrainSpec(max_epochs=epochs, iterations_per_epoch=batches, learning_rate=3e-3,
                        samples_per_volume=4, batch_size=2, max_minutes=budget_minutes if seconds_per_batch else None),
        description=f"planned from {len(prints)} images for a {budget_minutes:g}-minute CPU budget",
    )


VOXEL_BUDGETS = (96**3, 64**3, 48**3, 40**3, 32**3)


def plan_for_budget(
    name: str, labels: dict[str, int], prints: list[Fingerprint], budget_minutes: float = 10.0, min_epochs: int = 10
) -> tuple[ModelSpec, float]:
    """The finest plan whose measured training speed buys ``min_epochs`` epochs within the budget, and its
    seconds per batch; the coarsest candidate if none does."""
    for max_voxels in VOXEL_BUDGETS:
        draft = plan(name, labels, prints, budget_minutes, max_voxels=max_voxels)
        seconds = measure_seconds_per_batch(draft)
        spec = plan(name, labels, prints, budget_minutes, seconds_per_batch=seconds, max_voxels=max_voxels)
        if spec.train.max_epochs >= min_epochs:
            break
    return spec, seconds


def measure_seconds_per_batch(spec: ModelSpec, repeats: int = 3) -> float:
    """Times one training step (forward, Dice+CE, backward, AdamW) of the planned network on this CPU."""
    import torch
    from monai.losses import DiceCELoss

    from medlabel.kinds.segmentation.network import build_network

    network = build_network(spec).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=spec.train.learning_rate)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    batch = spec.train.batch_size * spec.train.samples_per_volume
    x = torch.randn(batch, 1, *spec.roi_size)
    y = torch.randint(0, spec.num_classes, (batch, 1, *spec.roi_size))
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(network(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def spec_source(spec: ModelSpec) -> str:
    """The spec as Python to paste into an app's ``main.py``."""
    intensity = repr(spec.intensity).replace("kind='ct_window', ", "").replace("kind='zscore'", "")
    t = spec.train
    return (
        "ModelSpec(\n"
        f"    name={spec.name!r},\n"
        f"    description={spec.description!r},\n"
        f"    labels={spec.labels!r},\n"
        f"    spacing_mm={spec.spacing_mm!r},\n"
        f"    roi_size={spec.roi_size!r},\n"
        f"    intensity={intensity},\n"
        f"    network=NetworkSpec(arch={spec.network.arch!r}, channels={spec.network.channels!r}, "
        f"dropout={spec.network.dropout!r}),\n"
        f"    train=TrainSpec(max_epochs={t.max_epochs}, iterations_per_epoch={t.iterations_per_epoch}, "
        f"learning_rate={t.learning_rate}, samples_per_volume={t.samples_per_volume}, batch_size={t.batch_size}"
        f"{f', max_minutes={t.max_minutes:g}' if t.max_minutes else ''}),\n"
        ")"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m medlabel.planning --images DIR [--labels DIR] --name NAME --label NAME ...``"""
    import argparse

    p = argparse.ArgumentParser(description="Plan a segmentation spec from your images (and labels).")
    p.add_argument("--images", type=Path, required=True, help="folder of NIfTI/NRRD images")
    p.add_argument("--labels", type=Path, help="folder of label maps named like their images (optional)")
    p.add_argument("--name", required=True, help="model name (lower case, digits, _)")
    p.add_argument("--label", action="append", required=True, help="structure names in id order (1, 2, ...)")
    p.add_argument("--budget-minutes", type=float, default=10.0, help="training time budget on this machine")
    args = p.parse_args(argv)
    images = sorted(f for f in args.images.iterdir() if f.name.endswith((".nii", ".nii.gz", ".nrrd")))
    prints = []
    for image in images:
        label = args.labels / image.name if args.labels and (args.labels / image.name).exists() else None
        prints.append(fingerprint(image, label))
    spec, seconds = plan_for_budget(args.name, {n: i + 1 for i, n in enumerate(args.label)}, prints, args.budget_minutes)
    print(f"# {seconds:.2f} s per training batch on this machine")
    print(spec_source(spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

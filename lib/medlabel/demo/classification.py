"""Demo studies for the classification kind: 2D tiles of the real volumes with image-level classes.

- ``liver-tiles``: 32x32 mm tiles of axial slices of the real LiTS CT (every 16th slice), multi-label
  ``liver`` (at least 10% of the tile is liver) and ``tumour`` (at least 20 tumour pixels), from the
  LiTS reference segmentation.
- ``brain-tiles``: 64x64 mm tiles of axial MNI152 T1 slices (every 24 mm), single-label ``brain`` (at
  least 25% of the tile inside the brain mask) or ``no_brain``.

Each tile is an (X, Y, 1) NIfTI that keeps its place in the volume (the slice's affine, shifted), so
a map on it overlays on the source volume too. ``groundtruth/<set>/labels.json`` holds every tile's
classes and its split: tiles of alternate slices are ``train`` and ``heldout``, so no held-out voxel
is ever in a training tile.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from medlabel.demo.sources import Source, lits_117, mni152


def tiles(source: Source, tile: int, slice_step: int, first_slice: int):
    """Yield (k, i, j, image tile (X, Y, 1), label tile, affine) on axial slices k = first, first + step, ..."""
    nx, ny, nz = source.image.shape
    for k in range(first_slice, nz, slice_step):
        for i in range(0, nx - tile + 1, tile):
            for j in range(0, ny - tile + 1, tile):
                affine = source.affine.copy()
                affine[:3, 3] = source.affine[:3, :3] @ np.array([i, j, k]) + source.affine[:3, 3]
                yield k, i, j, source.image[i:i + tile, j:j + tile, k:k + 1], source.labels[i:i + tile, j:j + tile, k], affine


def liver_classes(labels: np.ndarray) -> list[str]:
    return [c for c, present in (("liver", (labels >= 1).mean() >= 0.1), ("tumour", (labels == 2).sum() >= 20)) if present]


def brain_classes(labels: np.ndarray) -> list[str]:
    return ["brain" if (labels >= 1).mean() >= 0.25 else "no_brain"]


SETS = {
    "liver-tiles": (lits_117, 32, 16, 4, liver_classes, "multi-label: liver, tumour"),
    "brain-tiles": (mni152, 64, 24, 10, brain_classes, "single-label: brain, no_brain"),
}


def build(out: Path) -> dict[str, int]:
    """Write ``studies/<set>`` and ``groundtruth/<set>/labels.json`` for each set; append to SOURCES.md."""
    out = Path(out)
    counts, notes = {}, []
    for name, (load, size, step, first, classify, kind) in SETS.items():
        source = load()
        truth: dict[str, dict] = {}
        slices = sorted({k for k in range(first, source.image.shape[2], step)})
        for k, i, j, image, labels, affine in tiles(source, size, step, first):
            tile_id = f"{source.name}_k{k:03d}_i{i:03d}_j{j:03d}"
            nifti = nib.Nifti1Image(np.ascontiguousarray(image), affine)
            nifti.set_qform(affine, code=1)
            nifti.set_sform(affine, code=1)
            path = out / "studies" / name / f"{tile_id}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nifti, path)
            split = "train" if slices.index(k) % 2 == 0 else "heldout"
            truth[tile_id] = {"classes": classify(labels), "split": split}
        (out / "groundtruth" / name).mkdir(parents=True, exist_ok=True)
        (out / "groundtruth" / name / "labels.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
        counts[name] = len(truth)
        notes.append(f"## {name}\n\n- Source: {source.origin}\n- Licence: {source.licence}\n- {len(truth)} tiles of "
                     f"{size}x{size} voxels on every {step}th axial slice; classes ({kind}) from the reference labels "
                     f"in `groundtruth/{name}/labels.json`, with a train / held-out split by slice.\n")
    with open(out / "SOURCES.md", "a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(notes))
    return counts
